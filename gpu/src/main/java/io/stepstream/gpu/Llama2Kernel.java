package io.stepstream.gpu;

import com.aparapi.Kernel;

/**
 * The whole forward step of a llama2.c model as ONE Aparapi kernel: every stage is a pass, chosen by
 * {@code passOp[getPassId()]} (with its layer in {@code passLayer}), so a step is a single {@code execute}
 * of {@code 3 + 9 * nLayers} passes. One kernel instance means one OpenCL context, so weights, activations
 * and the paged KV cache are all buffers of this object and never leave the device between passes.
 *
 * <p>Work layout. Every pass runs on the same 1D range of {@code groups x lsize} work items. Matmul passes
 * give each work-group a unit of two weight rows against up to four token rows: the group's work items walk
 * the row's columns together (coalesced reads along the row), each keeps 8 (2 for a single token) partial
 * sums, and a tree reduction in local memory adds them up; units are spread over the groups with a
 * group-stride loop. A pair of rows is exactly what RoPE rotates (q/k) and what SwiGLU combines (w1/w3), so
 * those run in the same unit's epilogue. RMSNorm and softmax also take a work-group per row with local
 * reductions; the rest walks its elements with a grid-stride loop.
 *
 * <p>Weights: matrices are F32, F16 (IEEE half bits in a char[], decoded with integer and float arithmetic:
 * Aparapi has no half type) or Q8_0 (int8 quants, one scale per 32 consecutive elements of the concatenated
 * array); the embedding, norms and RoPE tables stay F32. Layouts: activations are row-major per token; weights
 * of all layers of one kind are concatenated (layer l of a [rows][cols] matrix starts at l*rows*cols); the KV
 * pool is the engine's block layout ({@code [block][layer][k|v][position in block][kvDim]}, 16 positions a
 * block), addressed through each sequence's block table. Aparapi translates {@link #run()} and the methods it
 * calls to OpenCL C: only primitive fields and arrays, no objects, no array parameters.
 */
public final class Llama2Kernel extends Kernel {
    static final int OP_NOOP = -1;
    static final int OP_EMBED = 0;
    static final int OP_RMSNORM_ATT = 1;
    static final int OP_QKV_ROPE = 2;
    static final int OP_SCORES = 3;
    static final int OP_SOFTMAX = 4;
    static final int OP_ATTN_OUT = 5;
    static final int OP_WO_RESIDUAL = 6;
    static final int OP_RMSNORM_FFN = 7;
    static final int OP_FFN_SWIGLU = 8;
    static final int OP_W2_RESIDUAL = 9;
    static final int OP_FINAL_NORM = 10;
    static final int OP_LOGITS = 11;
    static final int OPS = 12;
    /** The passes of one transformer block, in order. */
    static final int[] LAYER_OPS = {OP_RMSNORM_ATT, OP_QKV_ROPE, OP_SCORES, OP_SOFTMAX, OP_ATTN_OUT,
            OP_WO_RESIDUAL, OP_RMSNORM_FFN, OP_FFN_SWIGLU, OP_W2_RESIDUAL};
    static final int BLOCK = 16;
    /** Score of a key outside a sequence's block-sparse pattern: exp() of it underflows to 0. */
    static final float MASKED = -1.0e30f;
    /** Work items per group at most (the local reduction buffer is sized for it); a power of two. */
    static final int MAX_LOCAL = 128;
    /** Token rows one matmul unit multiplies at once (per weight row). */
    static final int TOKENS_PER_UNIT = 4;

    static final int WT_F32 = 0;
    static final int WT_F16 = 1;
    static final int WT_Q8_0 = 2;

    /** The suffix of the weight fields holding encoding {@code wtype}: wq (F32), wqH (F16), wqQ (Q8_0). */
    static String weightFieldSuffix(int wtype) {
        return switch (wtype) {
            case WT_F32 -> "";
            case WT_F16 -> "H";
            default -> "Q";
        };
    }

    static final int K_WQ = 0;
    static final int K_WK = 1;
    static final int K_WV = 2;
    static final int K_WO = 3;
    static final int K_W1 = 4;
    static final int K_W2 = 5;
    static final int K_W3 = 6;
    static final int K_CLS = 7;
    static final int KINDS = 8;

    // Shape (set once).
    int dim;
    int kvDim;
    int hidden;
    int nHeads;
    int headSize;
    int kvGroup;
    int vocab;
    int ctx;
    int maxBlocksPerSeq;
    int blockFloats;
    int wtype;
    float eps;
    float attScale;

