// Hand-written matmul kernels for the five matmul passes of a llama2 step (OpenCL C 1.2, no extensions).
//
// Every kernel computes out[t][r] = W[r] . in[t] for the "virtual" rows r of one pass and runs the pass's
// epilogue on row pairs (r, r+1), r even: RoPE + q / KV-pool writes (QKV), residual add (WO, W2), SwiGLU
// (W1/W3 interleaved: virtual row 2h is w1 row h, 2h+1 is w3 row h), plain store (classifier logits).
// A virtual row maps to one of up to three weight segments (wq | wk | wv for QKV), each the layers of one kind in
// the bound weight chunk, concatenated; the chunk starts at model layer layer0, so layer l starts
// (l - layer0) * lstride elements in. A model whose kinds do not fit one buffer binds, per pass, the chunk (a whole
// number of layers) that holds the pass's layer (layer0 is 0 otherwise); `layer` itself places the K and V rows in
// the KV pool and picks the fused norm's weights. layer0 changes only with the chunk, not with every layer.
//
// Build-time macros (one program build per variant; the host passes the same values it sizes ranges with):
//   WT         weight encoding: 0 F32 (float), 1 F16 (IEEE half bits, vload_half), 2 Q8_0 (int8 + float scale
//              per 32 consecutive elements of the segment)
//   MV_WG      work items per group of the matvec kernels `mv_t*` (few tokens; mv.cl, one kernel per tier)
//   MV_LPR     lanes that share one weight row in `mv_t*` (power of two; MV_WG / MV_LPR rows per group, even)
//   MV_TOKENS  tokens the largest matvec tier handles (each loaded weight is used for all of them); the tiers are
//              1, 2, 4, 8 below it and MV_TOKENS itself
//   MV_UNROLL  vector loads each lane issues before using them (bytes in flight)
//   TM, TN, TK tile of the register-tiled kernel `mm`: rows x tokens per group, K-slice staged in local memory
//   RM, RN     rows x tokens each work item of `mm` accumulates in registers (RM even)
//   KV_F16     the KV pool holds half bits (kv.cl, prepended to this file; KvCacheType): the QKV epilogue rounds K
//              and V to nearest even as it stores them
// Columns must be a multiple of 4 (vector loads never straddle a row end or a Q8_0 block).

#ifndef WT
#define WT 0
#endif
#ifndef MV_WG
#define MV_WG 256
#endif
#ifndef MV_LPR
#define MV_LPR 32
#endif
#ifndef MV_TOKENS
#define MV_TOKENS 8
#endif
#ifndef MV_UNROLL
#define MV_UNROLL 4
#endif
#ifndef TM
#define TM 32
#endif
#ifndef TN
#define TN 32
#endif
#ifndef TK
#define TK 32
#endif
#ifndef RM
#define RM 2
#endif
#ifndef RN
#define RN 4
#endif

#define MV_ROWS (MV_WG / MV_LPR)
#define MV_CAT_(a, b) a##b
#define MV_CAT(a, b) MV_CAT_(a, b)
#define MM_COLS_OF_ITEMS (TN / RN)
#define MM_WG ((TM / RM) * (TN / RN))
#define KV_BLOCK 16

#if (MV_ROWS % 2) != 0 || (MV_WG % MV_LPR) != 0
#error "MV_WG / MV_LPR must be an even number of rows"
#endif
#if (RM % 2) != 0 || (TM % RM) != 0 || (TN % RN) != 0 || (TK % 4) != 0
#error "RM must be even and divide TM; RN must divide TN; TK a multiple of 4"
#endif

