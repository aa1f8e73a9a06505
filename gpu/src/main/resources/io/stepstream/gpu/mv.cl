// The matvec kernel of one token tier (appended to matmul.cl by MatmulProgram.source() once per tier, with MVT
// defined as the tier's token count: kernels mv_t1, mv_t2, mv_t4, mv_t8 below MV_TOKENS, and mv_t<MV_TOKENS>).
//
// Few tokens (n <= MVT): MV_LPR lanes walk one weight row with vector loads (coalesced along the row), MV_UNROLL
// loads in flight per lane, each weight used for all n tokens; a tree in local memory adds the lanes. A tier keeps
// MVT accumulators and reduces MVT token slots; per token the arithmetic is the same in every tier (same chunk
// order, same tree), so a token's outputs do not depend on the tier that ran it.
//
// Fused RMSNorm (normMode != 0): the input rows are not read from `in` but made at load time from the residual
// stream as normW[c] * (rs_t * normX[src_t][c]) (src_t = t, or normRow[t] with normMode 2), rs_t computed by the
// group first with step.cl rmsnorm's order: NORM_LANES strided per-lane partials, then the same halving tree, and
// the same expressions, so the products are bitwise those of the unfused path (rmsnorm into xb, then mv on xb).

#define MV_NAME MV_CAT(mv_t, MVT)

__kernel __attribute__((reqd_work_group_size(MV_WG, 1, 1)))
void MV_NAME(MATMUL_ARGS, MV_NORM_ARGS) {
    __local float red[MVT * MV_RED_STRIDE];
    int lid = get_local_id(0);
    int lane = lid % MV_LPR;
    int lrow = lid / MV_LPR;
    int r = get_group_id(0) * MV_ROWS + lrow;
    float acc[MVT];
#pragma unroll
    for (int t = 0; t < MVT; t++) {
        acc[t] = 0.0f;
    }
    __global const WTYPE *w = W0;
    __global const float *s = S0;
    int off = 0;
    float4 wv[MV_UNROLL];
    int c00 = lane * 4;
    if (r < rows) {
        RESOLVE(r, w, s, off);
        // The first chunk's weight loads go out before the norm prologue, so DRAM latency overlaps it.
#pragma unroll
        for (int u = 0; u < MV_UNROLL; u++) {
            int c = c00 + u * MV_LPR * 4;
            wv[u] = c < cols ? LOAD4(w, s, off + c) : (float4)(0.0f);
        }
    }
    float rs[MVT];
    int src[MVT];
    __global const float *g = normW + layer * normStride;
    if (normMode != 0) {
        // rs_t = 1 / sqrt(mean(x_t^2) + eps) as step.cl's rmsnorm computes it (its NORM_WG = NORM_LANES).
#pragma unroll
        for (int t = 0; t < MVT; t++) {
            src[t] = t < n ? (normMode == 2 ? normRow[t] : t) * cols : 0;
            for (int l = lid; l < NORM_LANES; l += MV_WG) {
                float ss = 0.0f;
                // token slots past n (the tier is larger) stay zero: no row to read
                for (int j = l; t < n && j < cols; j += NORM_LANES) {
                    float v = normX[src[t] + j];
                    ss += v * v;
                }
                red[t * MV_RED_STRIDE + l] = ss;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int h = NORM_LANES / 2; h > 0; h >>= 1) {
            for (int i = lid; i < h; i += MV_WG) {
#pragma unroll
                for (int t = 0; t < MVT; t++) {
                    red[t * MV_RED_STRIDE + i] += red[t * MV_RED_STRIDE + i + h];
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
#pragma unroll
        for (int t = 0; t < MVT; t++) {
            rs[t] = 1.0f / sqrt(red[t * MV_RED_STRIDE] / cols + eps);
        }
        // Every item has read its sums before the lane tree below overwrites red.
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (r < rows) {
        for (int c0 = c00; c0 < cols; c0 += MV_LPR * 4 * MV_UNROLL) {
            if (c0 != c00) {
#pragma unroll
                for (int u = 0; u < MV_UNROLL; u++) {
                    int c = c0 + u * MV_LPR * 4;
                    wv[u] = c < cols ? LOAD4(w, s, off + c) : (float4)(0.0f);
                }
            }
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                int c = c0 + u * MV_LPR * 4;
                if (c < cols) {
                    if (normMode != 0) {
                        float4 g4 = XLOAD4_RAW(g + c);
#pragma unroll
                        for (int t = 0; t < MVT; t++) {
                            if (t < n) {
                                acc[t] += dot(wv[u], XROUND4(g4 * (rs[t] * XLOAD4_RAW(normX + src[t] + c))));
                            }
                        }
                    } else {
#pragma unroll
                        for (int t = 0; t < MVT; t++) {
                            if (t < n) {
                                acc[t] += dot(wv[u], XLOAD4(in + t * cols + c));
                            }
                        }
                    }
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < MVT; t++) {
        red[t * MV_RED_STRIDE + lid] = acc[t];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int half_ = MV_LPR / 2; half_ > 0; half_ >>= 1) {
        if (lane < half_) {
#pragma unroll
            for (int t = 0; t < MVT; t++) {
                red[t * MV_RED_STRIDE + lid] += red[t * MV_RED_STRIDE + lid + half_];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lane == 0 && (lrow & 1) == 0 && r < rows) {
        int hasB = r + 1 < rows;
        for (int t = 0; t < n; t++) {
            float b = hasB ? red[t * MV_RED_STRIDE + lid + MV_LPR] : 0.0f;
            epilogue(r, t, red[t * MV_RED_STRIDE + lid], b, hasB, EPI_PASS);
        }
    }
}

#undef MV_NAME
