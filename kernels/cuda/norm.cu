// LayerNorm (biased variance, optional affine) and RMSNorm over the last dim of a `rows x cols`
// matrix, forward and backward, f32 and bf16 (bf16 storage, f32 arithmetic). The per-row
// statistics (mean, rstd = 1/sqrt(var + eps)) are always f32; weight/bias/dweight/dbias have the
// tensor's dtype and may be null (no affine / gradient not wanted).
//
// Thread mapping, row kernels (forward, dx): one block per row (gridDim.x = rows), blockDim.x a
// multiple of 32 picked by the launcher from `cols`; threads stride through the row (coalesced) and
// reduce with warp shuffles + 32 floats of shared memory. The variance is a second pass over the
// row around the mean (not E[x^2] - E[x]^2) so it keeps full f32 accuracy; the row is still in
// L1/L2 by then.
// Thread mapping, parameter-gradient kernels (dweight, dbias = column sums over rows): a block of
// 32 x 16 threads owns 32 adjacent columns; threadIdx.x is the column (so each warp reads 128
// contiguous bytes of a row) and the 16 threadIdx.y lanes split the rows; the 16 partial sums meet
// in shared memory. No atomics, so the result is deterministic.
#include "fym_common.cuh"

#define PARAM_GRAD_ROW_LANES 16

template <typename T>
__device__ void layer_norm_forward(const T* x, const T* weight, const T* bias, T* out, float* mean,
                                   float* rstd, int cols, float eps) {
    __shared__ float scratch[32];
    const long long offset = (long long)blockIdx.x * cols;
    const T* row = x + offset;

    float sum = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) sum += to_f32(row[j]);
    const float mu = block_sum(sum, scratch) / cols;

    float sq = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float d = to_f32(row[j]) - mu;
        sq += d * d;
    }
    const float r = 1.0f / sqrtf(block_sum(sq, scratch) / cols + eps);
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = mu;
        rstd[blockIdx.x] = r;
    }
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = (to_f32(row[j]) - mu) * r;
        if (weight) v *= to_f32(weight[j]);
        if (bias) v += to_f32(bias[j]);
        out[offset + j] = from_f32<T>(v);
    }
}

// g = dy * w (or dy), xhat = (x - mean) * rstd:  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
template <typename T>
__device__ void layer_norm_backward_dx(const T* x, const T* weight, const float* mean, const float* rstd,
                                       const T* dy, T* dx, int cols) {
    __shared__ float scratch[32];
    const long long offset = (long long)blockIdx.x * cols;
    const float mu = mean[blockIdx.x];
    const float r = rstd[blockIdx.x];

    float sum_g = 0.0f;
    float sum_g_xhat = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float g = to_f32(dy[offset + j]) * (weight ? to_f32(weight[j]) : 1.0f);
        const float xhat = (to_f32(x[offset + j]) - mu) * r;
        sum_g += g;
        sum_g_xhat += g * xhat;
    }
    const float mean_g = block_sum(sum_g, scratch) / cols;
    const float mean_g_xhat = block_sum(sum_g_xhat, scratch) / cols;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float g = to_f32(dy[offset + j]) * (weight ? to_f32(weight[j]) : 1.0f);
        const float xhat = (to_f32(x[offset + j]) - mu) * r;
        dx[offset + j] = from_f32<T>(r * (g - mean_g - xhat * mean_g_xhat));
    }
}

// Sums the per-thread partials of the PARAM_GRAD_ROW_LANES row lanes of a column; lane 0 gets it.
__device__ __forceinline__ float column_lanes_sum(float v, float (*partial)[33]) {
    partial[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    float total = 0.0f;
    if (threadIdx.y == 0)
        for (int lane = 0; lane < PARAM_GRAD_ROW_LANES; ++lane) total += partial[lane][threadIdx.x];
    __syncthreads();
    return total;
}

// dweight[j] = sum_r dy[r, j] * xhat[r, j], dbias[j] = sum_r dy[r, j].
template <typename T>
__device__ void layer_norm_param_grad(const T* x, const float* mean, const float* rstd, const T* dy,
                                      T* dweight, T* dbias, int rows, int cols) {
    __shared__ float partial[PARAM_GRAD_ROW_LANES][33];  // 33: no bank conflicts on the column sum
    const int j = blockIdx.x * 32 + threadIdx.x;
    float sum_w = 0.0f;
    float sum_b = 0.0f;
    if (j < cols) {
        for (int r = threadIdx.y; r < rows; r += PARAM_GRAD_ROW_LANES) {
            const long long i = (long long)r * cols + j;
            const float g = to_f32(dy[i]);
            sum_w += g * (to_f32(x[i]) - mean[r]) * rstd[r];
            sum_b += g;
        }
    }
    sum_w = column_lanes_sum(sum_w, partial);
    sum_b = column_lanes_sum(sum_b, partial);
    if (threadIdx.y == 0 && j < cols) {
        if (dweight) dweight[j] = from_f32<T>(sum_w);
        if (dbias) dbias[j] = from_f32<T>(sum_b);
    }
}

// out = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).
template <typename T>
__device__ void rms_norm_forward(const T* x, const T* weight, T* out, float* rstd, int cols, float eps) {
    __shared__ float scratch[32];
    const long long offset = (long long)blockIdx.x * cols;
    float sq = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float v = to_f32(x[offset + j]);
        sq += v * v;
    }
    const float r = 1.0f / sqrtf(block_sum(sq, scratch) / cols + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = to_f32(x[offset + j]) * r;
        if (weight) v *= to_f32(weight[j]);
        out[offset + j] = from_f32<T>(v);
    }
}

