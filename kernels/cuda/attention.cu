// Fused flash-style 3D attention, forward and backward: out = softmax(q k^T * scale, masked) v,
// lse = per-row natural log-sum-exp of the scaled logits, saved for the backward. No S x S buffer.
// Layout as the CPU kernel: q/out/dq [B, Sq, H, D], k/v/dk/dv [B, Skv, H, D], lse/delta [B, H, Sq].
//
// Mask modes are tile iteration plans, exactly the CPU's attention/plan.rs: a call is a set of
// dense (b, h, group) problems; group g's i-th token is g*group_step + i*stride. Full: one group
// of all tokens; Spatial: one group per frame (contiguous tokens); Temporal: one group per spatial
// position (frames-many tokens, tokens_per_frame apart, gathered row by row). So a masked-out tile
// is never visited. Grid: x = problem (b, h, g), y = tile of the group's queries (forward) or keys
// (backward). Scores are computed in log2 units (q pre-scaled by scale*log2 e, exp2).
//
// bf16, tensor cores (attention_{forward,backward}_mma_d{64,128}_bf16; inline PTX mma.sync
// m16n8k16 with ldmatrix, f32 accumulate), FlashAttention-2 schedule:
//   forward: 64 queries per block, 4 warps x 16 query rows, key tiles of 64. Q, K, V tiles live in
//   shared memory (rows padded by 8 bf16 so each 8-row ldmatrix phase is conflict-free); S = Q K^T
//   (16 x 64 per warp) stays in registers, the online softmax runs there (row max/sum over the 4
//   threads of a quad by shuffles), and P is re-packed in registers as the A operand of P V with no
//   trip through shared memory. K(j+1) is fetched (cp.async) while P V(j) runs and V(j) while
//   S(j) runs. Queries past the group's end are zero rows never stored; keys past it get -inf.
//   backward: one block per 64 keys (4 warps x 16 keys), looping over all query tiles of the group
//   (64 queries for D = 64, 32 for D = 128, so dK and dV accumulators (2 x 16 x D per warp) plus
//   the S^T / dP^T tiles stay within 255 registers). Per query tile: S^T = K Q^T, P^T from lse,
//   dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK += dS^T Q, and dQ += dS K for the
//   tile's queries through f32 atomics into a zeroed accumulator converted to bf16 afterwards. Why
//   atomics rather than a second pass over the key tiles for dQ: a separate dQ pass recomputes
//   S and dP (7 tile products per tile pair instead of 5); the atomics are one f32 red per dQ
//   element per key tile, spread over all of L2, which is what FlashAttention-2 does as well.
//   The order of the atomic adds varies, so dQ is not bitwise deterministic.
// f32 (and bf16 for other head dims), SIMT (attention_*_simt_* / _simt4_*): one warp per query
//   row (forward, dQ) or key row (dK/dV), or per 4 such rows for groups of >= 64 rows (each key or
//   query row read then serves 4 dot products and 4 accumulations), head_dim <= 256 (8 elements per
//   lane), 32 keys (queries) per step: each lane computes the full dot products of one key, the
//   warp agrees on each row's max/sum by shuffles, then the 32 weights are broadcast lane by lane
//   into the accumulation. dQ and dK/dV are separate kernels, so there are no atomics and the
//   results are deterministic.
//
// Run on an H200 (sm_90) against the CPU kernels by kernels/tests/cuda_kernels.rs (BENCHMARKS.md).
#include "fym_common.cuh"

#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2 0.6931471805599453f
#define ATTN_POS_INF __int_as_float(0x7f800000)

// One call's problem decomposition (a copy of the CPU Plan's fields; the Rust side fills it).
struct AttnPlan {
    int heads;
    int seq_q;
    int seq_kv;
    int head_dim;
    int groups;      // independent groups per (batch, head)
    int len_q;       // query tokens per group
    int len_kv;      // key tokens per group
    int group_step;  // token of a group's first token is g * group_step
    int stride;      // distance in tokens between consecutive tokens of a group
    float scale;
};

struct Problem {
    int b, h, g;
};

__device__ __forceinline__ Problem problem_of(const AttnPlan& p, int index) {
    const int g = index % p.groups;
    const int bh = index / p.groups;
    return {bh / p.heads, bh % p.heads, g};
}

__device__ __forceinline__ long long token_of(const AttnPlan& p, const Problem& pr, int i) {
    return (long long)pr.g * p.group_step + (long long)i * p.stride;
}

// Offset of the head_dim row of query i (q/out/dq) or key j (k/v/dk/dv) of the problem.
__device__ __forceinline__ long long q_row(const AttnPlan& p, const Problem& pr, int i) {
    return (((long long)pr.b * p.seq_q + token_of(p, pr, i)) * p.heads + pr.h) * p.head_dim;
}
__device__ __forceinline__ long long kv_row(const AttnPlan& p, const Problem& pr, int j) {
    return (((long long)pr.b * p.seq_kv + token_of(p, pr, j)) * p.heads + pr.h) * p.head_dim;
}
__device__ __forceinline__ long long lse_index(const AttnPlan& p, const Problem& pr, int i) {
    return ((long long)pr.b * p.heads + pr.h) * p.seq_q + token_of(p, pr, i);
}