    // This step's sizes (kernel arguments, sent with every execute).
    int tokens;
    /** Entries (sequences or canvases) of the step; the passes index them through tokenSeq, not by count. */
    int entries;
    int maxLen;
    /** Rows that get logits: the final norm and the classifier run on rows logitRow[0 .. logitRows). */
    int logitRows;

    // The pass schedule.
    int[] passOp;
    int[] passLayer;

    // Weights, resident. Matrices in the encoding wtype names; arrays of the other encodings hold one element.
    float[] emb;
    float[] rmsAtt;
    float[] rmsFfn;
    float[] rmsFinal;
    float[] ropeCos;
    float[] ropeSin;
    /** 2^(e-25) for each f16 exponent e (e = 0: 2^-24, the subnormal step). */
    float[] f16Scale;
    float[] wq;
    float[] wk;
    float[] wv;
    float[] wo;
    float[] w1;
    float[] w2;
    float[] w3;
    float[] cls;
    // F16: the IEEE half bits of each element.
    char[] wqH;
    char[] wkH;
    char[] wvH;
    char[] woH;
    char[] w1H;
    char[] w2H;
    char[] w3H;
    char[] clsH;
    // Q8_0: int8 quants of each element and one float scale per 32 elements (ggml's block, scale widened).
    byte[] wqQ;
    byte[] wkQ;
    byte[] wvQ;
    byte[] woQ;
    byte[] w1Q;
    byte[] w2Q;
    byte[] w3Q;
    byte[] clsQ;
    float[] wqS;
    float[] wkS;
    float[] wvS;
    float[] woS;
    float[] w1S;
    float[] w2S;
    float[] w3S;
    float[] clsS;
    // KV block pool, resident.
    float[] kv;

    // Per-step inputs: token id, position and entry of each row; block table rows per entry; the rows whose
    // logits come back (an AR step: each entry's last row; a diffusion step: the range each canvas asks for).
    int[] tokenIds;
    int[] tokenPos;
    int[] tokenSeq;
    int[] blockTable;
    int[] logitRow;
    /**
     * Per entry: 0 for causal attention (a row sees positions 0..pos, the AR case), else the length of the entry's
     * canvas, which every row of it attends to whole (positions 0..len-1): bidirectional attention for a diffusion
     * step. It works because the QKV pass writes all of a step's keys and values before the scores pass reads any.
     */
    int[] entryLen;
    // Block-sparse attention (see BlockSparsePattern): per entry, the offset of its indptr rows in patIndptr
    // (-1: dense) and of its indices in patIndices.
    int[] entryIndptr;
    int[] entryIndices;
    int[] patIndptr;
    int[] patIndices;

    // Activations, resident scratch.
    float[] x;
    float[] xb;
    float[] q;
    float[] hb;
    float[] att;
    float[] logits;

    /** Per work-group partial sums: 8 slots of MAX_LOCAL. */
    @Local
    float[] red = new float[8 * MAX_LOCAL];

    @Override
    public void run() {
        int pass = getPassId();
        int op = passOp[pass];
        int l = passLayer[pass];
        int gid = getGlobalId(0);
        int gsize = getGlobalSize(0);
        int lid = getLocalId(0);
        int lsize = getLocalSize(0);
        int group = getGroupId(0);
        int groups = getNumGroups(0);
        // Plain flags, not one long || chain: Aparapi's bytecode folding breaks on those.
        int norm = 0;
        if (op == OP_RMSNORM_ATT) {
            norm = 1;
        }
        if (op == OP_RMSNORM_FFN) {
            norm = 1;
        }
        if (op == OP_FINAL_NORM) {
            norm = 1;
        }
        int mm = 0;
        if (op == OP_QKV_ROPE) {
            mm = 1;
        }
        if (op == OP_WO_RESIDUAL) {
            mm = 1;
        }
        if (op == OP_FFN_SWIGLU) {
            mm = 1;
        }
        if (op == OP_W2_RESIDUAL) {
            mm = 1;
        }
        if (op == OP_LOGITS) {
            mm = 1;
        }
        if (op == OP_EMBED) {
            embed(gid, gsize);
        } else if (norm == 1) {
            rmsnorm(op, l, lid, lsize, group, groups);
        } else if (mm == 1) {
            matmul(op, l, lid, lsize, group, groups);
        } else if (op == OP_SCORES) {
            scores(l, gid, gsize);
        } else if (op == OP_SOFTMAX) {
            softmax(lid, lsize, group, groups);
        } else if (op == OP_ATTN_OUT) {
            attentionOut(l, gid, gsize);
        }
    }

