// Elementwise kernels: binary ops (same shape / row broadcast), affine, axpy, GELU-tanh, SiLU,
// forward and backward, each in f32 and bf16 (bf16 storage, f32 arithmetic).
//
// Thread mapping: one thread per element with a grid-stride loop over `n` (64-bit index). These
// ops are memory bound, so the only thing that matters is that consecutive threads touch
// consecutive addresses (coalesced 128-byte transactions); the launcher caps the grid at a few
// waves of blocks and lets the stride loop cover the rest, which keeps launch overhead constant.
// Row broadcast: `b` has `b_len` elements and repeats along the leading dims of `a`/`out`
// (out[i] = a[i] op b[i % b_len]), e.g. a bias over rows; `b` stays in L1/L2.
#include "fym_common.cuh"

struct AddOp { __device__ static float apply(float a, float b) { return a + b; } };
struct SubOp { __device__ static float apply(float a, float b) { return a - b; } };
struct MulOp { __device__ static float apply(float a, float b) { return a * b; } };
struct DivOp { __device__ static float apply(float a, float b) { return a / b; } };

template <typename Op, typename T>
__device__ void binary_same(const T* a, const T* b, T* out, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        out[i] = from_f32<T>(Op::apply(to_f32(a[i]), to_f32(b[i])));
}

template <typename Op, typename T>
__device__ void binary_row(const T* a, const T* b, T* out, long long n, long long b_len) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        out[i] = from_f32<T>(Op::apply(to_f32(a[i]), to_f32(b[i % b_len])));
}

#define BINARY_KERNELS(name, Op, T, suffix)                                                        \
    extern "C" __global__ void name##_##suffix(const T* a, const T* b, T* out, long long n) {     \
        binary_same<Op, T>(a, b, out, n);                                                          \
    }                                                                                              \
    extern "C" __global__ void name##_row_##suffix(const T* a, const T* b, T* out, long long n,   \
                                                   long long b_len) {                             \
        binary_row<Op, T>(a, b, out, n, b_len);                                                    \
    }

BINARY_KERNELS(add, AddOp, float, f32)
BINARY_KERNELS(sub, SubOp, float, f32)
BINARY_KERNELS(mul, MulOp, float, f32)
BINARY_KERNELS(div, DivOp, float, f32)
BINARY_KERNELS(add, AddOp, bf16, bf16)
BINARY_KERNELS(sub, SubOp, bf16, bf16)
BINARY_KERNELS(mul, MulOp, bf16, bf16)
BINARY_KERNELS(div, DivOp, bf16, bf16)

// out = alpha * x + beta
template <typename T>
__device__ void affine(const T* x, T* out, long long n, float alpha, float beta) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        out[i] = from_f32<T>(fmaf(alpha, to_f32(x[i]), beta));
}

// y += alpha * x (gradient accumulation is alpha = 1)
template <typename T>
__device__ void axpy(const T* x, T* y, long long n, float alpha) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        y[i] = from_f32<T>(fmaf(alpha, to_f32(x[i]), to_f32(y[i])));
}

// GELU, tanh approximation: 0.5 x (1 + tanh(c (x + a x^3))), c = sqrt(2/pi), a = 0.044715.
#define GELU_C 0.7978845608028654f
#define GELU_A 0.044715f

struct GeluTanh {
    __device__ static float forward(float x) {
        const float u = GELU_C * (x + GELU_A * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    __device__ static float derivative(float x) {
        const float u = GELU_C * (x + GELU_A * x * x * x);
        const float t = tanhf(u);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * x * x);
    }
};

// SiLU: x sigmoid(x); derivative sigmoid(x) (1 + x (1 - sigmoid(x))).
struct Silu {
    __device__ static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
    __device__ static float forward(float x) { return x * sigmoid(x); }
    __device__ static float derivative(float x) {
        const float s = sigmoid(x);
        return s * (1.0f + x * (1.0f - s));
    }
};

template <typename Act, typename T>
__device__ void activation_forward(const T* x, T* out, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        out[i] = from_f32<T>(Act::forward(to_f32(x[i])));
}

// dx = dy * act'(x)
template <typename Act, typename T>
__device__ void activation_backward(const T* x, const T* dy, T* dx, long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        dx[i] = from_f32<T>(to_f32(dy[i]) * Act::derivative(to_f32(x[i])));
}

#define UNARY_KERNELS(T, suffix)                                                                   \
    extern "C" __global__ void affine_##suffix(const T* x, T* out, long long n, float alpha,      \
                                               float beta) {                                       \
        affine<T>(x, out, n, alpha, beta);                                                         \
    }                                                                                              \
    extern "C" __global__ void axpy_##suffix(const T* x, T* y, long long n, float alpha) {        \
        axpy<T>(x, y, n, alpha);                                                                   \
    }                                                                                              \
    extern "C" __global__ void gelu_tanh_##suffix(const T* x, T* out, long long n) {              \
        activation_forward<GeluTanh, T>(x, out, n);                                                \
    }                                                                                              \
    extern "C" __global__ void gelu_tanh_backward_##suffix(const T* x, const T* dy, T* dx,        \
                                                           long long n) {                         \
        activation_backward<GeluTanh, T>(x, dy, dx, n);                                            \
    }                                                                                              \
    extern "C" __global__ void silu_##suffix(const T* x, T* out, long long n) {                   \
        activation_forward<Silu, T>(x, out, n);                                                    \
    }                                                                                              \
    extern "C" __global__ void silu_backward_##suffix(const T* x, const T* dy, T* dx,             \
                                                      long long n) {                              \
        activation_backward<Silu, T>(x, dy, dx, n);                                                \
    }

UNARY_KERNELS(float, f32)
UNARY_KERNELS(bf16, bf16)