// Element indices i of LOAD4 / XLOAD4 are multiples of 4 in buffers the driver aligns, so the vector-typed loads
// are aligned: the compiler may emit one wide load instead of the element loads vload4 must allow for.
#define XLOAD4_RAW(p) (*(__global const float4 *)(p))
#ifdef XH
// XH (set with tensor cores on): mv and mm take the activations rounded to f16 as mmt does, so a token's result
// does not depend on which kernel its batch's token count picks (only the f32 summation order may differ).
inline float4 round4_half(float4 v) {
    ushort4 bits;
    vstore_half4_rte(v, 0, (__private half *)&bits);
    return vload_half4(0, (const __private half *)&bits);
}
#define XROUND4(v) round4_half(v)
#else
#define XROUND4(v) (v)
#endif
#define XLOAD4(p) XROUND4(XLOAD4_RAW(p))
#if WT == 0
#define WTYPE float
#define LOAD4(w, s, i) (*(__global const float4 *)((w) + (i)))
#elif WT == 1
#define WTYPE half
// One aligned 8-byte load of the four half bit patterns, decoded from a private copy (vload_half4 straight from
// global memory may be split into four 2-byte loads, as it must allow any 2-byte alignment).
inline float4 load_half4(__global const half *p) {
    ushort4 bits = *(__global const ushort4 *)p;
    return vload_half4(0, (const __private half *)&bits);
}
#define LOAD4(w, s, i) load_half4((w) + (i))
#elif WT == 2
#define WTYPE char
#define LOAD4(w, s, i) (convert_float4(*(__global const char4 *)((w) + (i))) * (s)[(i) >> 5])
#else
#error "WT must be 0 (F32), 1 (F16) or 2 (Q8_0)"
#endif

// Epilogue kinds (the `op` argument).
#define EPI_QKV 0
#define EPI_RESIDUAL 1
#define EPI_SWIGLU 2
#define EPI_STORE 3

#define MATMUL_ARGS \
    __global const WTYPE *W0, __global const float *S0, \
    __global const WTYPE *W1, __global const float *S1, \
    __global const WTYPE *W2, __global const float *S2, \
    int lstride0, int lstride1, int lstride2, int split1, int split2, int interleave, \
    int rows, int cols, __global const float *in, int n, int layer, int op, \
    __global float *out, int outStride, __global KV_T *kv, \
    __global const float *ropeCos, __global const float *ropeSin, \
    __global const int *tokenPos, __global const int *tokenSeq, __global const int *blockTable, \
    int headSize, int maxBlocksPerSeq, int blockFloats, int kvDim, int ksplit, __global float *partial, \
    __global int *counters, int layer0

// mv's extra arguments, after MATMUL_ARGS: the fused RMSNorm's residual stream, norm weights (layer l at
// l * normStride), source rows (normMode 2: row normRow[t] for token t; 1: row t; 0: no norm, read `in`), eps.
// normStage: local memory of cols floats for the staged one-token build (MV_STAGE; see mv.cl), else unused.
#define MV_NORM_ARGS \
    __global const float *normX, __global const float *normW, __global const int *normRow, float eps, \
    int normMode, int normStride, __local float4 *normStage

#define EPI_PASS op, out, outStride, kv, ropeCos, ropeSin, tokenPos, tokenSeq, blockTable, headSize, \
    maxBlocksPerSeq, blockFloats, kvDim, split1, layer

// Segment, weight pointer, scale pointer and first element of virtual row r.
#define RESOLVE(r, w, s, off) { \
    int seg_; int rr_; \
    if (interleave) { seg_ = (r) & 1; rr_ = (r) >> 1; } \
    else if ((r) < split1) { seg_ = 0; rr_ = (r); } \
    else if ((r) < split2) { seg_ = 1; rr_ = (r) - split1; } \
    else { seg_ = 2; rr_ = (r) - split2; } \
    w = seg_ == 0 ? W0 : (seg_ == 1 ? W1 : W2); \
    s = seg_ == 0 ? S0 : (seg_ == 1 ? S1 : S2); \
    off = (layer - layer0) * (seg_ == 0 ? lstride0 : (seg_ == 1 ? lstride1 : lstride2)) + rr_ * cols; }

