package io.stepstream.gpu;

import com.aparapi.Kernel;

/**
 * The whole forward step of a llama2.c model as ONE Aparapi kernel: every stage is a pass, chosen by
 * {@code passOp[getPassId()]} (with its layer in {@code passLayer}), so a step is a single {@code execute}
 * of {@code 3 + 9 * nLayers} passes. One kernel instance means one OpenCL context, so weights, activations
 * and the paged KV cache are all buffers of this object and never leave the device between passes.
 *
 * <p>Every pass runs on the same 1D range and walks its own index space with a grid-stride loop, so a pass
 * with more work than work items still covers it. Each output element is one work item's left-to-right sum,
 * the same order as the CPU kernels, which keeps results within float rounding of the CPU forward.
 *
 * <p>Layouts: activations are row-major per token; weights of all layers of one kind are concatenated
 * (layer l of a [rows][cols] matrix starts at l*rows*cols); the KV pool is the engine's block layout
 * ({@code [block][layer][k|v][position in block][kvDim]}, 16 positions a block), addressed through each
 * sequence's block table. Aparapi translates {@link #run()} and the methods it calls to OpenCL C: only
 * primitive fields and arrays, no objects, no array parameters.
 */
public final class Llama2Kernel extends Kernel {
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
    int sharedClassifier;
    float eps;
    float attScale;

    // This step's sizes (kernel arguments, sent with every execute).
    int tokens;
    int entries;
    int maxLen;

    // The pass schedule.
    int[] passOp;
    int[] passLayer;

    // Weights, resident.
    float[] emb;
    float[] rmsAtt;
    float[] wq;
    float[] wk;
    float[] wv;
    float[] wo;
    float[] rmsFfn;
    float[] w1;
    float[] w2;
    float[] w3;
    float[] rmsFinal;
    float[] cls;
    float[] ropeCos;
    float[] ropeSin;

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

    // Activations, resident scratch.
    float[] x;
    float[] xb;
    float[] q;
    float[] hb;
    float[] att;
    float[] logits;