// ============================================================================ SIMT (reference)

#define SIMT_WARPS 4
#define SIMT_MAX_DIM 256
#define SIMT_PER_LANE (SIMT_MAX_DIM / 32)

// Forward, R query rows per warp (R = 1 for short groups, 4 otherwise): every key row read from
// memory serves all R queries.
template <typename T, int R>
__device__ void attention_forward_simt(AttnPlan p, const T* q, const T* k, const T* v, T* out,
                                       float* lse) {
    __shared__ float sq[SIMT_WARPS][R][SIMT_MAX_DIM];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const Problem pr = problem_of(p, blockIdx.x);
    const int i0 = (blockIdx.y * SIMT_WARPS + warp) * R;
    if (i0 >= p.len_q) return;  // whole warp leaves; only __syncwarp is used below
    const int rows = min(R, p.len_q - i0);
    const int d = p.head_dim;
    const float c = p.scale * ATTN_LOG2E;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        // Rows past the group are zeros: finite scores, never stored.
        const T* qr = q + q_row(p, pr, i0 + min(r, rows - 1));
        for (int e = lane; e < d; e += 32) sq[warp][r][e] = r < rows ? to_f32(qr[e]) * c : 0.0f;
    }
    __syncwarp();

    float o[R][SIMT_PER_LANE], m[R], l[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        m[r] = FYM_NEG_INF;
        l[r] = 0.0f;
#pragma unroll
        for (int u = 0; u < SIMT_PER_LANE; ++u) o[r][u] = 0.0f;
    }
    for (int j0 = 0; j0 < p.len_kv; j0 += 32) {
        const int j = j0 + lane;
        float s[R];
#pragma unroll
        for (int r = 0; r < R; ++r) s[r] = j < p.len_kv ? 0.0f : FYM_NEG_INF;
        if (j < p.len_kv) {
            const T* kr = k + kv_row(p, pr, j);
            for (int e = 0; e < d; ++e) {
                const float kv = to_f32(kr[e]);
#pragma unroll
                for (int r = 0; r < R; ++r) s[r] = fmaf(sq[warp][r][e], kv, s[r]);
            }
        }
        float w[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const float m_new = fmaxf(m[r], warp_max(s[r]));  // finite: lane 0's key exists
            w[r] = j < p.len_kv ? exp2f(s[r] - m_new) : 0.0f;
            const float corr = exp2f(m[r] - m_new);
            l[r] = l[r] * corr + warp_sum(w[r]);
#pragma unroll
            for (int u = 0; u < SIMT_PER_LANE; ++u) o[r][u] *= corr;
            m[r] = m_new;
        }
        const int n = min(32, p.len_kv - j0);
        for (int jj = 0; jj < n; ++jj) {
            float wj[R];
#pragma unroll
            for (int r = 0; r < R; ++r) wj[r] = __shfl_sync(0xffffffffu, w[r], jj);
            const T* vr = v + kv_row(p, pr, j0 + jj);
#pragma unroll
            for (int u = 0; u < SIMT_PER_LANE; ++u) {
                const int e = lane + 32 * u;
                if (e < d) {
                    const float vv = to_f32(vr[e]);
#pragma unroll
                    for (int r = 0; r < R; ++r) o[r][u] = fmaf(wj[r], vv, o[r][u]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        if (r >= rows) break;
        T* orow = out + q_row(p, pr, i0 + r);
        const float inv = 1.0f / l[r];
#pragma unroll
        for (int u = 0; u < SIMT_PER_LANE; ++u) {
            const int e = lane + 32 * u;
            if (e < d) orow[e] = from_f32<T>(o[r][u] * inv);
        }
        if (lane == 0) lse[lse_index(p, pr, i0 + r)] = (m[r] + log2f(l[r])) * ATTN_LN2;
    }
}

// delta[b, h, s] = sum_e dO * O over the head_dim row, one warp per (b, s, h) row in memory order.
template <typename T>
__device__ void attention_backward_delta(const T* out, const T* d_out, float* delta, long long rows,
                                         int seq_q, int heads, int head_dim) {
    const long long r = (long long)blockIdx.x * SIMT_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    float acc = 0.0f;
    for (int e = lane; e < head_dim; e += 32)
        acc = fmaf(to_f32(out[r * head_dim + e]), to_f32(d_out[r * head_dim + e]), acc);
    acc = warp_sum(acc);
    if (lane == 0) {
        const int h = (int)(r % heads);
        const long long s = (r / heads) % seq_q;
        const long long b = r / ((long long)heads * seq_q);
        delta[(b * heads + h) * seq_q + s] = acc;
    }
}

// dQ, R query rows per warp: dq = scale * sum_j p_ij (dp_ij - delta_i) k_j.
template <typename T, int R>
__device__ void attention_backward_dq_simt(AttnPlan p, const T* q, const T* k, const T* v,
                                           const float* lse, const float* delta, const T* d_out,
                                           T* dq) {
    __shared__ float sq[SIMT_WARPS][R][SIMT_MAX_DIM];
    __shared__ float sdo[SIMT_WARPS][R][SIMT_MAX_DIM];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const Problem pr = problem_of(p, blockIdx.x);
    const int i0 = (blockIdx.y * SIMT_WARPS + warp) * R;
    if (i0 >= p.len_q) return;
    const int rows = min(R, p.len_q - i0);
    const int d = p.head_dim;
    const float c = p.scale * ATTN_LOG2E;
    float lse2[R], di[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        // Rows past the group: zero q, dO, lse and delta give ds = 0; never stored.
        const int i = i0 + min(r, rows - 1);
        const long long qo = q_row(p, pr, i);
        for (int e = lane; e < d; e += 32) {
            sq[warp][r][e] = r < rows ? to_f32(q[qo + e]) * c : 0.0f;
            sdo[warp][r][e] = r < rows ? to_f32(d_out[qo + e]) : 0.0f;
        }
        lse2[r] = r < rows ? lse[lse_index(p, pr, i)] * ATTN_LOG2E : 0.0f;
        di[r] = r < rows ? delta[lse_index(p, pr, i)] : 0.0f;
    }
    __syncwarp();
    float acc[R][SIMT_PER_LANE];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int u = 0; u < SIMT_PER_LANE; ++u) acc[r][u] = 0.0f;
    for (int j0 = 0; j0 < p.len_kv; j0 += 32) {
        const int j = j0 + lane;
        float ds[R];
#pragma unroll
        for (int r = 0; r < R; ++r) ds[r] = 0.0f;
        if (j < p.len_kv) {
            const long long ko = kv_row(p, pr, j);
            float s[R], dp[R];
#pragma unroll
            for (int r = 0; r < R; ++r) s[r] = dp[r] = 0.0f;
            for (int e = 0; e < d; ++e) {
                const float kk = to_f32(k[ko + e]), vv = to_f32(v[ko + e]);
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    s[r] = fmaf(sq[warp][r][e], kk, s[r]);
                    dp[r] = fmaf(sdo[warp][r][e], vv, dp[r]);
                }
            }
#pragma unroll
            for (int r = 0; r < R; ++r) ds[r] = exp2f(s[r] - lse2[r]) * (dp[r] - di[r]);
        }
        const int n = min(32, p.len_kv - j0);
        for (int jj = 0; jj < n; ++jj) {
            float dsj[R];
#pragma unroll
            for (int r = 0; r < R; ++r) dsj[r] = __shfl_sync(0xffffffffu, ds[r], jj);
            const T* kr = k + kv_row(p, pr, j0 + jj);
#pragma unroll
            for (int u = 0; u < SIMT_PER_LANE; ++u) {
                const int e = lane + 32 * u;
                if (e < d) {
                    const float kk = to_f32(kr[e]);
#pragma unroll
                    for (int r = 0; r < R; ++r) acc[r][u] = fmaf(dsj[r], kk, acc[r][u]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        if (r >= rows) break;
        const long long qo = q_row(p, pr, i0 + r);
#pragma unroll
        for (int u = 0; u < SIMT_PER_LANE; ++u) {
            const int e = lane + 32 * u;
            if (e < d) dq[qo + e] = from_f32<T>(acc[r][u] * p.scale);
        }
    }
}

// dK and dV, R key rows per warp: dv = sum_i p_ij dO_i, dk = scale * sum_i ds_ij q_i.
template <typename T, int R>
__device__ void attention_backward_dkdv_simt(AttnPlan p, const T* q, const T* k, const T* v,
                                             const float* lse, const float* delta, const T* d_out,
                                             T* dk, T* dv) {
    __shared__ float sk[SIMT_WARPS][R][SIMT_MAX_DIM];
    __shared__ float sv[SIMT_WARPS][R][SIMT_MAX_DIM];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const Problem pr = problem_of(p, blockIdx.x);
    const int j0 = (blockIdx.y * SIMT_WARPS + warp) * R;
    if (j0 >= p.len_kv) return;
    const int rows = min(R, p.len_kv - j0);
    const int d = p.head_dim;
    const float c = p.scale * ATTN_LOG2E;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const long long ko = kv_row(p, pr, j0 + min(r, rows - 1));
        for (int e = lane; e < d; e += 32) {
            sk[warp][r][e] = r < rows ? to_f32(k[ko + e]) * c : 0.0f;
            sv[warp][r][e] = r < rows ? to_f32(v[ko + e]) : 0.0f;
        }
    }
    __syncwarp();
    float ak[R][SIMT_PER_LANE], av[R][SIMT_PER_LANE];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int u = 0; u < SIMT_PER_LANE; ++u) ak[r][u] = av[r][u] = 0.0f;
    for (int i0 = 0; i0 < p.len_q; i0 += 32) {
        const int i = i0 + lane;
        float w[R], ds[R];
#pragma unroll
        for (int r = 0; r < R; ++r) w[r] = ds[r] = 0.0f;
        if (i < p.len_q) {
            const long long qo = q_row(p, pr, i);
            float s[R], dp[R];
#pragma unroll
            for (int r = 0; r < R; ++r) s[r] = dp[r] = 0.0f;
            for (int e = 0; e < d; ++e) {
                const float qq = to_f32(q[qo + e]), dd = to_f32(d_out[qo + e]);
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    s[r] = fmaf(sk[warp][r][e], qq, s[r]);
                    dp[r] = fmaf(sv[warp][r][e], dd, dp[r]);
                }
            }
            const float lse2 = lse[lse_index(p, pr, i)] * ATTN_LOG2E;
            const float di = delta[lse_index(p, pr, i)];
#pragma unroll
            for (int r = 0; r < R; ++r) {
                // Key rows past the group stay 0 (their exp2 of -lse could overflow).
                w[r] = r < rows ? exp2f(s[r] - lse2) : 0.0f;
                ds[r] = w[r] * (dp[r] - di);
            }
        }
        const int n = min(32, p.len_q - i0);
        for (int ii = 0; ii < n; ++ii) {
            float wi[R], dsi[R];
#pragma unroll
            for (int r = 0; r < R; ++r) {
                wi[r] = __shfl_sync(0xffffffffu, w[r], ii);
                dsi[r] = __shfl_sync(0xffffffffu, ds[r], ii);
            }
            const long long qo = q_row(p, pr, i0 + ii);
#pragma unroll
            for (int u = 0; u < SIMT_PER_LANE; ++u) {
                const int e = lane + 32 * u;
                if (e < d) {
                    const float dd = to_f32(d_out[qo + e]), qq = to_f32(q[qo + e]);
#pragma unroll
                    for (int r = 0; r < R; ++r) {
                        av[r][u] = fmaf(wi[r], dd, av[r][u]);
                        ak[r][u] = fmaf(dsi[r], qq, ak[r][u]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        if (r >= rows) break;
        const long long ko = kv_row(p, pr, j0 + r);
#pragma unroll
        for (int u = 0; u < SIMT_PER_LANE; ++u) {
            const int e = lane + 32 * u;
            if (e < d) {
                dk[ko + e] = from_f32<T>(ak[r][u] * p.scale);
                dv[ko + e] = from_f32<T>(av[r][u]);
            }
        }
    }
}

// ======================================================================= tensor cores (bf16)

#define MMA_WARPS 4
#define MMA_THREADS (MMA_WARPS * 32)
#define MMA_KEYS 64  // keys per tile (forward) / per block (backward)
#define MMA_PAD 8

__device__ __forceinline__ unsigned smem_addr(const void* ptr) {
    return (unsigned)__cvta_generic_to_shared(ptr);
}
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* ptr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(ptr)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* ptr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(ptr)));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                         unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Two f32 as one bf16x2 register, `lo` in the low half (the lower k / column index).
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

// Fragment loaders. A tile "[r][c]" is row-major in shared memory with row stride `ld` elements.
// A operand (16 x 16, m x k) from [m][k] storage.
__device__ __forceinline__ void load_a(unsigned (&a)[4], const bf16* s, int ld, int m0, int k0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4(a, s + (m0 + (lane % 16)) * ld + k0 + (lane / 16) * 8);
}
// A operand (16 x 16, m x k) from [k][m] storage.
__device__ __forceinline__ void load_a_trans(unsigned (&a)[4], const bf16* s, int ld, int m0, int k0) {
    const int lane = threadIdx.x & 31, q = lane / 8;
    ldmatrix_x4_trans(a, s + (k0 + (lane % 8) + (q / 2) * 8) * ld + m0 + (q % 2) * 8);
}
// B operands of two adjacent n8 tiles (k16 x n16) from [n][k] storage: b[0..1] tile n0, b[2..3]
// tile n0 + 8.
__device__ __forceinline__ void load_b_nk(unsigned (&b)[4], const bf16* s, int ld, int n0, int k0) {
    const int lane = threadIdx.x & 31, q = lane / 8;
    ldmatrix_x4(b, s + (n0 + (lane % 8) + (q / 2) * 8) * ld + k0 + (q % 2) * 8);
}
// The same from [k][n] storage.
__device__ __forceinline__ void load_b_kn(unsigned (&b)[4], const bf16* s, int ld, int n0, int k0) {
    const int lane = threadIdx.x & 31, q = lane / 8;
    ldmatrix_x4_trans(b, s + (k0 + (lane % 8) + (q % 2) * 8) * ld + n0 + (q / 2) * 8);
}

// Copies `rows` head_dim rows (tokens first..first+rows-1 of the problem's group) into shared
// memory [rows][D + PAD]; rows at or past `len` are zero-filled.
template <int D, bool IS_Q>
__device__ __forceinline__ void load_rows(bf16* s, const bf16* g, const AttnPlan& p, const Problem& pr,
                                          int first, int rows, int len) {
    constexpr int CHUNKS = D / 8;
    for (int c = threadIdx.x; c < rows * CHUNKS; c += MMA_THREADS) {
        const int r = c / CHUNKS, col = (c % CHUNKS) * 8;
        const int idx = first + r;
        const bool valid = idx < len;
        const bf16* src = g;
        if (valid) src = g + (IS_Q ? q_row(p, pr, idx) : kv_row(p, pr, idx)) + col;
        cp_async_16(s + r * (D + MMA_PAD) + col, src, valid ? 16 : 0);
    }
}

// MT = m16 tiles per warp: 1 -> 64 queries per block (attention_forward_mma_d*), 2 -> 128
// (attention_forward_mma2_d*: each K/V fragment read from shared memory feeds twice the mma, the
// FlashAttention-2 arrangement, at twice the accumulator registers). KT = keys per tile: 64, or
// 32 for mma2 with D = 128, whose O and S accumulators would otherwise spill.
template <int D, int MT, int KT>
__device__ void attention_forward_mma(AttnPlan p, const bf16* q, const bf16* k, const bf16* v,
                                      bf16* out, float* lse) {
    constexpr int LD = D + MMA_PAD;
    constexpr int BM = MMA_WARPS * 16 * MT;  // queries per block
    constexpr int NT = KT / 8;               // n8 tiles of S
    constexpr int DT = D / 8;                // n8 tiles of O
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16* sq = reinterpret_cast<bf16*>(attn_smem);
    bf16* sk = sq + BM * LD;
    bf16* sv = sk + KT * LD;

    const Problem pr = problem_of(p, blockIdx.x);
    const int i0 = blockIdx.y * BM;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wr = warp * 16 * MT;  // warp's first query row in the tile
    const float c = p.scale * ATTN_LOG2E;

    float o[MT][DT][4];
#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
        for (int j = 0; j < DT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[t][j][e] = 0.0f;
    // Per m-tile: rows lane/4 and lane/4 + 8 (scaled log2 units), this thread's share of the sums.
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            m[t][r] = FYM_NEG_INF;
            l[t][r] = 0.0f;
        }

    load_rows<D, true>(sq, q, p, pr, i0, BM, p.len_q);
    load_rows<D, false>(sk, k, p, pr, 0, KT, p.len_kv);
    cp_async_commit();
    const int key_tiles = (p.len_kv + KT - 1) / KT;
    for (int kt = 0; kt < key_tiles; ++kt) {
        const int j0 = kt * KT;
        cp_async_wait_all();
        __syncthreads();  // K(kt) visible; every warp is done with V(kt-1)
        load_rows<D, false>(sv, v, p, pr, j0, KT, p.len_kv);
        cp_async_commit();

        float s[MT][NT][4];
#pragma unroll
        for (int t = 0; t < MT; ++t)
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[t][j][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < D; ks += 16) {
            unsigned a[MT][4];
#pragma unroll
            for (int t = 0; t < MT; ++t) load_a(a[t], sq, LD, wr + 16 * t, ks);
#pragma unroll
            for (int j = 0; j < NT; j += 2) {
                unsigned b[4];
                load_b_nk(b, sk, LD, j * 8, ks);
#pragma unroll
                for (int t = 0; t < MT; ++t) {
                    mma_bf16(s[t][j], a[t], b[0], b[1]);
                    mma_bf16(s[t][j + 1], a[t], b[2], b[3]);
                }
            }
        }
        // Online softmax; element e of tile j is row lane/4 + 8*(e/2), key j0 + 8j + 2*(lane%4) + e%2.
        // Only the group's last tile can hold keys past its end; the others skip the mask. The
        // scale c > 0 commutes with max, so the raw scores are compared and c is folded into the
        // exponent's FFMA (m is kept in scaled log2 units).
        if (j0 + KT > p.len_kv) {
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = j0 + j * 8 + (lane % 4) * 2 + (e % 2);
                    if (key >= p.len_kv)
#pragma unroll
                        for (int t = 0; t < MT; ++t) s[t][j][e] = FYM_NEG_INF;
                }
        }
#pragma unroll
        for (int t = 0; t < MT; ++t) {
            float tile_max[2] = {FYM_NEG_INF, FYM_NEG_INF};
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[t][j][e]);
            float corr[2], neg_m[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
                tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
                const float m_new = fmaxf(m[t][r], tile_max[r] * c);  // finite: key j0 exists
                corr[r] = exp2f(m[t][r] - m_new);
                m[t][r] = m_new;
                neg_m[r] = -m_new;
                l[t][r] *= corr[r];
            }
#pragma unroll
            for (int j = 0; j < NT; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    s[t][j][e] = exp2f(fmaf(s[t][j][e], c, neg_m[e / 2]));
                    l[t][e / 2] += s[t][j][e];
                }
#pragma unroll
            for (int j = 0; j < DT; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) o[t][j][e] *= corr[e / 2];
        }

        cp_async_wait_all();
        __syncthreads();  // V(kt) visible; every warp is done with K(kt)
        if (kt + 1 < key_tiles) {
            load_rows<D, false>(sk, k, p, pr, j0 + KT, KT, p.len_kv);
            cp_async_commit();
        }
        // O += P V: the S accumulators of n-tiles 2kk, 2kk+1 are exactly the A fragment of k-step kk.
#pragma unroll
        for (int kk = 0; kk < KT / 16; ++kk) {
            unsigned a[MT][4];
#pragma unroll
            for (int t = 0; t < MT; ++t) {
                a[t][0] = pack_bf16(s[t][2 * kk][0], s[t][2 * kk][1]);
                a[t][1] = pack_bf16(s[t][2 * kk][2], s[t][2 * kk][3]);
                a[t][2] = pack_bf16(s[t][2 * kk + 1][0], s[t][2 * kk + 1][1]);
                a[t][3] = pack_bf16(s[t][2 * kk + 1][2], s[t][2 * kk + 1][3]);
            }
#pragma unroll
            for (int j = 0; j < DT; j += 2) {
                unsigned b[4];
                load_b_kn(b, sv, LD, j * 8, kk * 16);
#pragma unroll
                for (int t = 0; t < MT; ++t) {
                    mma_bf16(o[t][j], a[t], b[0], b[1]);
                    mma_bf16(o[t][j + 1], a[t], b[2], b[3]);
                }
            }
        }
    }

#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float sum = l[t][r];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const int i = i0 + wr + 16 * t + lane / 4 + 8 * r;
            if (i >= p.len_q) continue;
            const float inv = 1.0f / sum;
            bf16* orow = out + q_row(p, pr, i);
#pragma unroll
            for (int j = 0; j < DT; ++j) {
                const unsigned packed = pack_bf16(o[t][j][2 * r] * inv, o[t][j][2 * r + 1] * inv);
                *reinterpret_cast<unsigned*>(orow + j * 8 + (lane % 4) * 2) = packed;
            }
            if (lane % 4 == 0) lse[lse_index(p, pr, i)] = (m[t][r] + log2f(sum)) * ATTN_LN2;
        }
}

// Shared memory of the backward (bytes): K, V [64][LD]; Q, dO [BM][LD]; scale*dS^T [64][BM+PAD];
// lse2, delta [BM] f32.
template <int D, int BM>
struct BackwardSmem {
    static constexpr int LD = D + MMA_PAD;
    static constexpr int LDS = BM + MMA_PAD;
    static constexpr int BYTES = (2 * MMA_KEYS * LD + 2 * BM * LD + MMA_KEYS * LDS) * 2 + 2 * BM * 4;
};

template <int D, int BM>
__device__ void attention_backward_mma(AttnPlan p, const bf16* q, const bf16* k, const bf16* v,
                                       const float* lse, const float* delta, const bf16* d_out,
                                       float* dq_accum, bf16* dk, bf16* dv) {
    constexpr int LD = D + MMA_PAD;
    constexpr int LDS = BM + MMA_PAD;
    constexpr int QT = BM / 8;  // n8 tiles of S^T (queries)
    constexpr int DT = D / 8;   // n8 tiles of dK / dV
    // dQ tile (BM x D) split over the 4 warps: m16 tile `warp % MT`, 64 columns from (warp / MT) * 64.
    constexpr int MT = BM / 16;
    static_assert(MT * (DT / 8) == MMA_WARPS, "dQ tile split must cover 4 warps");
    extern __shared__ __align__(16) unsigned char attn_smem[];
    bf16* sk = reinterpret_cast<bf16*>(attn_smem);
    bf16* sv = sk + MMA_KEYS * LD;
    bf16* sq = sv + MMA_KEYS * LD;
    bf16* sdo = sq + BM * LD;
    bf16* sds = sdo + BM * LD;
    float* slse = reinterpret_cast<float*>(sds + MMA_KEYS * LDS);
    float* sdelta = slse + BM;

    const Problem pr = problem_of(p, blockIdx.x);
    const int j0 = blockIdx.y * MMA_KEYS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wk = warp * 16;  // warp's first key row in the block
    const float c = p.scale * ATTN_LOG2E;

    float ak[DT][4], av[DT][4];
#pragma unroll
    for (int j = 0; j < DT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) ak[j][e] = av[j][e] = 0.0f;

    load_rows<D, false>(sk, k, p, pr, j0, MMA_KEYS, p.len_kv);
    load_rows<D, false>(sv, v, p, pr, j0, MMA_KEYS, p.len_kv);
    cp_async_commit();

    for (int i0 = 0; i0 < p.len_q; i0 += BM) {
        __syncthreads();  // every warp is done with the previous query tile's Q, dO, dS, lse
        load_rows<D, true>(sq, q, p, pr, i0, BM, p.len_q);
        load_rows<D, true>(sdo, d_out, p, pr, i0, BM, p.len_q);
        cp_async_commit();
        for (int r = threadIdx.x; r < BM; r += MMA_THREADS) {
            const bool valid = i0 + r < p.len_q;
            // +inf lse makes P = 0 for queries past the group's end.
            slse[r] = valid ? lse[lse_index(p, pr, i0 + r)] * ATTN_LOG2E : ATTN_POS_INF;
            sdelta[r] = valid ? delta[lse_index(p, pr, i0 + r)] : 0.0f;
        }
        cp_async_wait_all();
        __syncthreads();

        // S^T = K Q^T (16 keys x BM queries per warp), then P^T.
        float st[QT][4];
#pragma unroll
        for (int j = 0; j < QT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) st[j][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < D; ks += 16) {
            unsigned a[4];
            load_a(a, sk, LD, wk, ks);
#pragma unroll
            for (int j = 0; j < QT; j += 2) {
                unsigned b[4];
                load_b_nk(b, sq, LD, j * 8, ks);
                mma_bf16(st[j], a, b[0], b[1]);
                mma_bf16(st[j + 1], a, b[2], b[3]);
            }
        }
        // Element e of tile j: key row wk + lane/4 + 8*(e/2), query column 8j + 2*(lane%4) + e%2.
#pragma unroll
        for (int j = 0; j < QT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int key = j0 + wk + lane / 4 + 8 * (e / 2);
                const int col = j * 8 + (lane % 4) * 2 + (e % 2);
                st[j][e] = key < p.len_kv ? exp2f(st[j][e] * c - slse[col]) : 0.0f;
            }
        // dV += P^T dO.
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
            unsigned a[4];
            a[0] = pack_bf16(st[2 * kk][0], st[2 * kk][1]);
            a[1] = pack_bf16(st[2 * kk][2], st[2 * kk][3]);
            a[2] = pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]);
            a[3] = pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3]);
