// Row softmax over the last dim of a `rows x cols` matrix, forward and backward, f32 and bf16
// (bf16 storage, f32 arithmetic).
//
// Thread mapping: one block per row (gridDim.x = rows), blockDim.x a multiple of 32 picked by the
// launcher from `cols` (about 4+ elements per thread, at most 1024 threads). Threads stride
// through the row so each warp reads consecutive addresses. The forward pass keeps a running
// (max, sum of exp) pair per thread ("online softmax") so the row is read twice instead of three
// times; pairs are merged with warp shuffles, then across warps through 32 slots of shared memory.
// A block (not a warp) per row because attention-score rows reach tens of thousands of columns.
#include "fym_common.cuh"

// Merges the running pair (m, s) with (m_other, s_other): both sums are rescaled to the larger max.
__device__ __forceinline__ void merge_max_sum(float& m, float& s, float m_other, float s_other) {
    const float m_new = fmaxf(m, m_other);
    if (m_new == FYM_NEG_INF) return;  // both empty so far
    s = s * expf(m - m_new) + s_other * expf(m_other - m_new);
    m = m_new;
}

// (max, sum of exp(x - max)) over the block, returned to every thread. `scratch` is 64 floats.
__device__ __forceinline__ void block_max_sum(float& m, float& s, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int num_warps = blockDim.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float m_other = __shfl_xor_sync(0xffffffffu, m, offset);
        const float s_other = __shfl_xor_sync(0xffffffffu, s, offset);
        merge_max_sum(m, s, m_other, s_other);
    }
    if (lane == 0) {
        scratch[warp] = m;
        scratch[32 + warp] = s;
    }
    __syncthreads();
    m = lane < num_warps ? scratch[lane] : FYM_NEG_INF;
    s = lane < num_warps ? scratch[32 + lane] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float m_other = __shfl_xor_sync(0xffffffffu, m, offset);
        const float s_other = __shfl_xor_sync(0xffffffffu, s, offset);
        merge_max_sum(m, s, m_other, s_other);
    }
}

template <typename T>
__device__ void softmax_forward(const T* x, T* out, int cols) {
    __shared__ float scratch[64];
    const T* row_in = x + (long long)blockIdx.x * cols;
    T* row_out = out + (long long)blockIdx.x * cols;

    float m = FYM_NEG_INF;
    float s = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float v = to_f32(row_in[j]);
        if (v > m) {
            s = s * expf(m - v) + 1.0f;
            m = v;
        } else if (m != FYM_NEG_INF) {  // masked (-inf) entries before any finite one add nothing
            s += expf(v - m);
        }
    }
    block_max_sum(m, s, scratch);

    const float inv_sum = 1.0f / s;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        row_out[j] = from_f32<T>(expf(to_f32(row_in[j]) - m) * inv_sum);
}

// dx = y * (dy - sum_j(dy_j * y_j)), given the forward output y.
template <typename T>
__device__ void softmax_backward(const T* y, const T* dy, T* dx, int cols) {
    __shared__ float scratch[32];
    const long long offset = (long long)blockIdx.x * cols;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        dot += to_f32(dy[offset + j]) * to_f32(y[offset + j]);
    dot = block_sum(dot, scratch);
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        dx[offset + j] = from_f32<T>(to_f32(y[offset + j]) * (to_f32(dy[offset + j]) - dot));
}

#define SOFTMAX_KERNELS(T, suffix)                                                                 \
    extern "C" __global__ void softmax_##suffix(const T* x, T* out, int cols) {                   \
        softmax_forward<T>(x, out, cols);                                                          \
    }                                                                                              \
    extern "C" __global__ void softmax_backward_##suffix(const T* y, const T* dy, T* dx,          \
                                                         int cols) {                              \
        softmax_backward<T>(y, dy, dx, cols);                                                      \
    }

SOFTMAX_KERNELS(float, f32)
SOFTMAX_KERNELS(bf16, bf16)
