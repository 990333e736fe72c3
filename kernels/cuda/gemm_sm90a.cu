// bf16 GEMM on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a only), for the layout of
// a linear layer: C = alpha * A * B^T + beta * C with A stored m x k and B stored n x k (both
// k-contiguous, "nt" in gemm.cu's naming), row-major C, batched through gridDim.z like gemm.cu.
//
// Block tile 128 x BN x 64 (BN = 128 or 256), 256 threads = 2 warpgroups; warpgroup g computes
// rows [64g, 64g + 64) of the tile with one wgmma.m64nBNk16 per 16 of k, both operands read from
// shared memory through matrix descriptors, f32 accumulators in registers (BN/2 per thread).
// Global -> shared: every thread issues cp.async 16-byte chunks into a STAGES-deep ring. Each
// operand tile is kept as rows of 64 bf16 = 128 bytes in the 128-byte swizzle wgmma expects: the
// 16-byte chunk j of row r sits at chunk j ^ (r % 8), each stage 1024-byte aligned (the swizzle
// pattern repeats every 8 rows = 1024 bytes, which is the descriptor's stride byte offset).
// One wgmma group stays in flight while the next tile's copies are issued, so a stage is refilled
// two iterations after it was last read (prefetch distance STAGES - 2).
// Ragged edges: chunks partly outside the matrix are zero-filled by cp.async (src-size < 16), so
// k need not be a multiple of 64; out-of-range C elements are never written. The launcher sends
// only operands whose rows are 16-byte aligned (lda, ldb and batch strides multiples of 8).
//
// gemm_nt_tma_*: the same tiles and wgmma, fed by the tensor memory accelerator and specialised
// warps: one producer warp (one thread of it) issues a bulk tensor copy per operand tile, which
// lands already swizzled and zero-fills whatever lies outside the matrix, and signals a "full"
// mbarrier with the byte count; the two consumer warpgroups wait on it, run the tile's wgmmas
// and arrive on the stage's "empty" mbarrier once the tensor cores are done with it (one wgmma
// group stays in flight). Nobody waits on a block-wide barrier in the main loop.
#include "fym_common.cuh"

#define WG_BM 128
#define WG_BK 64
#define WG_THREADS 256
#define WG_ROW_BYTES (WG_BK * 2)

