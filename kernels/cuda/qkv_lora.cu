// Projection + ST-LoRA + RMSNorm + RoPE, the row-wise part: everything after the two GEMMs that
// read x (the base projection y = x W^T and the LoRA down-projections u = x A^T, both on the
// tensor-core GEMM of gemm.cu), fused into one pass over each output row.
//
// Forward (qkv_lora_forward_*), per row m of the [M, N = heads * head_dim] output:
//   pre[n] = y[n] + bias[n] + s_s * (u_s[m] . B_s[n])   if head(n) is spatial
//                           + s_t * (u_t[m] . B_t[n])   if head(n) is temporal
//   (so each LoRA's up-projection touches only its own heads' columns, never computed for others);
//   then RMSNorm over the whole row (all heads, Wan's "across heads"): rstd = 1/sqrt(mean(pre^2)
//   + eps), x = pre * rstd * w; then 3D RoPE per head from the f32 cos/sin table (fractional
//   temporal positions are in the table) of token m % seq. `pre` is in/out: the launcher's GEMM
//   writes y there and this kernel overwrites it with the pre-norm row, which the backward needs.
//   Without norm weight / table (v projection) the matching step is skipped.
// Backward (qkv_lora_backward_*), per row: g = inverse RoPE of d_out, RMSNorm backward
//   (g_hat = g * w, g_pre = rstd * g_hat - pre * rstd^3 * mean(g_hat * pre)), written as g_pre and
//   as the per-head-masked, scaled copies s_s * g_pre (spatial heads) and s_t * g_pre (temporal
//   heads), from which the launcher's GEMMs get dB = g_masked^T u, du = g_masked B, dA = du^T x,
//   dx = g_pre W + du_s A_s + du_t A_t. The base weight is frozen: no dW, no dbias.
//
// Thread mapping: one block per row (the norm needs the whole row), 256 threads striding over the
// columns (coalesced), the row kept in f32 in shared memory (N floats) between the steps, plus the
// row's u_s, u_t (ranks r_s + r_t floats). RoPE pairs (2k, 2k+1) are read back from shared memory
// after a barrier, since a pair straddles threads.
//
// Run on an H200 (sm_90) against the CPU kernels by kernels/tests/cuda_kernels.rs (BENCHMARKS.md).
#include "fym_common.cuh"

// Head kinds, one byte per head (head_kind[h]).
#define HEAD_NONE 0
#define HEAD_SPATIAL 1
#define HEAD_TEMPORAL 2

template <typename T>
__device__ void qkv_lora_forward(T* pre, T* out, float* rstd_out, const T* bias, const T* u_s,
                                 const T* b_s, int rank_s, float scale_s, const T* u_t,
                                 const T* b_t, int rank_t, float scale_t,
                                 const unsigned char* head_kind, const T* norm_w, float eps,
                                 const float* cos_table, const float* sin_table, int seq, int n,
                                 int head_dim) {
    extern __shared__ float qkv_smem[];
    float* row = qkv_smem;          // [n]
    float* us = row + n;            // [rank_s]
    float* ut = us + rank_s;        // [rank_t]
    __shared__ float scratch[32];
    const long long m = blockIdx.x;
    for (int r = threadIdx.x; r < rank_s; r += blockDim.x) us[r] = to_f32(u_s[m * rank_s + r]);
    for (int r = threadIdx.x; r < rank_t; r += blockDim.x) ut[r] = to_f32(u_t[m * rank_t + r]);
    __syncthreads();

    float ss = 0.0f;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
        float v = to_f32(pre[m * n + c]);
        if (bias) v += to_f32(bias[c]);
        const int kind = head_kind[c / head_dim];
        if (kind == HEAD_SPATIAL && rank_s > 0) {
            float acc = 0.0f;
            for (int r = 0; r < rank_s; ++r) acc = fmaf(us[r], to_f32(b_s[(long long)c * rank_s + r]), acc);
            v = fmaf(scale_s, acc, v);
        } else if (kind == HEAD_TEMPORAL && rank_t > 0) {
            float acc = 0.0f;
            for (int r = 0; r < rank_t; ++r) acc = fmaf(ut[r], to_f32(b_t[(long long)c * rank_t + r]), acc);
            v = fmaf(scale_t, acc, v);
        }
        // The saved row is what the norm sees: rounded to T, as the unfused path would store it.
        const T stored = from_f32<T>(v);
        pre[m * n + c] = stored;
        v = to_f32(stored);
        row[c] = v;
        ss = fmaf(v, v, ss);
    }
    if (norm_w) {
        const float r = 1.0f / sqrtf(block_sum(ss, scratch) / n + eps);
        if (threadIdx.x == 0) rstd_out[m] = r;
        for (int c = threadIdx.x; c < n; c += blockDim.x) row[c] = row[c] * r * to_f32(norm_w[c]);
    }
    __syncthreads();
    if (cos_table) {
        const int half = head_dim / 2;
        const long long token = m % seq;
        for (int pair = threadIdx.x; pair < n / 2; pair += blockDim.x) {
            const int k = pair % half;
            const float cs = cos_table[token * half + k], sn = sin_table[token * half + k];
            const float x0 = row[2 * pair], x1 = row[2 * pair + 1];
            out[m * n + 2 * pair] = from_f32<T>(x0 * cs - x1 * sn);
            out[m * n + 2 * pair + 1] = from_f32<T>(x0 * sn + x1 * cs);
        }
    } else {
        for (int c = threadIdx.x; c < n; c += blockDim.x) out[m * n + c] = from_f32<T>(row[c]);
    }
}

