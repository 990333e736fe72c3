// GEMM, row-major like the CPU's sgemm: C = alpha * op(A) * op(B) + beta * C, op(A) m x k, op(B)
// k x n, C m x n; `trans_a` means A is stored k x m, `trans_b` means B is stored n x k. Every
// leading dimension is a row stride in elements. Batched through gridDim.z with element strides
// between the matrices of consecutive batches. beta == 0 overwrites C (its old contents are never
// read, so NaNs there do not leak). One kernel per transpose combination (nn, nt, tn, tt): the
// layout of each operand in shared memory, and so the ldmatrix flavour, is a compile-time choice.
//
// bf16 (gemm_<tt>_bf16): tensor cores through inline PTX mma.sync.m16n8k16 (bf16 in, f32 accumulate).
//   Block tile 128 x 128 x 32, 256 threads = 8 warps in a 2 (m) x 4 (n) grid, each warp 64 x 32
//   = 4 x 4 mma tiles (64 f32 accumulators per thread). 128 x 128 is the largest tile whose
//   accumulators still fit the register file at 2 blocks/SM and it reads 2*(128+128)*32 bytes of
//   operands per 2*128*128*32 flops (64 flop/byte from shared memory); a k step of 32 keeps two
//   stages (40 KB) within the 48 KB of static shared memory.
//   Global -> shared: cp.async 16-byte chunks, double buffered (tile k+1 is in flight while the
//   tensor cores work on tile k). Operands are kept in shared memory in their global orientation
//   (k-contiguous or m/n-contiguous) so every chunk is one contiguous 16-byte read; the fragment
//   loader then uses ldmatrix for k-contiguous tiles and ldmatrix.trans for the others. Rows are
//   padded by 8 elements, which makes every 8-row ldmatrix phase hit 8 distinct 16-byte bank
//   groups (row strides of 80 B and 272 B).
//   Ragged edges: a chunk that is partly outside the matrix is copied with cp.async's zero fill
//   (src-size < 16); a whole operand whose rows are not 16-byte aligned (leading dimension not a
//   multiple of 8, or an offset base) is loaded element by element with guards instead (the
//   `vec_a`/`vec_b` flags, decided by the launcher). Out-of-range C elements are never written.
// f32 (gemm_<tt>_f32): the parity reference, SIMT: block tile 64 x 64 x 16, 256 threads each
//   computing a 4 x 4 grid of outputs strided by 16 (conflict-free shared reads); plain loads with
//   guards. Accumulates in f32 in k order, like the CPU reference within a k block.
//
// Run on an H200 (sm_90) against the CPU kernels by kernels/tests/cuda_kernels.rs (BENCHMARKS.md).
#include "fym_common.cuh"

// ------------------------------------------------------------------------------------ bf16 path

#define GEMM_BM 128
#define GEMM_BN 128
#define GEMM_BK 32
#define GEMM_THREADS 256
#define GEMM_PAD 8
// Shared elements of one operand stage: k-contiguous [128][32+8] or m/n-contiguous [32][128+8].
#define GEMM_STAGE_KMAJOR (GEMM_BM * (GEMM_BK + GEMM_PAD))
#define GEMM_STAGE_MMAJOR (GEMM_BK * (GEMM_BM + GEMM_PAD))
#define GEMM_STAGE (GEMM_STAGE_KMAJOR > GEMM_STAGE_MMAJOR ? GEMM_STAGE_KMAJOR : GEMM_STAGE_MMAJOR)

__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

// Copies `bytes` (0..16) from global `src` to shared `dst` and zero-fills the rest of the 16.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// d += a * b for one m16n8k16 tile (bf16 operands, f32 accumulators).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                         unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Loads one 128 x 32 operand tile into shared memory. `rows_major` is the operand's m (or n)
// extent; the tile covers m in [m0, m0+128) and k in [k0, k0+32). K_CONTIG: stored [m][k] in
// global (element (m, k) at m*ld + k), kept as [128][40] in shared; else stored [k][m] (at
// k*ld + m), kept as [32][136].
template <bool K_CONTIG>
__device__ __forceinline__ void load_tile_bf16(bf16* tile, const bf16* g, long long ld, int rows_major,
                                               int depth, int m0, int k0, bool vec) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const int c = threadIdx.x + i * GEMM_THREADS;  // 512 chunks of 8 elements
        int m, k;             // first element of the chunk
        int valid;            // elements of the chunk inside the matrix
        bf16* dst;
        if (K_CONTIG) {
            m = m0 + c / 4;
            k = k0 + (c % 4) * 8;
            valid = m < rows_major ? min(8, max(0, depth - k)) : 0;
            dst = tile + (c / 4) * (GEMM_BK + GEMM_PAD) + (c % 4) * 8;
        } else {
            k = k0 + c / 16;
            m = m0 + (c % 16) * 8;
            valid = k < depth ? min(8, max(0, rows_major - m)) : 0;
            dst = tile + (c / 16) * (GEMM_BM + GEMM_PAD) + (c % 16) * 8;
        }
        const long long offset = K_CONTIG ? (long long)m * ld + k : (long long)k * ld + m;
        if (vec) {
            // A fully outside chunk copies 0 bytes from a valid address (the matrix base).
            cp_async_16(dst, valid > 0 ? g + offset : g, valid * 2);
        } else {
            __align__(16) bf16 v[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) v[e] = e < valid ? g[offset + e] : __float2bfloat16_rn(0.0f);
            *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
        }
    }
}

