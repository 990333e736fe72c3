// Attention-map statistics for head classification, streamed without the S x S map: per head,
// the sums that give the cosine similarity of A = softmax(q k^T * scale) (full, unmasked
// self-attention) to the spatial and temporal pseudo masks (definitions in the CPU's
// attention::HeadMapStats): sum of p inside M_s (same frame), sum of p inside M_t (same spatial
// position, other frame) and sum of p^2, over every batch, query row and key.
// Layout: q, k [B, S, H, D]; sums [H][3] f64, accumulated (the launcher zeroes them).
//
// Thread mapping: one warp per query row, 4 rows per block (grid x = batch * heads, y = row quads).
// Two passes over the keys, 32 at a time with one key per lane (a full dot product each): pass 1
// is the online max / sum of exp that gives the row's log-sum-exp, pass 2 recomputes each p and
// adds it to the row's three sums. The two mask tests are index arithmetic on (query, key), so
// nothing but the row's q (in shared memory) is stored. Rows reduce by warp shuffles, the block's 4
// rows in shared memory, then one f64 atomic per sum and block.
// SIMT rather than tensor cores: this runs once per layer on the reference video (stage 1), it is
// O(S^2 D) like the forward but needs no V; a tensor-core variant would reuse attention.cu's S tile.
//
// Run on an H200 (sm_90) against the CPU kernels by kernels/tests/cuda_kernels.rs (BENCHMARKS.md).
#include "fym_common.cuh"

#define STATS_WARPS 4
#define STATS_MAX_DIM 256
#define STATS_LOG2E 1.4426950408889634f

template <typename T>
__device__ void attention_map_stats(const T* q, const T* k, double* sums, int heads, int seq,
                                    int head_dim, int tokens_per_frame, float scale) {
    __shared__ float sq[STATS_WARPS][STATS_MAX_DIM];
    __shared__ float partial[STATS_WARPS][3];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int b = blockIdx.x / heads, h = blockIdx.x % heads;
    const int i = blockIdx.y * STATS_WARPS + warp;
    const int d = head_dim;
    float in_s = 0.0f, in_t = 0.0f, sq_sum = 0.0f;
    if (i < seq) {
        const float c = scale * STATS_LOG2E;
        const T* qr = q + (((long long)b * seq + i) * heads + h) * d;
        for (int e = lane; e < d; e += 32) sq[warp][e] = to_f32(qr[e]) * c;
        __syncwarp();
        const T* kbase = k + ((long long)b * seq * heads + h) * d;
        const long long kstride = (long long)heads * d;

        float m = FYM_NEG_INF, l = 0.0f;
        for (int j0 = 0; j0 < seq; j0 += 32) {
            const int j = j0 + lane;
            float s = FYM_NEG_INF;
            if (j < seq) {
                const T* kr = kbase + j * kstride;
                s = 0.0f;
                for (int e = 0; e < d; ++e) s = fmaf(sq[warp][e], to_f32(kr[e]), s);
            }
            const float m_new = fmaxf(m, warp_max(s));
            const float w = j < seq ? exp2f(s - m_new) : 0.0f;
            l = l * exp2f(m - m_new) + warp_sum(w);
            m = m_new;
        }
        const float lse2 = m + log2f(l);

        const int frame = i / tokens_per_frame, pos = i % tokens_per_frame;
        for (int j0 = 0; j0 < seq; j0 += 32) {
            const int j = j0 + lane;
            if (j >= seq) continue;
            const T* kr = kbase + j * kstride;
            float s = 0.0f;
            for (int e = 0; e < d; ++e) s = fmaf(sq[warp][e], to_f32(kr[e]), s);
            const float w = exp2f(s - lse2);
            sq_sum = fmaf(w, w, sq_sum);
            if (j / tokens_per_frame == frame) in_s += w;
            else if (j % tokens_per_frame == pos) in_t += w;  // other frame, same position
        }
        in_s = warp_sum(in_s);
        in_t = warp_sum(in_t);
        sq_sum = warp_sum(sq_sum);
    }
    if (lane == 0) {
        partial[warp][0] = in_s;
        partial[warp][1] = in_t;
        partial[warp][2] = sq_sum;
    }
    __syncthreads();
    if (threadIdx.x < 3) {
        double total = 0.0;
        for (int w = 0; w < STATS_WARPS; ++w) total += partial[w][threadIdx.x];
        atomicAdd(sums + h * 3 + threadIdx.x, total);
    }
}

#define STATS_KERNELS(T, suffix)                                                                   \
    extern "C" __global__ void __launch_bounds__(STATS_WARPS * 32) attention_map_stats_##suffix(  \
        const T* q, const T* k, double* sums, int heads, int seq, int head_dim,                    \
        int tokens_per_frame, float scale) {                                                       \
        attention_map_stats<T>(q, k, sums, heads, seq, head_dim, tokens_per_frame, scale);         \
    }

STATS_KERNELS(float, f32)
STATS_KERNELS(bf16, bf16)