    /** x[t] = embedding row of token t. */
    void embed(int gid, int gsize) {
        int n = tokens * dim;
        for (int i = gid; i < n; i += gsize) {
            int t = i / dim;
            x[i] = emb[tokenIds[t] * dim + (i - t * dim)];
        }
    }

    /** Adds up slots first, first+step, ... below 8 of red over the group's work items; ends with a barrier. */
    void reduceSum(int lid, int lsize, int first, int step) {
        localBarrier();
        for (int s = lsize / 2; s > 0; s = s / 2) {
            if (lid < s) {
                for (int k = first; k < 8; k += step) {
                    red[k * lsize + lid] += red[k * lsize + lid + s];
                }
            }
            localBarrier();
        }
    }

    /** The largest of red[0 .. lsize) into red[0]; ends with a barrier. */
    void reduceMax(int lid, int lsize) {
        localBarrier();
        for (int s = lsize / 2; s > 0; s = s / 2) {
            if (lid < s) {
                red[lid] = max(red[lid], red[lid + s]);
            }
            localBarrier();
        }
    }

    /** xb[row] = rmsnorm(x[source row]) with the op's weight; the final norm reads the rows logitRow lists. */
    void rmsnorm(int op, int l, int lid, int lsize, int group, int groups) {
        int rows = tokens;
        if (op == OP_FINAL_NORM) {
            rows = logitRows;
        }
        for (int r = group; r < rows; r += groups) {
            int src = r * dim;
            if (op == OP_FINAL_NORM) {
                src = logitRow[r] * dim;
            }
            float ss = 0f;
            for (int j = lid; j < dim; j += lsize) {
                float v = x[src + j];
                ss += v * v;
            }
            red[lid] = ss;
            reduceSum(lid, lsize, 0, 8);
            float scale = 1f / sqrt(red[0] / dim + eps);
            localBarrier(); // everyone has read red[0] before the next row overwrites it
            for (int j = lid; j < dim; j += lsize) {
                float weight = rmsFinal[j];
                if (op == OP_RMSNORM_ATT) {
                    weight = rmsAtt[l * dim + j];
                } else if (op == OP_RMSNORM_FFN) {
                    weight = rmsFfn[l * dim + j];
                }
                xb[r * dim + j] = weight * (scale * x[src + j]);
            }
        }
    }

    /**
     * Element i of the weight matrices of {@code kind} (all layers concatenated), decoded to float. Written as
     * flat ifs: Aparapi cannot fold long else-if chains nested in branches.
     */
    float weight(int kind, int i) {
        float v = 0f;
        if (wtype == WT_F32) {
            v = weightF32(kind, i);
        }
        if (wtype == WT_F16) {
            v = f16(weightF16Bits(kind, i));
        }
        if (wtype == WT_Q8_0) {
            v = weightQ8(kind, i);
        }
        return v;
    }

    float weightF32(int kind, int i) {
        float v = 0f;
        if (kind == K_WQ) {
            v = wq[i];
        }
        if (kind == K_WK) {
            v = wk[i];
        }
        if (kind == K_WV) {
            v = wv[i];
        }
        if (kind == K_WO) {
            v = wo[i];
        }
        if (kind == K_W1) {
            v = w1[i];
        }
        if (kind == K_W2) {
            v = w2[i];
        }
        if (kind == K_W3) {
            v = w3[i];
        }
        if (kind == K_CLS) {
            v = cls[i];
        }
        return v;
    }

    int weightF16Bits(int kind, int i) {
        int h = 0;
        if (kind == K_WQ) {
            h = wqH[i];
        }
        if (kind == K_WK) {
            h = wkH[i];
        }
        if (kind == K_WV) {
            h = wvH[i];
        }
        if (kind == K_WO) {
            h = woH[i];
        }
        if (kind == K_W1) {
            h = w1H[i];
        }
        if (kind == K_W2) {
            h = w2H[i];
        }
        if (kind == K_W3) {
            h = w3H[i];
        }
        if (kind == K_CLS) {
            h = clsH[i];
        }
        return h;
    }