#pragma unroll
            for (int j = 0; j < DT; j += 2) {
                unsigned b[4];
                load_b_kn(b, sdo, LD, j * 8, kk * 16);
                mma_bf16(av[j], a, b[0], b[1]);
                mma_bf16(av[j + 1], a, b[2], b[3]);
            }
        }
        // dP^T = V dO^T, then dS^T = P^T (dP^T - delta) in place.
        float dpt[QT][4];
#pragma unroll
        for (int j = 0; j < QT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) dpt[j][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < D; ks += 16) {
            unsigned a[4];
            load_a(a, sv, LD, wk, ks);
#pragma unroll
            for (int j = 0; j < QT; j += 2) {
                unsigned b[4];
                load_b_nk(b, sdo, LD, j * 8, ks);
                mma_bf16(dpt[j], a, b[0], b[1]);
                mma_bf16(dpt[j + 1], a, b[2], b[3]);
            }
        }
#pragma unroll
        for (int j = 0; j < QT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int col = j * 8 + (lane % 4) * 2 + (e % 2);
                dpt[j][e] = st[j][e] * (dpt[j][e] - sdelta[col]);
            }
        // dK += dS^T Q (scaled at the end); scale * dS^T to shared memory for dQ.
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
            unsigned a[4];
            a[0] = pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]);
            a[1] = pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]);
            a[2] = pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
            a[3] = pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