    @Override
    public void run() {
        int pass = getPassId();
        int op = passOp[pass];
        int l = passLayer[pass];
        int gid = getGlobalId(0);
        int gsize = getGlobalSize(0);
        if (op == OP_EMBED) {
            embed(gid, gsize);
        } else if (op == OP_RMSNORM_ATT || op == OP_RMSNORM_FFN || op == OP_FINAL_NORM) {
            rmsnorm(op, l, gid, gsize);
        } else if (op == OP_QKV_ROPE) {
            qkvRope(l, gid, gsize);
        } else if (op == OP_SCORES) {
            scores(l, gid, gsize);
        } else if (op == OP_SOFTMAX) {
            softmax(gid, gsize);
        } else if (op == OP_ATTN_OUT) {
            attentionOut(l, gid, gsize);
        } else if (op == OP_WO_RESIDUAL) {
            woResidual(l, gid, gsize);
        } else if (op == OP_FFN_SWIGLU) {
            ffnSwiglu(l, gid, gsize);
        } else if (op == OP_W2_RESIDUAL) {
            w2Residual(l, gid, gsize);
        } else if (op == OP_LOGITS) {
            classify(gid, gsize);
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

    /** xb[row] = rmsnorm(x[source row]) with the op's weight; the final norm reads each entry's last row. */
    void rmsnorm(int op, int l, int gid, int gsize) {
        int rows = tokens;
        if (op == OP_FINAL_NORM) {
            rows = entries;
        }
        for (int r = gid; r < rows; r += gsize) {
            int src = r * dim;
            if (op == OP_FINAL_NORM) {
                src = lastRow[r] * dim;
            }
            float ss = 0f;
            for (int j = 0; j < dim; j++) {
                float v = x[src + j];
                ss += v * v;
            }
            ss /= dim;
            ss += eps;
            ss = 1f / sqrt(ss);
            for (int j = 0; j < dim; j++) {
                float weight = rmsFinal[j];
                if (op == OP_RMSNORM_ATT) {
                    weight = rmsAtt[l * dim + j];
                } else if (op == OP_RMSNORM_FFN) {
                    weight = rmsFfn[l * dim + j];
                }
                xb[r * dim + j] = weight * (ss * x[src + j]);
            }
        }
    }

    /**
     * One work item per pair of output rows of q, k or v: two dot products, then RoPE on the pair for q and
     * k (llama2.c's interleaved rotation), then k and v go straight into the sequence's KV block.
     */
    void qkvRope(int l, int gid, int gsize) {
        int qPairs = dim / 2;
        int kvPairs = kvDim / 2;
        int pairsPerToken = qPairs + 2 * kvPairs;
        int n = tokens * pairsPerToken;
        int halfHead = headSize / 2;
        for (int i = gid; i < n; i += gsize) {
            int t = i / pairsPerToken;
            int p = i - t * pairsPerToken;
            int xo = t * dim;
            int pos = tokenPos[t];
            float a = 0f;
            float b = 0f;
            if (p < qPairs) {
                int r = 2 * p;
                int w0 = (l * dim + r) * dim;
                for (int c = 0; c < dim; c++) {
                    a += wq[w0 + c] * xb[xo + c];
                }
                for (int c = 0; c < dim; c++) {
                    b += wq[w0 + dim + c] * xb[xo + c];
                }
                int rope = pos * halfHead + (r % headSize) / 2;
                float fcr = ropeCos[rope];
                float fci = ropeSin[rope];
                q[xo + r] = a * fcr - b * fci;
                q[xo + r + 1] = a * fci + b * fcr;
            } else {
                int block = blockTable[tokenSeq[t] * maxBlocksPerSeq + pos / BLOCK];
                if (p < qPairs + kvPairs) {
                    int r = 2 * (p - qPairs);
                    int w0 = (l * kvDim + r) * dim;
                    for (int c = 0; c < dim; c++) {
                        a += wk[w0 + c] * xb[xo + c];
                    }
                    for (int c = 0; c < dim; c++) {
                        b += wk[w0 + dim + c] * xb[xo + c];
                    }
                    int rope = pos * halfHead + (r % headSize) / 2;
                    float fcr = ropeCos[rope];
                    float fci = ropeSin[rope];
                    int ko = block * blockFloats + ((l * 2) * BLOCK + pos % BLOCK) * kvDim + r;
                    kv[ko] = a * fcr - b * fci;
                    kv[ko + 1] = a * fci + b * fcr;
                } else {
                    int r = 2 * (p - qPairs - kvPairs);
                    int w0 = (l * kvDim + r) * dim;
                    for (int c = 0; c < dim; c++) {
                        a += wv[w0 + c] * xb[xo + c];
                    }
                    for (int c = 0; c < dim; c++) {
                        b += wv[w0 + dim + c] * xb[xo + c];
                    }
                    int vo = block * blockFloats + ((l * 2 + 1) * BLOCK + pos % BLOCK) * kvDim + r;
                    kv[vo] = a;
                    kv[vo + 1] = b;
                }
            }
        }
    }

    /**
     * att[t][h][j] = q[t,h] . k[j, kv head of h] / sqrt(headSize) for every cached position j <= pos(t); under
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
            if (j <= pos) {
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

    /** In-place softmax of each (token, head) row of att over positions 0..pos(t). */
    void softmax(int gid, int gsize) {
        int n = tokens * nHeads;
        for (int th = gid; th < n; th += gsize) {
            int len = tokenPos[th / nHeads] + 1;
            int o = th * ctx;
            float m = att[o];
            for (int j = 1; j < len; j++) {
                m = max(m, att[o + j]);
            }
            float sum = 0f;
            for (int j = 0; j < len; j++) {
                float e = exp(att[o + j] - m);
                att[o + j] = e;
                sum += e;
            }
            for (int j = 0; j < len; j++) {
                att[o + j] = att[o + j] / sum;
            }
        }
    }

    /**
     * xb[t][h*hs + d] = sum over j <= pos(t) of att[t][h][j] * v[j][kv head of h][d]; under a block-sparse
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
            float acc = 0f;
            if (entryIndptr[e] < 0) {
                for (int j = 0; j <= pos; j++) {
                    int block = blockTable[seqBase + j / BLOCK];
                    acc += att[ao + j] * kv[block * blockFloats + vOffset + (j % BLOCK) * kvDim];
                }
            } else {
                int row = entryIndptr[e] + (l * nHeads + h) * maxBlocksPerSeq + pos / BLOCK;
                int ib = entryIndices[e];
                for (int m = patIndptr[row]; m < patIndptr[row + 1]; m++) {
                    int kb = patIndices[ib + m];
                    int block = blockTable[seqBase + kb];
                    int last = min(kb * BLOCK + BLOCK - 1, pos);
                    for (int j = kb * BLOCK; j <= last; j++) {
                        acc += att[ao + j] * kv[block * blockFloats + vOffset + (j % BLOCK) * kvDim];
                    }
                }
            }
            xb[i] = acc;
        }
    }

    /** x[t][r] += wo[r] . xb[t]: the attention output projection and its residual. */
    void woResidual(int l, int gid, int gsize) {
        int n = tokens * dim;
        for (int i = gid; i < n; i += gsize) {
            int t = i / dim;
            int w0 = (l * dim + (i - t * dim)) * dim;
            int xo = t * dim;
            float s = 0f;
            for (int c = 0; c < dim; c++) {
                s += wo[w0 + c] * xb[xo + c];
            }
            x[i] += s;
        }
    }

    /** hb[t][h] = silu(w1[h] . xb[t]) * (w3[h] . xb[t]). */
    void ffnSwiglu(int l, int gid, int gsize) {
        int n = tokens * hidden;
        for (int i = gid; i < n; i += gsize) {
            int t = i / hidden;
            int w0 = (l * hidden + (i - t * hidden)) * dim;
            int xo = t * dim;
            float a = 0f;
            for (int c = 0; c < dim; c++) {
                a += w1[w0 + c] * xb[xo + c];
            }
            float b = 0f;
            for (int c = 0; c < dim; c++) {
                b += w3[w0 + c] * xb[xo + c];
            }
            float v = a * (1f / (1f + exp(-a)));
            hb[i] = v * b;
        }
    }

    /** x[t][r] += w2[r] . hb[t]: the FFN down projection and its residual. */
    void w2Residual(int l, int gid, int gsize) {
        int n = tokens * dim;
        for (int i = gid; i < n; i += gsize) {
            int t = i / dim;
            int w0 = (l * dim + (i - t * dim)) * hidden;
            int ho = t * hidden;
            float s = 0f;
            for (int c = 0; c < hidden; c++) {
                s += w2[w0 + c] * hb[ho + c];
            }
            x[i] += s;
        }
    }

    /** logits[e][v] = classifier[v] . xb[e] (xb holds each entry's final-normed last row). */
    void classify(int gid, int gsize) {
        int n = entries * vocab;
        for (int i = gid; i < n; i += gsize) {
            int e = i / vocab;
            int w0 = (i - e * vocab) * dim;
            int xo = e * dim;
            float s = 0f;
            if (sharedClassifier == 1) {
                for (int c = 0; c < dim; c++) {
                    s += emb[w0 + c] * xb[xo + c];
                }
            } else {
                for (int c = 0; c < dim; c++) {
                    s += cls[w0 + c] * xb[xo + c];
                }
            }
            logits[i] = s;
        }
    }
}