    float weightQ8(int kind, int i) {
        int b = i >> 5;
        float v = 0f;
        if (kind == K_WQ) {
            v = wqQ[i] * wqS[b];
        }
        if (kind == K_WK) {
            v = wkQ[i] * wkS[b];
        }
        if (kind == K_WV) {
            v = wvQ[i] * wvS[b];
        }
        if (kind == K_WO) {
            v = woQ[i] * woS[b];
        }
        if (kind == K_W1) {
            v = w1Q[i] * w1S[b];
        }
        if (kind == K_W2) {
            v = w2Q[i] * w2S[b];
        }
        if (kind == K_W3) {
            v = w3Q[i] * w3S[b];
        }
        if (kind == K_CLS) {
            v = clsQ[i] * clsS[b];
        }
        return v;
    }

    /** The float value of IEEE half bits h (0..65535); finite values only (checked at upload). */
    float f16(int h) {
        int e = (h >> 10) & 31;
        int m = h & 1023;
        float v = m * f16Scale[0];
        if (e != 0) {
            v = (m + 1024) * f16Scale[e];
        }
        if (h >= 32768) {
            v = -v;
        }
        return v;
    }

    /** Element i of the matmul input: xb (src 0) or hb (src 1). */
    float act(int src, int i) {
        float v = 0f;
        if (src == 0) {
            v = xb[i];
        } else {
            v = hb[i];
        }
        return v;
    }

    /**
     * A matmul pass. A unit is two weight rows (A and B) against TOKENS_PER_UNIT consecutive token rows,
     * one work-group per unit; rows: q|k|v pairs (then RoPE and the KV store), wo pairs (+ residual), w1 row h
     * with w3 row h (SwiGLU), w2 pairs (+ residual), classifier pairs (logits of the logitRow rows, normed).
     */
    void matmul(int op, int l, int lid, int lsize, int group, int groups) {
        int cols = dim;
        int n = tokens;
        int pairs = 0;
        int src = 0;
        if (op == OP_QKV_ROPE) {
            pairs = (dim + 2 * kvDim) / 2;
        } else if (op == OP_WO_RESIDUAL) {
            pairs = (dim + 1) / 2;
        } else if (op == OP_FFN_SWIGLU) {
            pairs = hidden;
        } else if (op == OP_W2_RESIDUAL) {
            pairs = (dim + 1) / 2;
            cols = hidden;
            src = 1;
        } else {
            pairs = (vocab + 1) / 2;
            n = logitRows;
        }
        int chunks = (n + TOKENS_PER_UNIT - 1) / TOKENS_PER_UNIT;
        int units = pairs * chunks;
        for (int u = group; u < units; u += groups) {
            int p = u / chunks;
            int t0 = (u - p * chunks) * TOKENS_PER_UNIT;
            int r = 2 * p;
            int kindA = K_WO;
            int kindB = K_WO;
            int baseA = (l * dim + r) * dim;
            int hasB = 1;
            if (op == OP_QKV_ROPE) {
                if (r < dim) {
                    kindA = K_WQ;
                    baseA = (l * dim + r) * dim;
                } else if (r < dim + kvDim) {
                    kindA = K_WK;
                    baseA = (l * kvDim + r - dim) * dim;
                } else {
                    kindA = K_WV;
                    baseA = (l * kvDim + r - dim - kvDim) * dim;
                }
                kindB = kindA;
            } else if (op == OP_WO_RESIDUAL) {
                if (r + 1 >= dim) {
                    hasB = 0;
                }
            } else if (op == OP_FFN_SWIGLU) {
                kindA = K_W1;
                kindB = K_W3;
                baseA = (l * hidden + p) * dim;
            } else if (op == OP_W2_RESIDUAL) {
                kindA = K_W2;
                kindB = K_W2;
                baseA = (l * dim + r) * hidden;
                if (r + 1 >= dim) {
                    hasB = 0;
                }
            } else {
                kindA = K_CLS;
                kindB = K_CLS;
                baseA = r * dim;
                if (r + 1 >= vocab) {
                    hasB = 0;
                }
            }
            int baseB = baseA + cols;
            if (op == OP_FFN_SWIGLU) {
                baseB = baseA;
            }
            if (hasB == 0) {
                baseB = baseA;
            }
            if (n == 1) {
                float a0 = 0f;
                float b0 = 0f;
                for (int c = lid; c < cols; c += lsize) {
                    float xv = act(src, c);
                    a0 += weight(kindA, baseA + c) * xv;
                    b0 += weight(kindB, baseB + c) * xv;
                }
                red[lid] = a0;
                red[4 * lsize + lid] = b0;
                reduceSum(lid, lsize, 0, 4);
            } else {
                int x0 = t0 * cols;
                int x1 = min(t0 + 1, n - 1) * cols;
                int x2 = min(t0 + 2, n - 1) * cols;
                int x3 = min(t0 + 3, n - 1) * cols;
                float a0 = 0f;
                float a1 = 0f;
                float a2 = 0f;
                float a3 = 0f;
                float b0 = 0f;
                float b1 = 0f;
                float b2 = 0f;
                float b3 = 0f;
                for (int c = lid; c < cols; c += lsize) {
                    float wa = weight(kindA, baseA + c);
                    float wb = weight(kindB, baseB + c);
                    float v0 = act(src, x0 + c);
                    float v1 = act(src, x1 + c);
                    float v2 = act(src, x2 + c);
                    float v3 = act(src, x3 + c);
                    a0 += wa * v0;
                    a1 += wa * v1;
                    a2 += wa * v2;
                    a3 += wa * v3;
                    b0 += wb * v0;
                    b1 += wb * v1;
                    b2 += wb * v2;
                    b3 += wb * v3;
                }
                red[lid] = a0;
                red[lsize + lid] = a1;
                red[2 * lsize + lid] = a2;
                red[3 * lsize + lid] = a3;
                red[4 * lsize + lid] = b0;
                red[5 * lsize + lid] = b1;
                red[6 * lsize + lid] = b2;
                red[7 * lsize + lid] = b3;
                reduceSum(lid, lsize, 0, 1);
            }
            if (lid < TOKENS_PER_UNIT && t0 + lid < n) {
                matmulEpilogue(op, l, p, t0 + lid, red[lid * lsize], red[(4 + lid) * lsize], hasB);
            }
            localBarrier(); // the sums are read before the next unit overwrites them
        }
    }