#pragma unroll
            for (int j = 0; j < DT; j += 2) {
                unsigned b[4];
                load_b_kn(b, sq, LD, j * 8, kk * 16);
                mma_bf16(ak[j], a, b[0], b[1]);
                mma_bf16(ak[j + 1], a, b[2], b[3]);
            }
        }
#pragma unroll
        for (int j = 0; j < QT; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = wk + lane / 4 + 8 * r;
                const int col = j * 8 + (lane % 4) * 2;
                *reinterpret_cast<unsigned*>(sds + row * LDS + col) =
                    pack_bf16(dpt[j][2 * r] * p.scale, dpt[j][2 * r + 1] * p.scale);
            }
        __syncthreads();  // dS^T of all 64 keys is in shared memory

        // dQ(tile) += dS K: A = dS (m = query, k = key) from [key][query], B = K from [key][d].
        // Each warp owns one m16 tile and 64 columns, done 32 at a time to bound the registers
        // live next to the dK/dV accumulators.
        const int mt = warp % MT;
#pragma unroll 1
        for (int n0 = (warp / MT) * 64; n0 < (warp / MT) * 64 + 64; n0 += 32) {
            float acc[4][4];
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < MMA_KEYS / 16; ++kk) {
                unsigned a[4];
                load_a_trans(a, sds, LDS, mt * 16, kk * 16);
#pragma unroll
                for (int j = 0; j < 4; j += 2) {
                    unsigned b[4];
                    load_b_kn(b, sk, LD, n0 + j * 8, kk * 16);
                    mma_bf16(acc[j], a, b[0], b[1]);
                    mma_bf16(acc[j + 1], a, b[2], b[3]);
                }
            }
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int i = i0 + mt * 16 + lane / 4 + 8 * r;
                if (i >= p.len_q) continue;
                float* row = dq_accum + q_row(p, pr, i) + n0 + (lane % 4) * 2;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    atomicAdd(row + j * 8, acc[j][2 * r]);
                    atomicAdd(row + j * 8 + 1, acc[j][2 * r + 1]);
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int key = j0 + wk + lane / 4 + 8 * r;
        if (key >= p.len_kv) continue;
        const long long off = kv_row(p, pr, key) + (lane % 4) * 2;