__device__ __forceinline__ unsigned smem_u32(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void cp_async_16(unsigned dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// cp.async writes through the generic proxy; wgmma reads shared memory through the async proxy.
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Descriptor of a K-major operand in 128-byte swizzle: start address, leading byte offset 16
// (unused by this layout), stride byte offset 1024 (8 rows of 128 bytes), swizzle mode 1.
__device__ __forceinline__ unsigned long long smem_desc(unsigned addr) {
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}

// D[64 x 128] (+)= A[64 x 16] * B[16 x 128], both operands K-major in shared memory (descriptors),
// f32 accumulators: d[j][e] is row 16*warp + lane/4 + 8*(e/2), column 8j + 2*(lane%4) + e%2.
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[16][4], unsigned long long desc_a,
                                                 unsigned long long desc_b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, "
        "%8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, "
        "%40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, "
        "%56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
          "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
          "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
          "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
          "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
          "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
          "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
          "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
          "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// D[64 x 256] (+)= A[64 x 16] * B[16 x 256], both operands K-major in shared memory (descriptors),
// f32 accumulators: d[j][e] is row 16*warp + lane/4 + 8*(e/2), column 8j + 2*(lane%4) + e%2.
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[32][4], unsigned long long desc_a,
                                                 unsigned long long desc_b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, "
        "%8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, "
        "%40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, "
        "%56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, "
        "%72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, "
        "%88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, "
        "%104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, "
        "%120, %121, %122, %123, %124, %125, %126, %127"
        "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
          "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
          "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
          "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
          "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
          "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
          "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
          "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
          "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3]),
          "+f"(d[16][0]), "+f"(d[16][1]), "+f"(d[16][2]), "+f"(d[16][3]),
          "+f"(d[17][0]), "+f"(d[17][1]), "+f"(d[17][2]), "+f"(d[17][3]),
          "+f"(d[18][0]), "+f"(d[18][1]), "+f"(d[18][2]), "+f"(d[18][3]),
          "+f"(d[19][0]), "+f"(d[19][1]), "+f"(d[19][2]), "+f"(d[19][3]),
          "+f"(d[20][0]), "+f"(d[20][1]), "+f"(d[20][2]), "+f"(d[20][3]),
          "+f"(d[21][0]), "+f"(d[21][1]), "+f"(d[21][2]), "+f"(d[21][3]),
          "+f"(d[22][0]), "+f"(d[22][1]), "+f"(d[22][2]), "+f"(d[22][3]),
          "+f"(d[23][0]), "+f"(d[23][1]), "+f"(d[23][2]), "+f"(d[23][3]),
          "+f"(d[24][0]), "+f"(d[24][1]), "+f"(d[24][2]), "+f"(d[24][3]),
          "+f"(d[25][0]), "+f"(d[25][1]), "+f"(d[25][2]), "+f"(d[25][3]),
          "+f"(d[26][0]), "+f"(d[26][1]), "+f"(d[26][2]), "+f"(d[26][3]),
          "+f"(d[27][0]), "+f"(d[27][1]), "+f"(d[27][2]), "+f"(d[27][3]),
          "+f"(d[28][0]), "+f"(d[28][1]), "+f"(d[28][2]), "+f"(d[28][3]),
          "+f"(d[29][0]), "+f"(d[29][1]), "+f"(d[29][2]), "+f"(d[29][3]),
          "+f"(d[30][0]), "+f"(d[30][1]), "+f"(d[30][2]), "+f"(d[30][3]),
          "+f"(d[31][0]), "+f"(d[31][1]), "+f"(d[31][2]), "+f"(d[31][3])
        : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

template <int BN>
__device__ __forceinline__ void wgmma_tile(float (&d)[BN / 8][4], unsigned long long desc_a,
                                           unsigned long long desc_b, int accumulate);
template <>
__device__ __forceinline__ void wgmma_tile<128>(float (&d)[16][4], unsigned long long desc_a,
                                                unsigned long long desc_b, int accumulate) {
    wgmma_m64n128k16(d, desc_a, desc_b, accumulate);
}
template <>
__device__ __forceinline__ void wgmma_tile<256>(float (&d)[32][4], unsigned long long desc_a,
                                                unsigned long long desc_b, int accumulate) {
    wgmma_m64n256k16(d, desc_a, desc_b, accumulate);
}

// Copies rows [r0, r0 + ROWS) x k [k0, k0 + 64) of a k-contiguous operand (rows_total x depth,
// row stride ld) into the swizzled tile at shared address `tile`.
template <int ROWS>
__device__ __forceinline__ void load_tile(unsigned tile, const bf16* g, long long ld, int rows_total,
                                          int depth, int r0, int k0) {
#pragma unroll
    for (int i = 0; i < ROWS * 8 / WG_THREADS; ++i) {
        const int c = threadIdx.x + i * WG_THREADS;
        const int row = c >> 3;
        const int chunk = c & 7;
        const int kk = k0 + chunk * 8;
        const int valid = r0 + row < rows_total ? min(8, max(0, depth - kk)) : 0;
        const bf16* src = valid > 0 ? g + (long long)(r0 + row) * ld + kk : g;
        cp_async_16(tile + row * WG_ROW_BYTES + ((chunk ^ (row & 7)) << 4), src, valid * 2);
    }
}

// C = alpha * acc + beta * C for one warpgroup's 64 x BN accumulators (rows from row_base, in
// steps of 8, columns from n0), skipping what lies outside the m x n matrix. Neighbouring columns
// go out as one bf16x2 store when the row stride allows it.
template <int BN>
__device__ __forceinline__ void store_accumulators(const float (&acc)[BN / 8][4], int row_base, int n0,
                                                   int m, int n, float alpha, float beta, bf16* c,
                                                   long long ldc, long long stride_c) {
    const int lane = threadIdx.x & 31;
    const bool pairs = ((ldc | stride_c) & 1) == 0;  // (row, col) and (row, col + 1) share 4 bytes
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        const int col = n0 + j * 8 + (lane % 4) * 2;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = row_base + h * 8;
            if (row >= m || col >= n) continue;
            bf16* out = c + (long long)row * ldc + col;
            float v0 = alpha * acc[j][2 * h];
            float v1 = alpha * acc[j][2 * h + 1];
            if (pairs && col + 1 < n) {
                __nv_bfloat162* out2 = reinterpret_cast<__nv_bfloat162*>(out);
                if (beta != 0.0f) {
                    const float2 old = __bfloat1622float2(*out2);
                    v0 += beta * old.x;
                    v1 += beta * old.y;
                }
                *out2 = __floats2bfloat162_rn(v0, v1);
            } else {
                if (beta != 0.0f) v0 += beta * to_f32(out[0]);
                out[0] = from_f32<bf16>(v0);
                if (col + 1 < n) {
                    if (beta != 0.0f) v1 += beta * to_f32(out[1]);
                    out[1] = from_f32<bf16>(v1);
                }
            }
        }
    }
}