    /** Writes one token's results of a unit: a = row A . input, b = row B . input. */
    void matmulEpilogue(int op, int l, int p, int t, float a, float b, int hasB) {
        int r = 2 * p;
        if (op == OP_QKV_ROPE) {
            qkvEpilogue(l, r, t, a, b);
        }
        if (op == OP_FFN_SWIGLU) {
            hb[t * hidden + p] = a * (1f / (1f + exp(-a))) * b;
        }
        if (op == OP_LOGITS) {
            logits[t * vocab + r] = a;
            if (hasB == 1) {
                logits[t * vocab + r + 1] = b;
            }
        }
        if (op == OP_WO_RESIDUAL) {
            residual(r, t, a, b, hasB);
        }
        if (op == OP_W2_RESIDUAL) {
            residual(r, t, a, b, hasB);
        }
    }

    void residual(int r, int t, float a, float b, int hasB) {
        x[t * dim + r] += a;
        if (hasB == 1) {
            x[t * dim + r + 1] += b;
        }
    }

    /** Rows r, r+1 of q|k|v for token t: RoPE on q and k; k and v go into the token's KV block. */
    void qkvEpilogue(int l, int r, int t, float a, float b) {
        int pos = tokenPos[t];
        int halfHead = headSize / 2;
        int rr = r;
        if (r >= dim) {
            rr = r - dim;
        }
        int rope = pos * halfHead + (rr % headSize) / 2;
        float fcr = ropeCos[rope];
        float fci = ropeSin[rope];
        float a2 = a * fcr - b * fci;
        float b2 = a * fci + b * fcr;
        int block = blockTable[tokenSeq[t] * maxBlocksPerSeq + pos / BLOCK];
        if (r < dim) {
            q[t * dim + r] = a2;
            q[t * dim + r + 1] = b2;
        }
        if (r >= dim && r < dim + kvDim) {
            int ko = block * blockFloats + ((l * 2) * BLOCK + pos % BLOCK) * kvDim + rr;
            kv[ko] = a2;
            kv[ko + 1] = b2;
        }
        if (r >= dim + kvDim) {
            int vo = block * blockFloats + ((l * 2 + 1) * BLOCK + pos % BLOCK) * kvDim + r - dim - kvDim;
            kv[vo] = a;
            kv[vo + 1] = b;
        }
    }

    /** The last key position row t attends to: its own position (causal), or its canvas's last one. */
    int lastKey(int t) {
        int last = tokenPos[t];
        int len = entryLen[tokenSeq[t]];
        if (len > 0) {
            last = len - 1;
        }
        return last;
    }

