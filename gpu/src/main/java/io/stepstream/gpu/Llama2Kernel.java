package io.stepstream.gpu;

import com.aparapi.Kernel;

/**
 * The whole forward step of a llama2.c model as ONE Aparapi kernel: every stage is a pass, chosen by
 * {@code passOp[getPassId()]} (with its layer in {@code passLayer}), so a step is a single {@code execute}
 * of {@code 5 * nLayers + 1} passes. One kernel instance means one OpenCL context, so weights, activations
 * and the paged KV cache are all buffers of this object and never leave the device between passes.
 *
 * <p>Passes. A pass ends only where the next stage needs results from every work-group (a global barrier):
 * per layer {@link #OP_QKV_ROPE} (RMSNorm folded in; RoPE and the KV store in the epilogue; layer 0 reads the
 * embedding rows and also stores them as the residual stream), {@link #OP_ATTENTION} (scores, softmax and the
 * weighted sum of values in one sweep), {@link #OP_WO_RESIDUAL}, {@link #OP_FFN_SWIGLU} (RMSNorm folded in)
 * and {@link #OP_W2_RESIDUAL}; then one {@link #OP_LOGITS} pass with the final RMSNorm folded in. Folding a
 * norm into a matmul works because rmsnorm(x) . w = scale(x) * sum_c (g_c w_c) x_c: each work-group sums the
 * squares of its own token rows while it streams them (x is small and hot in cache), so no pass writes xb.
 *
 * <p>Matmul work layout. Every pass runs on the same 1D range of {@code groups x lsize} work items; a matmul
 * unit (one work-group at a time, units spread with a group-stride loop) is {@code 2 * P} weight rows by
 * {@code 8 * S_t} token rows (1 token at batch 1). Its work items form {@code P x S_t} cells of one row pair
 * by 8 tokens, each cell split over {@code slices} work items that walk the columns together (coalesced reads
 * along the rows) and are summed in local memory at the end. So a weight element read from global memory
 * serves every token of the unit (up to 64), and an activation element every row of it. A row pair is exactly
 * what RoPE rotates (q/k) and what SwiGLU combines (w1 row h with w3 row h), so those run in the epilogue.
 * See {@link #tokenSets}, {@link #rowPairs} for the shape chosen per batch size.
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
    static final int OP_QKV_ROPE = 0;
    static final int OP_ATTENTION = 1;
    static final int OP_WO_RESIDUAL = 2;
    static final int OP_FFN_SWIGLU = 3;
    static final int OP_W2_RESIDUAL = 4;
    static final int OP_LOGITS = 5;
    static final int OPS = 6;
    /** The passes of one transformer block, in order. */
    static final int[] LAYER_OPS = {OP_QKV_ROPE, OP_ATTENTION, OP_WO_RESIDUAL, OP_FFN_SWIGLU, OP_W2_RESIDUAL};
    static final int BLOCK = 16;
    /** Running maximum before any key was seen; exp() of it minus a real score underflows to 0. */
    static final float MASKED = -1.0e30f;
    /** Work items per group at most (the local buffers are sized for it); a power of two. */
    static final int MAX_LOCAL = 128;
    /** Token rows one work item multiplies at once when a step has more than one token. */
    static final int TOKENS_PER_ITEM = 8;
    /** Token cells of a matmul unit at most: a unit covers up to 8 * 8 = 64 token rows. */
    static final int MAX_TOKEN_SETS = 8;
    /** Local slots per work item: 8 row-A sums, 8 row-B sums, 8 sums of squares (RMSNorm). */
    static final int SLOTS = 24;
    /** Floats of the local buffer {@link #red}. */
    static final int LOCAL_FLOATS = SLOTS * MAX_LOCAL;

    /** Sources of a matmul's input rows. */
    static final int SRC_X = 0;
    static final int SRC_XB = 1;
    static final int SRC_HB = 2;
    static final int SRC_EMB = 3;

    static final int WT_F32 = 0;
    static final int WT_F16 = 1;
    static final int WT_Q8_0 = 2;

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
    int maxBlocksPerSeq;
    int blockFloats;
    int wtype;
    float eps;
    float attScale;

    // This step's sizes (kernel arguments, sent with every execute).
    int tokens;
    int entries;
    int maxLen;

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

    // Per-step inputs: token id, position and entry of each row; block table rows per entry; last row per entry.
    int[] tokenIds;
    int[] tokenPos;
    int[] tokenSeq;
    int[] blockTable;
    int[] lastRow;
    // Block-sparse attention (see BlockSparsePattern): per entry, the offset of its indptr rows in patIndptr
    // (-1: dense) and of its indices in patIndices.
    int[] entryIndptr;
    int[] entryIndices;
    int[] patIndptr;
    int[] patIndices;

    // Activations, resident scratch. xb holds the attention output (wo's input), hb the SwiGLU output.
    float[] x;
    float[] xb;
    float[] q;
    float[] hb;
    float[] logits;

    /** Per work-group scratch: matmul partial sums (SLOTS x lsize); attention scores, sums, q and the output. */
    @Local
    float[] red = new float[LOCAL_FLOATS];
    /** Attention: KV pool offset of each key of the current chunk (-1: not attended). */
    @Local
    int[] keyRow = new int[MAX_LOCAL];

    @Override
    public void run() {
        int pass = getPassId();
        int op = passOp[pass];
        int l = passLayer[pass];
        int lid = getLocalId(0);
        int lsize = getLocalSize(0);
        int group = getGroupId(0);
        int groups = getNumGroups(0);
        if (op == OP_ATTENTION) {
            attention(l, lid, lsize, group, groups);
        } else if (op >= 0) {
            matmul(op, l, lid, lsize, group, groups);
        }
    }

    /**
     * Token cells of a matmul unit for a pass over n token rows: a power of two up to MAX_TOKEN_SETS and lsize,
     * enough for n (1 at batch 1). Written as fixed-count loops of plain ifs: Aparapi cannot translate a loop
     * with a compound condition.
     */
    static int tokenSets(int n, int lsize) {
        int sets = 1;
        for (int i = 0; i < 3; i++) {
            if (sets * TOKENS_PER_ITEM < n) {
                sets = sets * 2;
            }
        }
        for (int i = 0; i < 3; i++) {
            if (sets > lsize) {
                sets = sets / 2;
            }
        }
        return sets;
    }

    /**
     * Row pairs of a matmul unit: one at batch 1 (all work items on one pair: the most groups and bytes in
     * flight for a bandwidth-bound matvec), 2 up to 8 tokens, 4 beyond (each activation read serves 8 rows),
     * fewer where the group has too few work items for all cells.
     */
    static int rowPairs(int n, int lsize) {
        int pairs = 1;
        if (n > 1) {
            pairs = 2;
        }
        if (n > TOKENS_PER_ITEM) {
            pairs = 4;
        }
        int sets = tokenSets(n, lsize);
        for (int i = 0; i < 2; i++) {
            if (pairs * sets > lsize) {
                pairs = pairs / 2;
            }
        }
        return pairs;
    }

    /** Element i of the input rows of a matmul. */
    float act(int src, int i) {
        float v = 0f;
        if (src == SRC_X) {
            v = x[i];
        }
        if (src == SRC_XB) {
            v = xb[i];
        }
        if (src == SRC_HB) {
            v = hb[i];
        }
        if (src == SRC_EMB) {
            v = emb[i];
        }
        return v;
    }

    /** Offset of the input row of token row t (t < n) of a matmul pass. */
    int actRow(int op, int l, int t) {
        int row = t * dim;
        if (op == OP_QKV_ROPE && l == 0) {
            row = tokenIds[t] * dim;
        }
        if (op == OP_W2_RESIDUAL) {
            row = t * hidden;
        }
        if (op == OP_LOGITS) {
            row = lastRow[t] * dim;
        }
        return row;
    }

    /** The RMSNorm weight of column c folded into a matmul pass (1 where the pass has no norm). */
    float normWeight(int op, int l, int c) {
        float g = 1f;
        if (op == OP_QKV_ROPE) {
            g = rmsAtt[l * dim + c];
        }
        if (op == OP_FFN_SWIGLU) {
            g = rmsFfn[l * dim + c];
        }
        if (op == OP_LOGITS) {
            g = rmsFinal[c];
        }
        return g;
    }

    /**
     * A matmul pass; see the class comment for the unit layout. Row pairs: q|k|v pairs (then RoPE and the KV
     * store), wo pairs (+ residual), w1 row h with w3 row h (SwiGLU), w2 pairs (+ residual), classifier pairs
     * (logits of each entry's last row).
     */
    void matmul(int op, int l, int lid, int lsize, int group, int groups) {
        int cols = dim;
        int n = tokens;
        int pairs = 0;
        int src = SRC_X;
        int norm = 1;
        if (op == OP_QKV_ROPE) {
            pairs = (dim + 2 * kvDim) / 2;
            if (l == 0) {
                src = SRC_EMB;
            }
        } else if (op == OP_WO_RESIDUAL) {
            pairs = (dim + 1) / 2;
            src = SRC_XB;
            norm = 0;
        } else if (op == OP_FFN_SWIGLU) {
            pairs = hidden;
        } else if (op == OP_W2_RESIDUAL) {
            pairs = (dim + 1) / 2;
            cols = hidden;
            src = SRC_HB;
            norm = 0;
        } else {
            pairs = (vocab + 1) / 2;
            n = entries;
        }
        int sets = tokenSets(n, lsize);
        int pp = rowPairs(n, lsize);
        int slices = lsize / (sets * pp);
        int perItem = TOKENS_PER_ITEM;
        if (n == 1) {
            perItem = 1;
        }
        int unitTokens = perItem * sets;
        int chunks = (n + unitTokens - 1) / unitTokens;
        int units = (pairs + pp - 1) / pp * chunks;
        int s = lid % slices;
        int cell = lid / slices;
        int ts = cell % sets;
        int pi = cell / sets;
        // Only the first row pair of a unit sums squares; the others read its sums (same token cell).
        int squares = 0;
        if (norm == 1 && pi == 0) {
            squares = 1;
        }
        int slotStep = TOKENS_PER_ITEM / perItem;
        // Only cells that summed squares reduce those slots (a reduction never crosses cells).
        int slotEnd = 2 * TOKENS_PER_ITEM;
        if (squares == 1) {
            slotEnd = SLOTS;
        }
        for (int u = group; u < units; u += groups) {
            int pb = u / chunks;
            int unitStart = (u - pb * chunks) * unitTokens;
            int t0 = unitStart + ts * perItem;
            int p = pb * pp + pi;
            int pl = min(p, pairs - 1);
            int r = 2 * pl;
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
                baseA = (l * hidden + pl) * dim;
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
            if (perItem == 1) {
                int o0 = actRow(op, l, 0);
                float a0 = 0f;
                float b0 = 0f;
                float q0 = 0f;
                for (int c = s; c < cols; c += slices) {
                    float g = normWeight(op, l, c);
                    float v0 = act(src, o0 + c);
                    a0 += weight(kindA, baseA + c) * g * v0;
                    b0 += weight(kindB, baseB + c) * g * v0;
                    q0 += v0 * v0;
                }
                red[lid] = a0;
                red[TOKENS_PER_ITEM * lsize + lid] = b0;
                red[2 * TOKENS_PER_ITEM * lsize + lid] = q0;
            } else {
                // Token rows past the end repeat the last one: same reads, results never written.
                int o0 = actRow(op, l, min(t0, n - 1));
                int o1 = actRow(op, l, min(t0 + 1, n - 1));
                int o2 = actRow(op, l, min(t0 + 2, n - 1));
                int o3 = actRow(op, l, min(t0 + 3, n - 1));
                int o4 = actRow(op, l, min(t0 + 4, n - 1));
                int o5 = actRow(op, l, min(t0 + 5, n - 1));
                int o6 = actRow(op, l, min(t0 + 6, n - 1));
                int o7 = actRow(op, l, min(t0 + 7, n - 1));
                float a0 = 0f;
                float a1 = 0f;
                float a2 = 0f;
                float a3 = 0f;
                float a4 = 0f;
                float a5 = 0f;
                float a6 = 0f;
                float a7 = 0f;
                float b0 = 0f;
                float b1 = 0f;
                float b2 = 0f;
                float b3 = 0f;
                float b4 = 0f;
                float b5 = 0f;
                float b6 = 0f;
                float b7 = 0f;
                float q0 = 0f;
                float q1 = 0f;
                float q2 = 0f;
                float q3 = 0f;
                float q4 = 0f;
                float q5 = 0f;
                float q6 = 0f;
                float q7 = 0f;
                for (int c = s; c < cols; c += slices) {
                    float g = normWeight(op, l, c);
                    float wa = weight(kindA, baseA + c) * g;
                    float wb = weight(kindB, baseB + c) * g;
                    float v0 = act(src, o0 + c);
                    float v1 = act(src, o1 + c);
                    float v2 = act(src, o2 + c);
                    float v3 = act(src, o3 + c);
                    float v4 = act(src, o4 + c);
                    float v5 = act(src, o5 + c);
                    float v6 = act(src, o6 + c);
                    float v7 = act(src, o7 + c);
                    a0 += wa * v0;
                    a1 += wa * v1;
                    a2 += wa * v2;
                    a3 += wa * v3;
                    a4 += wa * v4;
                    a5 += wa * v5;
                    a6 += wa * v6;
                    a7 += wa * v7;
                    b0 += wb * v0;
                    b1 += wb * v1;
                    b2 += wb * v2;
                    b3 += wb * v3;
                    b4 += wb * v4;
                    b5 += wb * v5;
                    b6 += wb * v6;
                    b7 += wb * v7;
                    if (squares == 1) {
                        q0 += v0 * v0;
                        q1 += v1 * v1;
                        q2 += v2 * v2;
                        q3 += v3 * v3;
                        q4 += v4 * v4;
                        q5 += v5 * v5;
                        q6 += v6 * v6;
                        q7 += v7 * v7;
                    }
                }
                red[lid] = a0;
                red[lsize + lid] = a1;
                red[2 * lsize + lid] = a2;
                red[3 * lsize + lid] = a3;
                red[4 * lsize + lid] = a4;
                red[5 * lsize + lid] = a5;
                red[6 * lsize + lid] = a6;
                red[7 * lsize + lid] = a7;
                red[8 * lsize + lid] = b0;
                red[9 * lsize + lid] = b1;
                red[10 * lsize + lid] = b2;
                red[11 * lsize + lid] = b3;
                red[12 * lsize + lid] = b4;
                red[13 * lsize + lid] = b5;
                red[14 * lsize + lid] = b6;
                red[15 * lsize + lid] = b7;
                red[16 * lsize + lid] = q0;
                red[17 * lsize + lid] = q1;
                red[18 * lsize + lid] = q2;
                red[19 * lsize + lid] = q3;
                red[20 * lsize + lid] = q4;
                red[21 * lsize + lid] = q5;
                red[22 * lsize + lid] = q6;
                red[23 * lsize + lid] = q7;
            }
            // Sum each cell's slices: slice s adds slice s + span, halving until slice 0 holds the total.
            localBarrier();
            for (int span = slices / 2; span > 0; span = span / 2) {
                if (s < span) {
                    for (int k = 0; k < slotEnd; k += slotStep) {
                        red[k * lsize + lid] += red[k * lsize + lid + span];
                    }
                }
                localBarrier();
            }
            if (s == 0 && p < pairs) {
                int squaresAt = ts * slices; // slice 0 of the unit's first row pair, same token cell
                for (int k = 0; k < perItem; k++) {
                    int t = t0 + k;
                    if (t < n) {
                        float a = red[k * slotStep * lsize + lid];
                        float b = red[(TOKENS_PER_ITEM + k * slotStep) * lsize + lid];
                        if (norm == 1) {
                            float scale = 1f / sqrt(red[(2 * TOKENS_PER_ITEM + k * slotStep) * lsize + squaresAt] / dim
                                    + eps);
                            a = a * scale;
                            b = b * scale;
                        }
                        matmulEpilogue(op, l, p, t, a, b, hasB);
                    }
                }
            }
            if (op == OP_QKV_ROPE && l == 0 && pb == 0) {
                // Layer 0 read the embedding rows; the first row block of each token chunk also stores them
                // as the residual stream (nothing else reads or writes x in this pass).
                int cells = unitTokens * dim;
                for (int i = lid; i < cells; i += lsize) {
                    int t = unitStart + i / dim;
                    if (t < n) {
                        x[t * dim + i % dim] = emb[tokenIds[t] * dim + i % dim];
                    }
                }
            }
            localBarrier(); // the sums are read before the next unit overwrites them
        }
    }

    /** Writes one token's results of a row pair: a = row A . input, b = row B . input. */
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

    /** red[at] = the largest of red[at .. at + lsize); ends with a barrier. */
    void reduceMax(int at, int lid, int lsize) {
        localBarrier();
        for (int s = lsize / 2; s > 0; s = s / 2) {
            if (lid < s) {
                red[at + lid] = max(red[at + lid], red[at + lid + s]);
            }
            localBarrier();
        }
    }

    /** red[at] = the sum of red[at .. at + lsize); ends with a barrier. */
    void reduceSum(int at, int lid, int lsize) {
        localBarrier();
        for (int s = lsize / 2; s > 0; s = s / 2) {
            if (lid < s) {
                red[at + lid] += red[at + lid + s];
            }
            localBarrier();
        }
    }

    /**
     * Attention in one pass, a work-group per (token, head): the keys the token may attend (positions 0..pos
     * of its own sequence, or only the blocks its block-sparse pattern lists, in the pattern's order) are
     * taken lsize at a time; each work item scores one key, and the group keeps a running maximum, a running
     * sum of exp(score - max) and the weighted sum of values (rescaled whenever the maximum grows), so scores
     * never leave local memory and any context length fits. Output: xb[t][h*hs .. (h+1)*hs).
     * Local layout: [0, lsize) this chunk's weights, [lsize, 2 lsize) reductions, then the output row, then q.
     */
    void attention(int l, int lid, int lsize, int group, int groups) {
        int units = tokens * nHeads;
        int accAt = 2 * lsize;
        int qAt = accAt + headSize;
        for (int u = group; u < units; u += groups) {
            int t = u / nHeads;
            int h = u - t * nHeads;
            int pos = tokenPos[t];
            int e = tokenSeq[t];
            int seqBase = e * maxBlocksPerSeq;
            int kvHead = (h / kvGroup) * headSize;
            int kAt = (l * 2) * BLOCK * kvDim + kvHead;
            int vAt = (l * 2 + 1) * BLOCK * kvDim + kvHead;
            int sparse = 0;
            int listAt = 0;
            int keys = pos + 1;
            if (entryIndptr[e] >= 0) {
                int row = entryIndptr[e] + (l * nHeads + h) * maxBlocksPerSeq + pos / BLOCK;
                sparse = 1;
                listAt = entryIndices[e] + patIndptr[row];
                keys = (patIndptr[row + 1] - patIndptr[row]) * BLOCK;
            }
            for (int d = lid; d < headSize; d += lsize) {
                red[qAt + d] = q[t * dim + h * headSize + d];
                red[accAt + d] = 0f;
            }
            localBarrier();
            float runMax = MASKED;
            float runSum = 0f;
            for (int c0 = 0; c0 < keys; c0 += lsize) {
                int i = c0 + lid;
                int j = i;
                if (sparse == 1 && i < keys) {
                    j = patIndices[listAt + i / BLOCK] * BLOCK + i % BLOCK;
                }
                float score = MASKED;
                int at = -1;
                if (i < keys && j <= pos) {
                    at = blockTable[seqBase + j / BLOCK] * blockFloats + (j % BLOCK) * kvDim;
                    float qk = 0f;
                    for (int d = 0; d < headSize; d++) {
                        qk += red[qAt + d] * kv[at + kAt + d];
                    }
                    score = qk / attScale;
                }
                keyRow[lid] = at;
                red[lsize + lid] = score;
                reduceMax(lsize, lid, lsize);
                float newMax = max(runMax, red[lsize]);
                float rescale = exp(runMax - newMax);
                float prob = 0f;
                if (at >= 0) {
                    prob = exp(score - newMax);
                }
                localBarrier(); // everyone has read the maximum before the sum overwrites it
                red[lid] = prob;
                red[lsize + lid] = prob;
                reduceSum(lsize, lid, lsize);
                runSum = runSum * rescale + red[lsize];
                runMax = newMax;
                int chunk = min(lsize, keys - c0);
                for (int d = lid; d < headSize; d += lsize) {
                    float acc = red[accAt + d] * rescale;
                    for (int m = 0; m < chunk; m++) {
                        int kr = keyRow[m];
                        if (kr >= 0) {
                            acc += red[m] * kv[kr + vAt + d];
                        }
                    }
                    red[accAt + d] = acc;
                }
                localBarrier(); // this chunk's weights and key rows are read before the next overwrites them
            }
            float inv = 0f;
            if (runSum > 0f) {
                inv = 1f / runSum;
            }
            for (int d = lid; d < headSize; d += lsize) {
                xb[t * dim + h * headSize + d] = red[accAt + d] * inv;
            }
            localBarrier(); // the output row is read before the next unit clears it
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
}
