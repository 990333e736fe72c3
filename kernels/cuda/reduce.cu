// Sums over axes: sum_to_shape (the backward of broadcasting; sum_axis is its one-axis case) and
// sum_all. f32 and bf16 inputs; every sum accumulates in f64, so f32 results match the CPU's
// (which also sums in f64) to rounding.
//
// The launcher splits the input's dimensions into kept ones (the output's) and reduced ones, and
// merges neighbours that are contiguous. sum_reduce_threads: one thread per output element
// walking the reduced index space (coalesced when the reduced dims are outer ones, as for a bias
// gradient). sum_reduce_blocks: one block per output element for few, long reductions (a sum over
// the last axis, sum_all): 256 threads stride the reduced space, then a block reduction.
#include "fym_common.cuh"

#define REDUCE_MAX_RANK 8

struct ReduceView {
    long long out_shape[REDUCE_MAX_RANK];  // kept dims, outermost first
    long long out_stride[REDUCE_MAX_RANK];  // their strides in the input
    long long red_shape[REDUCE_MAX_RANK];  // reduced dims
    long long red_stride[REDUCE_MAX_RANK];
    int out_rank;
    int red_rank;
};

__device__ __forceinline__ long long offset_of(long long i, const long long* shape, const long long* stride,
                                               int rank) {
    long long off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        off += (i % shape[d]) * stride[d];
        i /= shape[d];
    }
    return off;
}

template <typename T>
__device__ void sum_reduce_threads(const T* x, T* out, long long out_n, long long red_n, const ReduceView& v) {
    for (long long o = global_thread_index(); o < out_n; o += grid_stride()) {
        const long long base = offset_of(o, v.out_shape, v.out_stride, v.out_rank);
        double acc = 0.0;
        if (v.red_rank == 1) {
            for (long long r = 0; r < red_n; ++r) acc += (double)to_f32(x[base + r * v.red_stride[0]]);
        } else {
            for (long long r = 0; r < red_n; ++r)
                acc += (double)to_f32(x[base + offset_of(r, v.red_shape, v.red_stride, v.red_rank)]);
        }
        out[o] = from_f32<T>((float)acc);
    }
}

__device__ double block_sum_f64(double v) {
    __shared__ double partial[32];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0;
    if (warp == 0)
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;  // valid in thread 0
}

// One block per output element (grid-stride over blocks); writes through `store`.
template <typename T, typename Store>
__device__ void sum_reduce_blocks(const T* x, long long out_n, long long red_n, const ReduceView& v, Store store) {
    for (long long o = blockIdx.x; o < out_n; o += gridDim.x) {
        const long long base = offset_of(o, v.out_shape, v.out_stride, v.out_rank);
        double acc = 0.0;
        for (long long r = threadIdx.x; r < red_n; r += blockDim.x)
            acc += (double)to_f32(x[base + offset_of(r, v.red_shape, v.red_stride, v.red_rank)]);
        acc = block_sum_f64(acc);
        if (threadIdx.x == 0) store(o, acc);
        __syncthreads();  // `partial` is reused by the next output
    }
}

#define REDUCE_KERNELS(T, suffix)                                                                  \
    extern "C" __global__ void sum_reduce_threads_##suffix(const T* x, T* out, long long out_n,    \
                                                           long long red_n, ReduceView v) {        \
        sum_reduce_threads<T>(x, out, out_n, red_n, v);                                            \
    }                                                                                              \
    extern "C" __global__ void sum_reduce_blocks_##suffix(const T* x, T* out, long long out_n,     \
                                                          long long red_n, ReduceView v) {         \
        sum_reduce_blocks<T>(x, out_n, red_n, v,                                                   \
                             [=](long long o, double s) { out[o] = from_f32<T>((float)s); });      \
    }                                                                                              \
    /* The whole input into one f64: the CPU's sum_all. */                                        \
    extern "C" __global__ void sum_all_##suffix(const T* x, double* out, long long n, ReduceView v) { \
        sum_reduce_blocks<T>(x, 1, n, v, [=](long long, double s) { *out = s; });                  \
    }

REDUCE_KERNELS(float, f32)
REDUCE_KERNELS(bf16, bf16)