template <int BN, int STAGES>
__device__ void gemm_nt_wgmma(int m, int n, int k, float alpha, const bf16* a, long long lda,
                              long long stride_a, const bf16* b, long long ldb, long long stride_b,
                              float beta, bf16* c, long long ldc, long long stride_c) {
    constexpr int A_BYTES = WG_BM * WG_ROW_BYTES;
    constexpr int STAGE_BYTES = A_BYTES + BN * WG_ROW_BYTES;
    constexpr int AHEAD = STAGES - 2;
    static_assert(AHEAD >= 1, "one wgmma group in flight needs at least 3 stages");
    extern __shared__ unsigned char smem_raw[];
    // The swizzle repeats every 1024 bytes: align the ring (the launcher adds 1 KB of slack).
    const unsigned ring = (smem_u32(smem_raw) + 1023u) & ~1023u;

    a += blockIdx.z * stride_a;
    b += blockIdx.z * stride_b;
    c += blockIdx.z * stride_c;
    const int m0 = blockIdx.y * WG_BM;
    const int n0 = blockIdx.x * BN;
    const int warpgroup = threadIdx.x >> 7;
    const int k_tiles = (k + WG_BK - 1) / WG_BK;

    float acc[BN / 8][4];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < AHEAD; ++s) {
        if (s < k_tiles) {
            load_tile<WG_BM>(ring + s * STAGE_BYTES, a, lda, m, k, m0, s * WG_BK);
            load_tile<BN>(ring + s * STAGE_BYTES + A_BYTES, b, ldb, n, k, n0, s * WG_BK);
        }
        cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
        // This thread's copies of tile kt have landed; after the barrier everyone's have, and
        // every warpgroup has retired the wgmma group of tile kt - 2 (it waits down to one).
        cp_async_wait<AHEAD - 1>();
        fence_proxy_async();
        __syncthreads();
        const int next = kt + AHEAD;
        if (next < k_tiles) {
            const unsigned stage = ring + (next % STAGES) * STAGE_BYTES;
            load_tile<WG_BM>(stage, a, lda, m, k, m0, next * WG_BK);
            load_tile<BN>(stage + A_BYTES, b, ldb, n, k, n0, next * WG_BK);
        }
        cp_async_commit();

        const unsigned stage = ring + (kt % STAGES) * STAGE_BYTES;
        const unsigned tile_a = stage + warpgroup * 64 * WG_ROW_BYTES;
        const unsigned tile_b = stage + A_BYTES;
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < WG_BK / 16; ++ks) {
            // 16 bf16 of k = 32 bytes further along the (swizzled) rows.
            wgmma_tile<BN>(acc, smem_desc(tile_a + ks * 32), smem_desc(tile_b + ks * 32), kt > 0 || ks > 0);
        }
        wgmma_commit();
        wgmma_wait<1>();
    }
    wgmma_wait<0>();
    cp_async_wait<0>();

    const int warp = (threadIdx.x >> 5) & 3;
    const int lane = threadIdx.x & 31;
    store_accumulators<BN>(acc, m0 + warpgroup * 64 + warp * 16 + lane / 4, n0, m, n, alpha, beta, c,
                           ldc, stride_c);
}

// Shared memory of one block: STAGES x (A tile + B tile) plus 1 KB to align the ring.
#define WGMMA_KERNEL(BN, STAGES)                                                                   \
    extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_nt_wgmma_n##BN##_s##STAGES(   \
        int m, int n, int k, float alpha, const bf16* a, long long lda, long long stride_a,        \
        const bf16* b, long long ldb, long long stride_b, float beta, bf16* c, long long ldc,      \
        long long stride_c) {                                                                      \
        gemm_nt_wgmma<BN, STAGES>(m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, \
                                  stride_c);                                                       \
    }

WGMMA_KERNEL(128, 4)
WGMMA_KERNEL(256, 4)
WGMMA_KERNEL(256, 3)

// ------------------------------------------------------------------ TMA-fed, warp-specialised

// A tensor map as the driver encodes it (cuTensorMapEncodeTiled), passed by value as a
// __grid_constant__ parameter so that the copy engine can read it.
struct __align__(64) TmaMap {
    unsigned long long opaque[16];
};