template <typename T>
__device__ void qkv_lora_backward(const T* d_out, const T* pre, const float* rstd, const T* norm_w,
                                  const float* cos_table, const float* sin_table, int seq,
                                  const unsigned char* head_kind, float scale_s, float scale_t,
                                  T* g_pre, T* g_s, T* g_t, int n, int head_dim) {
    extern __shared__ float qkv_smem[];
    float* row = qkv_smem;  // [n]
    __shared__ float scratch[32];
    const long long m = blockIdx.x;
    if (cos_table) {
        // Inverse rotation (angle -> -angle).
        const int half = head_dim / 2;
        const long long token = m % seq;
        for (int pair = threadIdx.x; pair < n / 2; pair += blockDim.x) {
            const int k = pair % half;
            const float cs = cos_table[token * half + k], sn = sin_table[token * half + k];
            const float g0 = to_f32(d_out[m * n + 2 * pair]), g1 = to_f32(d_out[m * n + 2 * pair + 1]);
            row[2 * pair] = g0 * cs + g1 * sn;
            row[2 * pair + 1] = -g0 * sn + g1 * cs;
        }
    } else {
        for (int c = threadIdx.x; c < n; c += blockDim.x) row[c] = to_f32(d_out[m * n + c]);
    }
    __syncthreads();
    if (norm_w) {
        const float r = rstd[m];
        float dot = 0.0f;
        for (int c = threadIdx.x; c < n; c += blockDim.x) {
            row[c] *= to_f32(norm_w[c]);  // g_hat
            dot = fmaf(row[c], to_f32(pre[m * n + c]), dot);
        }
        const float coef = r * r * r * block_sum(dot, scratch) / n;
        for (int c = threadIdx.x; c < n; c += blockDim.x)
            row[c] = r * row[c] - to_f32(pre[m * n + c]) * coef;
    }
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
        const float g = row[c];
        const int kind = head_kind[c / head_dim];
        g_pre[m * n + c] = from_f32<T>(g);
        if (g_s) g_s[m * n + c] = from_f32<T>(kind == HEAD_SPATIAL ? scale_s * g : 0.0f);
        if (g_t) g_t[m * n + c] = from_f32<T>(kind == HEAD_TEMPORAL ? scale_t * g : 0.0f);
    }
}

#define QKV_LORA_KERNELS(T, suffix)                                                                \
    extern "C" __global__ void __launch_bounds__(256) qkv_lora_forward_##suffix(                   \
        T* pre, T* out, float* rstd, const T* bias, const T* u_s, const T* b_s, int rank_s,        \
        float scale_s, const T* u_t, const T* b_t, int rank_t, float scale_t,                      \
        const unsigned char* head_kind, const T* norm_w, float eps, const float* cos_table,        \
        const float* sin_table, int seq, int n, int head_dim) {                                    \
        qkv_lora_forward<T>(pre, out, rstd, bias, u_s, b_s, rank_s, scale_s, u_t, b_t, rank_t,     \
                            scale_t, head_kind, norm_w, eps, cos_table, sin_table, seq, n,         \
                            head_dim);                                                             \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) qkv_lora_backward_##suffix(                  \
        const T* d_out, const T* pre, const float* rstd, const T* norm_w, const float* cos_table,  \
        const float* sin_table, int seq, const unsigned char* head_kind, float scale_s,            \
        float scale_t, T* g_pre, T* g_s, T* g_t, int n, int head_dim) {                            \
        qkv_lora_backward<T>(d_out, pre, rstd, norm_w, cos_table, sin_table, seq, head_kind,       \
                             scale_s, scale_t, g_pre, g_s, g_t, n, head_dim);                      \
    }

QKV_LORA_KERNELS(float, f32)
QKV_LORA_KERNELS(bf16, bf16)
