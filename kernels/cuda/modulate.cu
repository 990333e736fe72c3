// adaLN modulation: out[b, s, :] = x[b, s, :] * (1 + scale[b, :]) + shift[b, :] for x
// [batch, tokens, dim], and its backward: dx = dy * (1 + scale) (one thread per element), and
// dscale[b, c] = sum_s dy * x, dshift[b, c] = sum_s dy (one thread per (b, c), walking the
// tokens: consecutive threads read consecutive columns, so every step is one coalesced row read;
// f32 accumulation in token order like the CPU). f32 and bf16.
#include "fym_common.cuh"

template <typename T>
__device__ void modulate(const T* x, const T* scale, const T* shift, T* out, long long batch,
                         long long tokens, long long dim) {
    const long long n = batch * tokens * dim;
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        const long long p = (i / (tokens * dim)) * dim + i % dim;
        out[i] = from_f32<T>(fmaf(to_f32(x[i]), 1.0f + to_f32(scale[p]), to_f32(shift[p])));
    }
}

template <typename T>
__device__ void modulate_backward_dx(const T* dy, const T* scale, T* dx, long long batch,
                                     long long tokens, long long dim) {
    const long long n = batch * tokens * dim;
    for (long long i = global_thread_index(); i < n; i += grid_stride()) {
        const long long p = (i / (tokens * dim)) * dim + i % dim;
        dx[i] = from_f32<T>(to_f32(dy[i]) * (1.0f + to_f32(scale[p])));
    }
}

template <typename T>
__device__ void modulate_backward_params(const T* x, const T* dy, T* dscale, T* dshift,
                                         long long batch, long long tokens, long long dim) {
    for (long long p = global_thread_index(); p < batch * dim; p += grid_stride()) {
        const long long b = p / dim, c = p % dim;
        float ds = 0.0f, dh = 0.0f;
        for (long long s = 0; s < tokens; ++s) {
            const long long i = (b * tokens + s) * dim + c;
            const float g = to_f32(dy[i]);
            ds += g * to_f32(x[i]);
            dh += g;
        }
        dscale[p] = from_f32<T>(ds);
        dshift[p] = from_f32<T>(dh);
    }
}

#define MODULATE_KERNELS(T, suffix)                                                                \
    extern "C" __global__ void modulate_##suffix(const T* x, const T* scale, const T* shift, T* out, \
                                                 long long batch, long long tokens, long long dim) { \
        modulate<T>(x, scale, shift, out, batch, tokens, dim);                                     \
    }                                                                                              \
    extern "C" __global__ void modulate_backward_dx_##suffix(const T* dy, const T* scale, T* dx,   \
                                                             long long batch, long long tokens,    \
                                                             long long dim) {                      \
        modulate_backward_dx<T>(dy, scale, dx, batch, tokens, dim);                                \
    }                                                                                              \
    extern "C" __global__ void modulate_backward_params_##suffix(                                  \
        const T* x, const T* dy, T* dscale, T* dshift, long long batch, long long tokens,          \
        long long dim) {                                                                           \
        modulate_backward_params<T>(x, dy, dscale, dshift, batch, tokens, dim);                    \
    }

MODULATE_KERNELS(float, f32)
MODULATE_KERNELS(bf16, bf16)
