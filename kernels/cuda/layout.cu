// Data movement: one strided copy that serves permute, slice (and its add-back), concat,
// patchify and unpatchify, plus gathers/scatters along an axis by an index list (index_select,
// index_add, the embedding lookup and its backward). f32 and bf16 (bf16 storage, f32 arithmetic).
//
// strided_copy/strided_add: for every index tuple t over `shape` (rank <= 8, row-major order),
// dst[dst_offset + t . dst_stride] (= or +=) src[src_offset + t . src_stride]. The launcher merges
// dimensions that are contiguous in both operands first, so a plain slice or concat piece is a
// rank-2 or rank-3 walk. One thread per element, grid-stride loop, consecutive threads on
// consecutive destination elements (coalesced writes; reads are coalesced whenever the innermost
// source stride is 1). Destinations never alias between threads, so the add needs no atomics.
//
// index_select: out[o, j, i] = x[o, idx[j], i] with x [outer, n, inner], out [outer, k, inner].
// index_add: dst[o, r, i] += sum over j with idx[j] == r of src[o, j, i], one thread per
// destination element looping over the k indices in order: deterministic, no atomics, and
// repeated indices accumulate like the CPU's sequential loop.
#include "fym_common.cuh"

#define LAYOUT_MAX_RANK 8

struct StridedView {
    long long shape[LAYOUT_MAX_RANK];
    long long src_stride[LAYOUT_MAX_RANK];
    long long dst_stride[LAYOUT_MAX_RANK];
    long long src_offset;
    long long dst_offset;
    int rank;
};

template <typename T, bool ADD>
__device__ void strided(const T* src, T* dst, long long n, const StridedView& v) {
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        long long rest = i, s = v.src_offset, d = v.dst_offset;
        for (int k = v.rank - 1; k >= 0; --k) {
            const long long idx = rest % v.shape[k];
            rest /= v.shape[k];
            s += idx * v.src_stride[k];
            d += idx * v.dst_stride[k];
        }
        if (ADD)
            dst[d] = from_f32<T>(to_f32(dst[d]) + to_f32(src[s]));
        else
            dst[d] = src[s];
    }
}

template <typename T>
__device__ void index_select(const T* x, const unsigned* idx, T* out, long long outer, long long n,
                             long long k, long long inner) {
    const long long total = outer * k * inner;
    for (long long e = global_thread_index(); e < total; e += grid_stride()) {
        const long long i = e % inner;
        const long long j = (e / inner) % k;
        const long long o = e / (inner * k);
        out[e] = x[(o * n + idx[j]) * inner + i];
    }
}

template <typename T>
__device__ void index_add(const T* src, const unsigned* idx, T* dst, long long outer, long long n,
                          long long k, long long inner) {
    const long long total = outer * n * inner;
    for (long long e = global_thread_index(); e < total; e += grid_stride()) {
        const long long i = e % inner;
        const long long r = (e / inner) % n;
        const long long o = e / (inner * n);
        float acc = to_f32(dst[e]);
        bool touched = false;
        for (long long j = 0; j < k; ++j) {
            if (idx[j] == r) {
                acc += to_f32(src[(o * k + j) * inner + i]);
                touched = true;
            }
        }
        if (touched) dst[e] = from_f32<T>(acc);
    }
}

#define LAYOUT_KERNELS(T, suffix)                                                                  \
    extern "C" __global__ void strided_copy_##suffix(const T* src, T* dst, long long n,            \
                                                     StridedView v) {                              \
        strided<T, false>(src, dst, n, v);                                                         \
    }                                                                                              \
    extern "C" __global__ void strided_add_##suffix(const T* src, T* dst, long long n,             \
                                                    StridedView v) {                               \
        strided<T, true>(src, dst, n, v);                                                          \
    }                                                                                              \
    extern "C" __global__ void index_select_##suffix(const T* x, const unsigned* idx, T* out,      \
                                                     long long outer, long long n, long long k,    \
                                                     long long inner) {                            \
        index_select<T>(x, idx, out, outer, n, k, inner);                                          \
    }                                                                                              \
    extern "C" __global__ void index_add_##suffix(const T* src, const unsigned* idx, T* dst,       \
                                                  long long outer, long long n, long long k,       \
                                                  long long inner) {                               \
        index_add<T>(src, idx, dst, outer, n, k, inner);                                           \
    }

LAYOUT_KERNELS(float, f32)
LAYOUT_KERNELS(bf16, bf16)
