// Parameter-free pointwise functions (abs, sqrt, square, exp, log), forward and backward, f32 and
// bf16 (bf16 storage, f32 arithmetic). `op` is the index of the function in that order, the order
// of the CPU's UnaryOp. Precise libm functions (no fast-math), so f32 results match the CPU's to a
// few ulp. One thread per element, grid-stride loop, as in elementwise.cu.
#include "fym_common.cuh"

__device__ __forceinline__ float unary_apply(int op, float x) {
    switch (op) {
        case 0: return fabsf(x);
        case 1: return sqrtf(x);
        case 2: return x * x;
        case 3: return expf(x);
        default: return logf(x);
    }
}

// d op / dx given the input x and the output y; abs'(0) = 0.
__device__ __forceinline__ float unary_derivative(int op, float x, float y) {
    switch (op) {
        case 0: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
        case 1: return 0.5f / y;
        case 2: return 2.0f * x;
        case 3: return y;
        default: return 1.0f / x;
    }
}

template <typename T>
__device__ void unary(const T* x, T* out, long long n, int op) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        out[i] = from_f32<T>(unary_apply(op, to_f32(x[i])));
}

template <typename T>
__device__ void unary_backward(const T* x, const T* y, const T* dy, T* dx, long long n, int op) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        dx[i] = from_f32<T>(to_f32(dy[i]) * unary_derivative(op, to_f32(x[i]), to_f32(y[i])));
}

#define UNARY_KERNELS(T, suffix)                                                                   \
    extern "C" __global__ void unary_##suffix(const T* x, T* out, long long n, int op) {          \
        unary<T>(x, out, n, op);                                                                   \
    }                                                                                              \
    extern "C" __global__ void unary_backward_##suffix(const T* x, const T* y, const T* dy, T* dx, \
                                                       long long n, int op) {                      \
        unary_backward<T>(x, y, dy, dx, n, op);                                                    \
    }

UNARY_KERNELS(float, f32)
UNARY_KERNELS(bf16, bf16)
