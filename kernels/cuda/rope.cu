// 3D rotary position embedding apply, f32 and bf16 (bf16 storage, f32 arithmetic). The Rust side
// builds the table (Wan's t/h/w split of head_dim, f64 angles rounded to f32): cos/sin are f32
// `[seq, head_dim/2]`, one angle per token and interleaved pair (2k, 2k+1), shared by all heads.
// x and out are `[batch, seq, heads, head_dim]`:
//   out[2k]   = x[2k] cos - x[2k+1] sin
//   out[2k+1] = x[2k] sin + x[2k+1] cos
// `inverse` != 0 rotates by the negative angle (sin -> -sin), which is the backward pass.
//
// Thread mapping: one thread per pair, pairs numbered in memory order (grid-stride loop over
// batch*seq*heads*half), so a warp reads 32 consecutive pairs = 256 contiguous bytes of x in f32;
// the token of a pair is (pair / (heads*half)) % seq, and the table row it needs is shared by the
// `heads` consecutive groups of threads that touch the same token (served from L1).
#include "fym_common.cuh"

template <typename T>
__device__ void rope_apply(const T* x, const float* cos_table, const float* sin_table, T* out,
                           long long num_pairs, int seq, int heads, int half, int inverse) {
    for (long long p = global_thread_index(); p < num_pairs; p += grid_stride()) {
        const int k = (int)(p % half);
        const long long token = (p / ((long long)heads * half)) % seq;
        const float c = cos_table[token * half + k];
        const float s = inverse ? -sin_table[token * half + k] : sin_table[token * half + k];
        const float x0 = to_f32(x[2 * p]);
        const float x1 = to_f32(x[2 * p + 1]);
        out[2 * p] = from_f32<T>(x0 * c - x1 * s);
        out[2 * p + 1] = from_f32<T>(x0 * s + x1 * c);
    }
}

#define ROPE_KERNELS(T, suffix)                                                                    \
    extern "C" __global__ void rope_apply_##suffix(const T* x, const float* cos_table,            \
                                                   const float* sin_table, T* out,                \
                                                   long long num_pairs, int seq, int heads,       \
                                                   int half, int inverse) {                        \
        rope_apply<T>(x, cos_table, sin_table, out, num_pairs, seq, heads, half, inverse);        \
    }

ROPE_KERNELS(float, f32)
ROPE_KERNELS(bf16, bf16)