#pragma unroll
        for (int j = 0; j < DT; ++j) {
            *reinterpret_cast<unsigned*>(dk + off + j * 8) =
                pack_bf16(ak[j][2 * r] * p.scale, ak[j][2 * r + 1] * p.scale);
            *reinterpret_cast<unsigned*>(dv + off + j * 8) = pack_bf16(av[j][2 * r], av[j][2 * r + 1]);
        }
    }
}

// ============================================================================ entry points

// R = 1 (suffix "simt") for short groups, R = 4 ("simt4") for groups of at least 64 rows.
#define SIMT_KERNELS_R(T, suffix, R, variant)                                                      \
    extern "C" __global__ void __launch_bounds__(SIMT_WARPS * 32)                                  \
        attention_forward_##variant##_##suffix(AttnPlan p, const T* q, const T* k, const T* v,     \
                                               T* out, float* lse) {                               \
        attention_forward_simt<T, R>(p, q, k, v, out, lse);                                        \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(SIMT_WARPS * 32)                                  \
        attention_backward_dq_##variant##_##suffix(AttnPlan p, const T* q, const T* k,             \
                                                   const T* v, const float* lse,                   \
                                                   const float* delta, const T* d_out, T* dq) {    \
        attention_backward_dq_simt<T, R>(p, q, k, v, lse, delta, d_out, dq);                       \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(SIMT_WARPS * 32)                                  \
        attention_backward_dkdv_##variant##_##suffix(AttnPlan p, const T* q, const T* k,           \
                                                     const T* v, const float* lse,                 \
                                                     const float* delta, const T* d_out, T* dk,    \
                                                     T* dv) {                                      \
        attention_backward_dkdv_simt<T, R>(p, q, k, v, lse, delta, d_out, dk, dv);                 \
    }