/** Results a (row r) and b (row r+1, if hasB) of token t, r even, written as the pass wants them. */
inline void epilogue(int r, int t, float a, float b, int hasB,
                     int op, __global float *out, int outStride, __global KV_T *kv,
                     __global const float *ropeCos, __global const float *ropeSin,
                     __global const int *tokenPos, __global const int *tokenSeq, __global const int *blockTable,
                     int headSize, int maxBlocksPerSeq, int blockFloats, int kvDim, int dim, int layer) {
    if (op == EPI_RESIDUAL) {
        out[t * outStride + r] += a;
        if (hasB) {
            out[t * outStride + r + 1] += b;
        }
    } else if (op == EPI_STORE) {
        out[t * outStride + r] = a;
        if (hasB) {
            out[t * outStride + r + 1] = b;
        }
    } else if (op == EPI_SWIGLU) {
        out[t * outStride + (r >> 1)] = a * (1.0f / (1.0f + exp(-a))) * b;
    } else {
        // q | k | v rows: RoPE rotates the (r, r+1) pair of q and k; k and v go into the token's KV block.
        int pos = tokenPos[t];
        int rr = r >= dim ? r - dim : r;
        int rope = pos * (headSize / 2) + (rr % headSize) / 2;
        float fcr = ropeCos[rope];
        float fci = ropeSin[rope];
        float a2 = a * fcr - b * fci;
        float b2 = a * fci + b * fcr;
        int block = blockTable[tokenSeq[t] * maxBlocksPerSeq + pos / KV_BLOCK];
        if (r < dim) {
            out[t * outStride + r] = a2;
            out[t * outStride + r + 1] = b2;
        } else if (r < dim + kvDim) {
            // 64-bit: a device-only KV pool may hold more than 2^31 floats (the block's own part stays int)
            long ko = (long) block * blockFloats + ((layer * 2) * KV_BLOCK + pos % KV_BLOCK) * kvDim + rr;
            KV_STORE2(kv, ko, a2, b2);
        } else {
            long vo = (long) block * blockFloats + ((layer * 2 + 1) * KV_BLOCK + pos % KV_BLOCK) * kvDim + r - dim - kvDim;
            KV_STORE2(kv, vo, a, b);
        }
    }
}

/**
 * Many tokens: a group computes a TM x TN tile of rows x tokens; K-slices of TK columns of the weights
 * (decoded to float) and of the activations are staged in local memory; each work item accumulates RM
 * consecutive rows (so RoPE / SwiGLU pairs stay in one item) x RN tokens (strided by TN / RN) in registers.
 * The next K-slice is loaded into registers while the current one is multiplied (its global loads are in
 * flight during the arithmetic). Each item's weight rows are fixed, so their segment and offset are resolved
 * once. Groups: row tiles fastest, then token tiles.
 */
#define MM_WLOADS ((TM * (TK / 4) + MM_WG - 1) / MM_WG)
#define MM_XLOADS ((TN * (TK / 4) + MM_WG - 1) / MM_WG)

