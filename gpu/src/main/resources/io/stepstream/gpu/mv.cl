// The matvec kernel of one token tier (appended to matmul.cl by MatmulProgram.source() once per tier, with MVT
// defined as the tier's token count: kernels mv_t1, mv_t2, mv_t4, mv_t8 below MV_TOKENS, and mv_t<MV_TOKENS>).
//
// Few tokens (n <= MVT): MV_LPR lanes walk one weight row with vector loads (coalesced along the row), MV_UNROLL
// loads in flight per lane, each weight used for all n tokens; a tree in local memory adds the lanes. A tier keeps
// MVT accumulators and reduces MVT token slots; per token the arithmetic is the same in every tier (same chunk
// order, same tree), so a token's outputs do not depend on the tier that ran it.
//
// Fused RMSNorm (the mv_t<MVT>n kernels, run with normMode 1 or 2): the input rows are not read from `in` (xb, which the norm kernel would have
// written as g * (rs_t * x_t)) but from the residual stream: row src_t = t, or normRow[t] with normMode 2. By
// linearity W . (g * rs_t * x_t) = rs_t * (W . (g * x_t)): each lane multiplies against g * x (no rs) and, from
// the same x loads, sums x^2 for each token; the lane tree adds those sums with the accumulators (no extra pass,
// no extra barrier), and the epilogue takes rs_t * acc with rs_t = 1 / sqrt(ss_t / cols + eps) as step.cl's
// rmsnorm computes it. Not bitwise the unfused path (other rounding, other sum-of-squares order): within f32
// rounding of it. With XH the activations are rounded to f16 as g * x, before the rs scale (unfused: after it).

// Each tier is built twice: MV_FUSED 0 (kernel mv_t<MVT>, reads `in`) and MV_FUSED 1 (mv_t<MVT>n, the fused norm),
// so that the plain matvec keeps no sum-of-squares or source-row registers live across its loop (with both paths
// in one kernel the 8-token tier measured ~20% slower on the H200's w1w3 at batch 8).
//
// Staged (MV_STAGE, the one-token fused build only): the group first makes gx = XROUND4(g * x) for all cols once in
// local memory (normStage), each item a float4 in MV_WG, and sums its x^2 on the way; the loop then reads gx from
// local memory, one load per weight float4 as in the plain matvec, instead of g and x from global memory (and x^2)
// in every lane of every row. The sum of squares goes through the lane tree with the accumulators and the rows' sums
// are added in row order: every group gets the same rs (the same order everywhere), but not the unstaged build's
// bits (another order of the same sum).
#if MV_FUSED && MVT == 1 && defined(MV_STAGE)
#define MV_STAGED 1
#else
#define MV_STAGED 0
#endif
#if MV_FUSED
#define MV_NAME MV_CAT(MV_CAT(mv_t, MVT), n)
#else
#define MV_NAME MV_CAT(mv_t, MVT)
#endif

__kernel __attribute__((reqd_work_group_size(MV_WG, 1, 1)))
void MV_NAME(MATMUL_ARGS, MV_NORM_ARGS) {
#if MV_FUSED
    // MVT slots of lane accumulators, then MVT slots of lane sums of squares
    __local float red[2 * MVT * MV_WG];
#else
    __local float red[MVT * MV_WG];
#endif
    int lid = get_local_id(0);
    int lane = lid % MV_LPR;
    int lrow = lid / MV_LPR;
    int r = get_group_id(0) * MV_ROWS + lrow;
    float acc[MVT];
#if MV_FUSED
    float ss[MVT];
    int src[MVT];
    __global const float *g = normW + layer * normStride;
#endif
#pragma unroll
    for (int t = 0; t < MVT; t++) {
        acc[t] = 0.0f;
#if MV_FUSED
        ss[t] = 0.0f;
        src[t] = (t < n && normMode == 2 ? normRow[t] : t) * cols;
#endif
    }
#if MV_STAGED
    for (int i = lid; i < cols / 4; i += MV_WG) {
        float4 x4 = XLOAD4_RAW(normX + src[0] + 4 * i);
        ss[0] += dot(x4, x4);
        normStage[i] = XROUND4(XLOAD4_RAW(g + 4 * i) * x4);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
    if (r < rows) {
        __global const WTYPE *w;
        __global const float *s;
        int off;
        RESOLVE(r, w, s, off);
        for (int c0 = lane * 4; c0 < cols; c0 += MV_LPR * 4 * MV_UNROLL) {
            float4 wv[MV_UNROLL];
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                int c = c0 + u * MV_LPR * 4;
                wv[u] = c < cols ? LOAD4(w, s, off + c) : (float4)(0.0f);
            }
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                int c = c0 + u * MV_LPR * 4;
                if (c < cols) {
#if MV_STAGED
                    acc[0] += dot(wv[u], normStage[c >> 2]);
#elif MV_FUSED
                    float4 g4 = XLOAD4_RAW(g + c);
#pragma unroll
                    for (int t = 0; t < MVT; t++) {
                        if (t < n) {
                            float4 x4 = XLOAD4_RAW(normX + src[t] + c);
                            ss[t] += dot(x4, x4);
                            acc[t] += dot(wv[u], XROUND4(g4 * x4));
                        }
                    }
#else
#pragma unroll
                    for (int t = 0; t < MVT; t++) {
                        if (t < n) {
                            acc[t] += dot(wv[u], XLOAD4(in + t * cols + c));
                        }
                    }
#endif
                }
            }
        }
    }
#if MV_FUSED
#define MV_SLOTS (2 * MVT)
#else
#define MV_SLOTS MVT
#endif
#pragma unroll
    for (int t = 0; t < MVT; t++) {
        red[t * MV_WG + lid] = acc[t];
#if MV_FUSED
        red[(MVT + t) * MV_WG + lid] = ss[t];
#endif
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int half_ = MV_LPR / 2; half_ > 0; half_ >>= 1) {
        if (lane < half_) {
#pragma unroll
            for (int i = 0; i < MV_SLOTS; i++) {
                red[i * MV_WG + lid] += red[i * MV_WG + lid + half_];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lane == 0 && (lrow & 1) == 0 && r < rows) {
        int hasB = r + 1 < rows;
        for (int t = 0; t < n; t++) {
            float a = red[t * MV_WG + lid];
            float b = hasB ? red[t * MV_WG + lid + MV_LPR] : 0.0f;
#if MV_STAGED
            // the group's sum of squares: its rows' lane sums, in row order
            float sq = 0.0f;
            for (int q = 0; q < MV_ROWS; q++) {
                sq += red[MV_WG + q * MV_LPR];
            }
            float rs = 1.0f / sqrt(sq / cols + eps);
            a *= rs;
            b *= rs;
#elif MV_FUSED
            // rows r and r+1 summed the same x in the same order: row r's sum serves both
            float rs = 1.0f / sqrt(red[(MVT + t) * MV_WG + lid] / cols + eps);
            a *= rs;
            b *= rs;
#endif
            epilogue(r, t, a, b, hasB, EPI_PASS);
        }
    }
}

#undef MV_SLOTS
#undef MV_NAME
#undef MV_STAGED