    /**
     * att[t][h][j] = q[t,h] . k[j, kv head of h] / sqrt(headSize) for every position j <= lastKey(t); under
     * a block-sparse pattern, keys outside the listed blocks get {@link #MASKED} and cost no dot product.
     */
    void scores(int l, int gid, int gsize) {
        int n = tokens * nHeads * maxLen;
        for (int i = gid; i < n; i += gsize) {
            int th = i / maxLen;
            int j = i - th * maxLen;
            int t = th / nHeads;
            int h = th - t * nHeads;
            int pos = tokenPos[t];
            if (j <= lastKey(t)) {
                int e = tokenSeq[t];
                int allowed = 1;
                if (entryIndptr[e] >= 0) {
                    int row = entryIndptr[e] + (l * nHeads + h) * maxBlocksPerSeq + pos / BLOCK;
                    int ib = entryIndices[e];
                    allowed = 0;
                    for (int m = patIndptr[row]; m < patIndptr[row + 1]; m++) {
                        if (patIndices[ib + m] == j / BLOCK) {
                            allowed = 1;
                        }
                    }
                }
                if (allowed == 1) {
                    int block = blockTable[e * maxBlocksPerSeq + j / BLOCK];
                    int ko = block * blockFloats + ((l * 2) * BLOCK + j % BLOCK) * kvDim + (h / kvGroup) * headSize;
                    int qo = t * dim + h * headSize;
                    float s = 0f;
                    for (int d = 0; d < headSize; d++) {
                        s += q[qo + d] * kv[ko + d];
                    }
                    att[th * ctx + j] = s / attScale;
                } else {
                    att[th * ctx + j] = MASKED;
                }
            }
        }
    }

    /** In-place softmax of each (token, head) row of att over positions 0..lastKey(t), a work-group per row. */
    void softmax(int lid, int lsize, int group, int groups) {
        int n = tokens * nHeads;
        for (int th = group; th < n; th += groups) {
            int len = lastKey(th / nHeads) + 1;
            int o = th * ctx;
            float m = att[o];
            for (int j = lid; j < len; j += lsize) {
                m = max(m, att[o + j]);
            }
            red[lid] = m;
            reduceMax(lid, lsize);
            m = red[0];
            localBarrier();
            float sum = 0f;
            for (int j = lid; j < len; j += lsize) {
                float e = exp(att[o + j] - m);
                att[o + j] = e;
                sum += e;
            }
            red[lid] = sum;
            reduceSum(lid, lsize, 0, 8);
            sum = red[0];
            localBarrier();
            for (int j = lid; j < len; j += lsize) {
                att[o + j] = att[o + j] / sum;
            }
        }
    }

    /**
     * xb[t][h*hs + d] = sum over j <= lastKey(t) of att[t][h][j] * v[j][kv head of h][d]; under a block-sparse
     * pattern only the listed key blocks are read, in the pattern's order.
     */
    void attentionOut(int l, int gid, int gsize) {
        int n = tokens * dim;
        for (int i = gid; i < n; i += gsize) {
            int t = i / dim;
            int hd = i - t * dim;
            int h = hd / headSize;
            int vOffset = ((l * 2 + 1) * BLOCK) * kvDim + (h / kvGroup) * headSize + (hd - h * headSize);
            int e = tokenSeq[t];
            int seqBase = e * maxBlocksPerSeq;
            int ao = (t * nHeads + h) * ctx;
            int pos = tokenPos[t];
            int last = lastKey(t);
            float acc = 0f;
            if (entryIndptr[e] < 0) {
                for (int j = 0; j <= last; j++) {
                    int block = blockTable[seqBase + j / BLOCK];
                    acc += att[ao + j] * kv[block * blockFloats + vOffset + (j % BLOCK) * kvDim];
                }
            } else {
                int row = entryIndptr[e] + (l * nHeads + h) * maxBlocksPerSeq + pos / BLOCK;
                int ib = entryIndices[e];
                for (int m = patIndptr[row]; m < patIndptr[row + 1]; m++) {
                    int kb = patIndices[ib + m];
                    int block = blockTable[seqBase + kb];
                    int blockLast = min(kb * BLOCK + BLOCK - 1, last);
                    for (int j = kb * BLOCK; j <= blockLast; j++) {
                        acc += att[ao + j] * kv[block * blockFloats + vOffset + (j % BLOCK) * kvDim];
                    }
                }
            }
            xb[i] = acc;
        }
    }
}