// g = dy * w (or dy):  dx = rstd * g - x * rstd^3 * mean(g * x).
template <typename T>
__device__ void rms_norm_backward_dx(const T* x, const T* weight, const float* rstd, const T* dy, T* dx,
                                     int cols) {
    __shared__ float scratch[32];
    const long long offset = (long long)blockIdx.x * cols;
    const float r = rstd[blockIdx.x];
    float sum_gx = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float g = to_f32(dy[offset + j]) * (weight ? to_f32(weight[j]) : 1.0f);
        sum_gx += g * to_f32(x[offset + j]);
    }
    const float mean_gx = block_sum(sum_gx, scratch) / cols;
    const float r3 = r * r * r;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float g = to_f32(dy[offset + j]) * (weight ? to_f32(weight[j]) : 1.0f);
        dx[offset + j] = from_f32<T>(r * g - to_f32(x[offset + j]) * r3 * mean_gx);
    }
}

// dweight[j] = sum_r dy[r, j] * x[r, j] * rstd[r].
template <typename T>
__device__ void rms_norm_param_grad(const T* x, const float* rstd, const T* dy, T* dweight, int rows,
                                    int cols) {
    __shared__ float partial[PARAM_GRAD_ROW_LANES][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    float sum_w = 0.0f;
    if (j < cols) {
        for (int r = threadIdx.y; r < rows; r += PARAM_GRAD_ROW_LANES) {
            const long long i = (long long)r * cols + j;
            sum_w += to_f32(dy[i]) * to_f32(x[i]) * rstd[r];
        }
    }
    sum_w = column_lanes_sum(sum_w, partial);
    if (threadIdx.y == 0 && j < cols) dweight[j] = from_f32<T>(sum_w);
}

#define NORM_KERNELS(T, suffix)                                                                    \
    extern "C" __global__ void layer_norm_##suffix(const T* x, const T* weight, const T* bias,    \
                                                   T* out, float* mean, float* rstd, int cols,    \
                                                   float eps) {                                    \
        layer_norm_forward<T>(x, weight, bias, out, mean, rstd, cols, eps);                        \
    }                                                                                              \
    extern "C" __global__ void layer_norm_backward_dx_##suffix(                                   \
        const T* x, const T* weight, const float* mean, const float* rstd, const T* dy, T* dx,    \
        int cols) {                                                                                \
        layer_norm_backward_dx<T>(x, weight, mean, rstd, dy, dx, cols);                            \
    }                                                                                              \
    extern "C" __global__ void layer_norm_param_grad_##suffix(                                    \
        const T* x, const float* mean, const float* rstd, const T* dy, T* dweight, T* dbias,      \
        int rows, int cols) {                                                                      \
        layer_norm_param_grad<T>(x, mean, rstd, dy, dweight, dbias, rows, cols);                   \
    }                                                                                              \
    extern "C" __global__ void rms_norm_##suffix(const T* x, const T* weight, T* out,             \
                                                 float* rstd, int cols, float eps) {              \
        rms_norm_forward<T>(x, weight, out, rstd, cols, eps);                                      \
    }                                                                                              \
    extern "C" __global__ void rms_norm_backward_dx_##suffix(                                     \
        const T* x, const T* weight, const float* rstd, const T* dy, T* dx, int cols) {           \
        rms_norm_backward_dx<T>(x, weight, rstd, dy, dx, cols);                                    \
    }                                                                                              \
    extern "C" __global__ void rms_norm_param_grad_##suffix(const T* x, const float* rstd,        \
                                                            const T* dy, T* dweight, int rows,    \
                                                            int cols) {                            \
        rms_norm_param_grad<T>(x, rstd, dy, dweight, rows, cols);                                  \
    }

NORM_KERNELS(float, f32)
NORM_KERNELS(bf16, bf16)