#define TMA_CONSUMERS 2
#define TMA_THREADS (TMA_CONSUMERS * 128 + 32)

__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(unsigned bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Waits until the phase of `bar` with parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
    asm volatile(
        "{\n.reg .pred done;\nWAIT:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT;\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}
// Box (k0.., row0.., batch) of `map` into shared `dst`; completion counts bytes on `bar`.
__device__ __forceinline__ void tma_load(unsigned dst, const TmaMap* map, int k0, int row0, int batch,
                                         unsigned bar) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes "
        "[%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
        "l"(reinterpret_cast<unsigned long long>(map)), "r"(k0), "r"(row0), "r"(batch), "r"(bar)
        : "memory");
}

template <int BN, int STAGES>
__device__ void gemm_nt_tma(const TmaMap* map_a, const TmaMap* map_b, int m, int n, int k, float alpha,
                            float beta, bf16* c, long long ldc, long long stride_c, int batched_a,
                            int batched_b) {
    constexpr int A_BYTES = WG_BM * WG_ROW_BYTES;
    constexpr int STAGE_BYTES = A_BYTES + BN * WG_ROW_BYTES;
    extern __shared__ unsigned char smem_raw[];
    const unsigned ring = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const unsigned full = ring + STAGES * STAGE_BYTES;  // STAGES mbarriers of 8 bytes
    const unsigned empty = full + STAGES * 8;

    const int m0 = blockIdx.y * WG_BM;
    const int n0 = blockIdx.x * BN;
    const int k_tiles = (k + WG_BK - 1) / WG_BK;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, TMA_CONSUMERS * 128);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (warp == TMA_CONSUMERS * 4) {
        // Producer: refill stage s once every consumer thread has released its previous round.
        if (lane == 0) {
            const int za = batched_a ? blockIdx.z : 0;
            const int zb = batched_b ? blockIdx.z : 0;
            for (int kt = 0; kt < k_tiles; ++kt) {
                const int s = kt % STAGES;
                const int round = kt / STAGES;
                if (round > 0) mbar_wait(empty + 8 * s, (round - 1) & 1);
                const unsigned stage = ring + s * STAGE_BYTES;
                mbar_expect_tx(full + 8 * s, STAGE_BYTES);
                tma_load(stage, map_a, kt * WG_BK, m0, za, full + 8 * s);
                tma_load(stage + A_BYTES, map_b, kt * WG_BK, n0, zb, full + 8 * s);
            }
        }
        return;
    }

    const int warpgroup = warp >> 2;
    float acc[BN / 8][4];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;

    for (int kt = 0; kt < k_tiles; ++kt) {
        const int s = kt % STAGES;
        mbar_wait(full + 8 * s, (kt / STAGES) & 1);
        const unsigned stage = ring + s * STAGE_BYTES;
        const unsigned tile_a = stage + warpgroup * 64 * WG_ROW_BYTES;
        const unsigned tile_b = stage + A_BYTES;
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < WG_BK / 16; ++ks) {
            wgmma_tile<BN>(acc, smem_desc(tile_a + ks * 32), smem_desc(tile_b + ks * 32), kt > 0 || ks > 0);
        }
        wgmma_commit();
        // The group of tile kt - 1 is done: hand its stage back to the producer.
        wgmma_wait<1>();
        if (kt > 0) mbar_arrive(empty + 8 * ((kt - 1) % STAGES));
    }
    wgmma_wait<0>();

    c += blockIdx.z * stride_c;
    store_accumulators<BN>(acc, m0 + warpgroup * 64 + (warp & 3) * 16 + lane / 4, n0, m, n, alpha, beta,
                           c, ldc, stride_c);
}

// Shared memory: STAGES x (A tile + B tile), 2 x STAGES mbarriers, 1 KB to align the ring.
#define TMA_KERNEL(BN, STAGES)                                                                     \
    extern "C" __global__ void __launch_bounds__(TMA_THREADS, 1) gemm_nt_tma_n##BN##_s##STAGES(    \
        const __grid_constant__ TmaMap map_a, const __grid_constant__ TmaMap map_b, int m, int n,  \
        int k, float alpha, float beta, bf16* c, long long ldc, long long stride_c, int batched_a, \
        int batched_b) {                                                                           \
        gemm_nt_tma<BN, STAGES>(&map_a, &map_b, m, n, k, alpha, beta, c, ldc, stride_c, batched_a, \
                                batched_b);                                                        \
    }

TMA_KERNEL(128, 6)
TMA_KERNEL(256, 3)
TMA_KERNEL(256, 4)