__kernel __attribute__((reqd_work_group_size(MM_WG, 1, 1)))
void mm(MATMUL_ARGS) {
    __local float ws[TK][TM + 1];
    __local float xs[TK][TN + 1];
    int lid = get_local_id(0);
    int tx = lid % MM_COLS_OF_ITEMS;
    int ty = lid / MM_COLS_OF_ITEMS;
    int rowTiles = (rows + TM - 1) / TM;
    int tiles = rowTiles * ((n + TN - 1) / TN);
    int g = get_group_id(0);
    int ks = g / tiles; // split-K: this group's slice of the columns
    g -= ks * tiles;
    int row0 = (g % rowTiles) * TM;
    int tok0 = (g / rowTiles) * TN;
    int kchunk = ((cols + ksplit - 1) / ksplit + TK - 1) / TK * TK;
    int kbeg = ks * kchunk;
    int kend = min(cols, kbeg + kchunk);
    float acc[RM][RN];
    for (int i = 0; i < RM; i++) {
        for (int j = 0; j < RN; j++) {
            acc[i][j] = 0.0f;
        }
    }
    // This item's weight loads: row within the tile, column within the slice, where the row's data starts.
    __global const WTYPE *wp[MM_WLOADS];
    __global const float *sp[MM_WLOADS];
    int woff[MM_WLOADS];
    int wlr[MM_WLOADS];
    int wkc[MM_WLOADS];
    for (int m = 0; m < MM_WLOADS; m++) {
        int i = lid + m * MM_WG;
        wlr[m] = i / (TK / 4);
        wkc[m] = (i - wlr[m] * (TK / 4)) * 4;
        int r = row0 + wlr[m];
        wp[m] = W0;
        sp[m] = S0;
        woff[m] = -1; // no row: loads zeros
        if (i < TM * (TK / 4) && r < rows) {
            __global const WTYPE *w;
            __global const float *s;
            int off;
            RESOLVE(r, w, s, off);
            wp[m] = w;
            sp[m] = s;
            woff[m] = off;
        }
    }
    float4 wreg[MM_WLOADS];
    float4 xreg[MM_XLOADS];
    for (int k0 = kbeg; k0 < kend; k0 += TK) {
        if (k0 == kbeg) {
            for (int m = 0; m < MM_WLOADS; m++) {
                int c = k0 + wkc[m];
                wreg[m] = woff[m] >= 0 && c < kend ? LOAD4(wp[m], sp[m], woff[m] + c) : (float4)(0.0f);
            }
            for (int m = 0; m < MM_XLOADS; m++) {
                int i = lid + m * MM_WG;
                int lt = i / (TK / 4);
                int c = k0 + (i - lt * (TK / 4)) * 4;
                int t = tok0 + lt;
                xreg[m] = i < TN * (TK / 4) && t < n && c < kend ? XLOAD4(in + t * cols + c) : (float4)(0.0f);
            }
        }
        for (int m = 0; m < MM_WLOADS; m++) {
            if (lid + m * MM_WG < TM * (TK / 4)) {
                int lr = wlr[m];
                int kc = wkc[m];
                ws[kc][lr] = wreg[m].x;
                ws[kc + 1][lr] = wreg[m].y;
                ws[kc + 2][lr] = wreg[m].z;
                ws[kc + 3][lr] = wreg[m].w;
            }
        }
        for (int m = 0; m < MM_XLOADS; m++) {
            int i = lid + m * MM_WG;
            if (i < TN * (TK / 4)) {
                int lt = i / (TK / 4);
                int kc = (i - lt * (TK / 4)) * 4;
                xs[kc][lt] = xreg[m].x;
                xs[kc + 1][lt] = xreg[m].y;
                xs[kc + 2][lt] = xreg[m].z;
                xs[kc + 3][lt] = xreg[m].w;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        int k1 = k0 + TK;
        if (k1 < kend) {
            for (int m = 0; m < MM_WLOADS; m++) {
                int c = k1 + wkc[m];
                wreg[m] = woff[m] >= 0 && c < kend ? LOAD4(wp[m], sp[m], woff[m] + c) : (float4)(0.0f);
            }
            for (int m = 0; m < MM_XLOADS; m++) {
                int i = lid + m * MM_WG;
                int lt = i / (TK / 4);
                int c = k1 + (i - lt * (TK / 4)) * 4;
                int t = tok0 + lt;
                xreg[m] = i < TN * (TK / 4) && t < n && c < kend ? XLOAD4(in + t * cols + c) : (float4)(0.0f);
            }
        }
#pragma unroll 4
        for (int kk = 0; kk < TK; kk++) {
            float a[RM];
            float b[RN];
            for (int i = 0; i < RM; i++) {
                a[i] = ws[kk][ty * RM + i];
            }
            for (int j = 0; j < RN; j++) {
                b[j] = xs[kk][tx + j * MM_COLS_OF_ITEMS];
            }
            for (int i = 0; i < RM; i++) {
                for (int j = 0; j < RN; j++) {
                    acc[i][j] += a[i] * b[j];
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < RM; i += 2) {
        int r = row0 + ty * RM + i;
        if (r < rows) {
            int hasB = r + 1 < rows;
            for (int j = 0; j < RN; j++) {
                int t = tok0 + tx + j * MM_COLS_OF_ITEMS;
                if (t < n && ksplit > 1) {
                    partial[(ks * n + t) * rows + r] = acc[i][j];
                    if (hasB) {
                        partial[(ks * n + t) * rows + r + 1] = acc[i + 1][j];
                    }
                } else if (t < n) {
                    epilogue(r, t, acc[i][j], acc[i + 1][j], hasB, EPI_PASS);
                }
            }
        }
    }
}

/**
 * Second step of a split-K `mm`: one work item per (row pair, token) adds the ksplit partial sums in slice
 * order (deterministic) and runs the epilogue.
 */
__kernel void mm_reduce(MATMUL_ARGS) {
    int id = get_global_id(0);
    int pairs = (rows + 1) / 2;
    if (id >= pairs * n) {
        return;
    }
    int t = id / pairs;
    int r = (id - t * pairs) * 2;
    int hasB = r + 1 < rows;
    float a = 0.0f;
    float b = 0.0f;
    for (int s = 0; s < ksplit; s++) {
        a += partial[(s * n + t) * rows + r];
        if (hasB) {
            b += partial[(s * n + t) * rows + r + 1];
        }
    }
    epilogue(r, t, a, b, hasB, EPI_PASS);
}