#define SIMT_KERNELS(T, suffix)                                                                    \
    SIMT_KERNELS_R(T, suffix, 1, simt)                                                             \
    SIMT_KERNELS_R(T, suffix, 4, simt4)                                                            \
    extern "C" __global__ void __launch_bounds__(SIMT_WARPS * 32)                                  \
        attention_backward_delta_##suffix(const T* out, const T* d_out, float* delta,              \
                                          long long rows, int seq_q, int heads, int head_dim) {    \
        attention_backward_delta<T>(out, d_out, delta, rows, seq_q, heads, head_dim);              \
    }

SIMT_KERNELS(float, f32)
SIMT_KERNELS(bf16, bf16)

#define MMA_KERNELS(D, BM)                                                                         \
    extern "C" __global__ void __launch_bounds__(MMA_THREADS) attention_forward_mma_d##D##_bf16(   \
        AttnPlan p, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse) {         \
        attention_forward_mma<D, 1, MMA_KEYS>(p, q, k, v, out, lse);                               \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(MMA_THREADS) attention_forward_mma2_d##D##_bf16(  \
        AttnPlan p, const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse) {         \
        attention_forward_mma<D, 2, (D == 128 ? 32 : 64)>(p, q, k, v, out, lse);                   \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(MMA_THREADS) attention_backward_mma_d##D##_bf16(  \
        AttnPlan p, const bf16* q, const bf16* k, const bf16* v, const float* lse,                 \
        const float* delta, const bf16* d_out, float* dq_accum, bf16* dk, bf16* dv) {              \
        attention_backward_mma<D, BM>(p, q, k, v, lse, delta, d_out, dq_accum, dk, dv);            \
    }

MMA_KERNELS(64, 64)
MMA_KERNELS(128, 32)

// dq = bf16(accumulated f32 dQ), grid-stride.
extern "C" __global__ void attention_backward_dq_convert_bf16(const float* dq_accum, bf16* dq,
                                                              long long n) {
    for (long long i = global_thread_index(); i < n; i += grid_stride())
        dq[i] = from_f32<bf16>(dq_accum[i]);
}