template <bool TRANS_A, bool TRANS_B>
__device__ void gemm_bf16(int m, int n, int k, float alpha, const bf16* a, long long lda,
                          long long stride_a, const bf16* b, long long ldb, long long stride_b,
                          float beta, bf16* c, long long ldc, long long stride_c, int vec_a,
                          int vec_b) {
    __shared__ __align__(16) bf16 sa[2][GEMM_STAGE];
    __shared__ __align__(16) bf16 sb[2][GEMM_STAGE];
    a += blockIdx.z * stride_a;
    b += blockIdx.z * stride_b;
    c += blockIdx.z * stride_c;
    const int m0 = blockIdx.y * GEMM_BM;
    const int n0 = blockIdx.x * GEMM_BN;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int wm = (warp % 2) * 64;  // warp's rows within the block tile
    const int wn = (warp / 2) * 32;  // warp's columns

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    // A is k-contiguous unless transposed; B is k-contiguous only when transposed (stored n x k).
    const int k_tiles = (k + GEMM_BK - 1) / GEMM_BK;
    load_tile_bf16<!TRANS_A>(sa[0], a, lda, m, k, m0, 0, vec_a);
    load_tile_bf16<TRANS_B>(sb[0], b, ldb, n, k, n0, 0, vec_b);
    cp_async_commit();

    for (int kt = 0; kt < k_tiles; ++kt) {
        const int cur = kt & 1;
        if (kt + 1 < k_tiles) {
            load_tile_bf16<!TRANS_A>(sa[cur ^ 1], a, lda, m, k, m0, (kt + 1) * GEMM_BK, vec_a);
            load_tile_bf16<TRANS_B>(sb[cur ^ 1], b, ldb, n, k, n0, (kt + 1) * GEMM_BK, vec_b);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* ta = sa[cur];
        const bf16* tb = sb[cur];
#pragma unroll
        for (int ks = 0; ks < GEMM_BK; ks += 16) {
            unsigned af[4][4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int row = wm + i * 16;
                if (!TRANS_A) {
                    // [m][k]: lanes 0-15 rows 0-15 at k, lanes 16-31 rows 0-15 at k+8.
                    ldmatrix_x4(af[i], ta + (row + (lane % 16)) * (GEMM_BK + GEMM_PAD) + ks + (lane / 16) * 8);
                } else {
                    // [k][m]: matrix q = lane/8 holds m-half q%2, k-half q/2.
                    const int q = lane / 8;
                    ldmatrix_x4_trans(af[i], ta + (ks + (lane % 8) + (q / 2) * 8) * (GEMM_BM + GEMM_PAD) +
                                                 row + (q % 2) * 8);
                }
            }
            unsigned bfr[4][2];
#pragma unroll
            for (int j = 0; j < 4; j += 2) {
                const int col = wn + j * 8;
                const int q = lane / 8;
                unsigned r[4];
                if (TRANS_B) {
                    // [n][k]: matrix q holds n-half q/2, k-half q%2.
                    ldmatrix_x4(r, tb + (col + (lane % 8) + (q / 2) * 8) * (GEMM_BK + GEMM_PAD) + ks + (q % 2) * 8);
                } else {
                    // [k][n]: matrix q holds k-half q%2, n-half q/2.
                    ldmatrix_x4_trans(r, tb + (ks + (lane % 8) + (q % 2) * 8) * (GEMM_BN + GEMM_PAD) + col +
                                             (q / 2) * 8);
                }
                bfr[j][0] = r[0];
                bfr[j][1] = r[1];
                bfr[j + 1][0] = r[2];
                bfr[j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) mma_bf16(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
        }
        __syncthreads();  // the next iteration overwrites the buffer just read
    }
    cp_async_wait<0>();  // k == 0 leaves the first (empty) stage in flight

    // Accumulator (i, j, e): row wm + 16i + lane/4 + 8*(e/2), column wn + 8j + 2*(lane%4) + e%2.
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = m0 + wm + i * 16 + lane / 4 + (e / 2) * 8;
                const int col = n0 + wn + j * 8 + (lane % 4) * 2 + (e % 2);
                if (row < m && col < n) {
                    bf16* out = c + (long long)row * ldc + col;
                    float v = alpha * acc[i][j][e];
                    if (beta != 0.0f) v += beta * to_f32(*out);
                    *out = from_f32<bf16>(v);
                }
            }
}

// ------------------------------------------------------------------------------------- f32 path

#define SGEMM_TILE 64
#define SGEMM_BK 16

// Element (row, kk) of op(A) where op(A) is m x k.
template <bool TRANS>
__device__ __forceinline__ float load_op(const float* p, long long ld, int rows, int depth, int r, int kk) {
    if (r >= rows || kk >= depth) return 0.0f;
    return TRANS ? p[(long long)kk * ld + r] : p[(long long)r * ld + kk];
}

template <bool TRANS_A, bool TRANS_B>
__device__ void gemm_f32(int m, int n, int k, float alpha, const float* a, long long lda,
                         long long stride_a, const float* b, long long ldb, long long stride_b,
                         float beta, float* c, long long ldc, long long stride_c) {
    __shared__ float sa[SGEMM_BK][SGEMM_TILE + 4];
    __shared__ float sb[SGEMM_BK][SGEMM_TILE + 4];
    a += blockIdx.z * stride_a;
    b += blockIdx.z * stride_b;
    c += blockIdx.z * stride_c;
    const int m0 = blockIdx.y * SGEMM_TILE;
    const int n0 = blockIdx.x * SGEMM_TILE;
    const int tx = threadIdx.x % 16;
    const int ty = threadIdx.x / 16;
    float acc[4][4] = {};

    for (int k0 = 0; k0 < k; k0 += SGEMM_BK) {
        // 1024 elements per operand tile, 4 per thread; consecutive threads walk the operand's
        // contiguous dimension so the global reads coalesce.
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int e = threadIdx.x + i * 256;
            const int am = TRANS_A ? e % SGEMM_TILE : e / SGEMM_BK;
            const int ak = TRANS_A ? e / SGEMM_TILE : e % SGEMM_BK;
            sa[ak][am] = load_op<TRANS_A>(a, lda, m, k, m0 + am, k0 + ak);
            // op(B) is k x n; B^T (trans_b) is n x k with k contiguous.
            const int bn = TRANS_B ? e / SGEMM_BK : e % SGEMM_TILE;
            const int bk = TRANS_B ? e % SGEMM_BK : e / SGEMM_TILE;
            sb[bk][bn] = load_op<!TRANS_B>(b, ldb, n, k, n0 + bn, k0 + bk);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < SGEMM_BK; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = sa[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = sb[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int row = m0 + ty + 16 * i;
            const int col = n0 + tx + 16 * j;
            if (row < m && col < n) {
                float* out = c + (long long)row * ldc + col;
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v += beta * *out;
                *out = v;
            }
        }
}

#define GEMM_KERNELS(name, TA, TB)                                                                 \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS) name##_bf16(                        \
        int m, int n, int k, float alpha, const bf16* a, long long lda, long long stride_a,        \
        const bf16* b, long long ldb, long long stride_b, float beta, bf16* c, long long ldc,      \
        long long stride_c, int vec_a, int vec_b) {                                                \
        gemm_bf16<TA, TB>(m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,        \
                          stride_c, vec_a, vec_b);                                                 \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) name##_f32(                                  \
        int m, int n, int k, float alpha, const float* a, long long lda, long long stride_a,       \
        const float* b, long long ldb, long long stride_b, float beta, float* c, long long ldc,    \
        long long stride_c) {                                                                      \
        gemm_f32<TA, TB>(m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,         \
                         stride_c);                                                                \
    }

GEMM_KERNELS(gemm_nn, false, false)
GEMM_KERNELS(gemm_nt, false, true)
GEMM_KERNELS(gemm_tn, true, false)
GEMM_KERNELS(gemm_tt, true, true)
