// The non-matmul passes of a llama2 step as small hand-written kernels (OpenCL C 1.2), with the same arithmetic
// as Llama2Kernel's passes of the same name, so that the direct dispatch with hand matmuls enqueues no Aparapi
// pass: each of these takes a dozen arguments where the Aparapi step kernel takes ~80, and a driver's enqueue
// cost grows with the buffer arguments it has to track.
//
// Layouts are Llama2Kernel's: activations row-major per token; KV pool [block][layer][k|v][position][kvDim]
// with 16 positions a block, addressed through each entry's block table; att rows of ctx floats per
// (token, head); block-sparse patterns as BSR rows per (layer, head, query block), -1 = dense.

#ifndef NORM_WG
#define NORM_WG 256
#endif
#define KV_BLOCK 16
#define MASKED (-1.0e30f)

/** x[t] = embedding row of token t. One work item per element. */
__kernel void embed(int count, int dim, __global const int *tokenIds, __global const float *emb, __global float *x) {
    int i = get_global_id(0);
    if (i < count) {
        int t = i / dim;
        x[i] = emb[tokenIds[t] * dim + (i - t * dim)];
    }
}

/** Tree sum of red[0 .. NORM_WG) into red[0]; starts and ends with a barrier. */
inline void reduce_sum(__local float *red, int lid) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = NORM_WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/**
 * xb[r] = weight * rmsnorm(x[source row]), a work-group per row; the source row is r, or logitRow[r] for the
 * final norm (useLastRow). weight starts layer * dim floats into its buffer.
 */
__kernel __attribute__((reqd_work_group_size(NORM_WG, 1, 1)))
void rmsnorm(int rows, int dim, float eps, int layer, int useLastRow, __global const float *x,
             __global const int *logitRow, __global const float *weight, __global float *xb) {
    __local float red[NORM_WG];
    int r = get_group_id(0);
    int lid = get_local_id(0);
    // The host enqueues exactly `rows` groups: no early return before the barriers (PoCL needs every work item
    // to reach them).
    int src = (useLastRow ? logitRow[r] : r) * dim;
    float ss = 0.0f;
    for (int j = lid; j < dim; j += NORM_WG) {
        float v = x[src + j];
        ss += v * v;
    }
    red[lid] = ss;
    reduce_sum(red, lid);
    float scale = 1.0f / sqrt(red[0] / dim + eps);
    __global const float *w = weight + layer * dim;
    for (int j = lid; j < dim; j += NORM_WG) {
        xb[r * dim + j] = w[j] * (scale * x[src + j]);
    }
}

/** The last key position row t attends to: its own position (causal), or its canvas's last (entryLen > 0). */
inline int last_key(int t, __global const int *tokenPos, __global const int *tokenSeq,
                    __global const int *entryLen) {
    int len = entryLen[tokenSeq[t]];
    return len > 0 ? len - 1 : tokenPos[t];
}

/** Whether key block kb is in the pattern row of (entry e, layer, head h, query position pos); dense: always. */
inline int allowed(int e, int layer, int h, int pos, int kb, int nHeads, int maxBlocksPerSeq,
                   __global const int *entryIndptr, __global const int *entryIndices,
                   __global const int *patIndptr, __global const int *patIndices) {
    if (entryIndptr[e] < 0) {
        return 1;
    }
    int row = entryIndptr[e] + (layer * nHeads + h) * maxBlocksPerSeq + pos / KV_BLOCK;
    int ib = entryIndices[e];
    int found = 0;
    for (int m = patIndptr[row]; m < patIndptr[row + 1]; m++) {
        if (patIndices[ib + m] == kb) {
            found = 1;
        }
    }
    return found;
}

/**
 * att[t][h][j] = q[t,h] . k[j, kv head of h] / attScale for positions j <= last_key(t); keys outside a
 * block-sparse pattern (whose row is the query position's block) get MASKED. One work item per (token, head,
 * j < maxLen).
 */
__kernel void scores(int tokens, int nHeads, int maxLen, int ctx, int headSize, int dim, int kvDim, int kvGroup,
                     int maxBlocksPerSeq, int blockFloats, int layer, float attScale,
                     __global const int *tokenPos, __global const int *tokenSeq, __global const int *blockTable,
                     __global const int *entryIndptr, __global const int *entryIndices,
                     __global const int *patIndptr, __global const int *patIndices,
                     __global const float *q, __global const float *kv, __global float *att,
                     __global const int *entryLen) {
    int i = get_global_id(0);
    if (i >= tokens * nHeads * maxLen) {
        return;
    }
    int th = i / maxLen;
    int j = i - th * maxLen;
    int t = th / nHeads;
    int h = th - t * nHeads;
    int pos = tokenPos[t];
    if (j > last_key(t, tokenPos, tokenSeq, entryLen)) {
        return;
    }
    int e = tokenSeq[t];
    if (allowed(e, layer, h, pos, j / KV_BLOCK, nHeads, maxBlocksPerSeq, entryIndptr, entryIndices, patIndptr,
                patIndices)) {
        int block = blockTable[e * maxBlocksPerSeq + j / KV_BLOCK];
        int ko = block * blockFloats + ((layer * 2) * KV_BLOCK + j % KV_BLOCK) * kvDim + (h / kvGroup) * headSize;
        int qo = t * dim + h * headSize;
        float s = 0.0f;
        for (int d = 0; d < headSize; d++) {
            s += q[qo + d] * kv[ko + d];
        }
        att[th * ctx + j] = s / attScale;
    } else {
        att[th * ctx + j] = MASKED;
    }
}

/** In-place softmax of each (token, head) row of att over positions 0..last_key(t), a work-group per row. */
__kernel __attribute__((reqd_work_group_size(NORM_WG, 1, 1)))
void softmax(int rows, int nHeads, int ctx, __global const int *tokenPos, __global float *att,
             __global const int *tokenSeq, __global const int *entryLen) {
    __local float red[NORM_WG];
    int th = get_group_id(0);
    int lid = get_local_id(0);
    int len = last_key(th / nHeads, tokenPos, tokenSeq, entryLen) + 1;
    __global float *a = att + th * ctx;
    float m = a[0];
    for (int j = lid; j < len; j += NORM_WG) {
        m = max(m, a[j]);
    }
    red[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = NORM_WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    m = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float sum = 0.0f;
    for (int j = lid; j < len; j += NORM_WG) {
        float e = exp(a[j] - m);
        a[j] = e;
        sum += e;
    }
    red[lid] = sum;
    reduce_sum(red, lid);
    sum = red[0];
    for (int j = lid; j < len; j += NORM_WG) {
        a[j] = a[j] / sum;
    }
}

/**
 * xb[t][h*hs + d] = sum over j <= last_key(t) of att[t][h][j] * v[j][kv head of h][d]; under a block-sparse pattern
 * only the listed key blocks, in the pattern's order. One work item per output element.
 */
__kernel void attn_out(int tokens, int dim, int nHeads, int ctx, int headSize, int kvDim, int kvGroup,
                       int maxBlocksPerSeq, int blockFloats, int layer,
                       __global const int *tokenPos, __global const int *tokenSeq, __global const int *blockTable,
                       __global const int *entryIndptr, __global const int *entryIndices,
                       __global const int *patIndptr, __global const int *patIndices,
                       __global const float *att, __global const float *kv, __global float *xb,
                       __global const int *entryLen) {
    int i = get_global_id(0);
    if (i >= tokens * dim) {
        return;
    }
    int t = i / dim;
    int hd = i - t * dim;
    int h = hd / headSize;
    int vOffset = ((layer * 2 + 1) * KV_BLOCK) * kvDim + (h / kvGroup) * headSize + (hd - h * headSize);
    int e = tokenSeq[t];
    int seqBase = e * maxBlocksPerSeq;
    int ao = (t * nHeads + h) * ctx;
    int pos = tokenPos[t];
    int last = last_key(t, tokenPos, tokenSeq, entryLen);
    float acc = 0.0f;
    if (entryIndptr[e] < 0) {
        for (int j = 0; j <= last; j++) {
            int block = blockTable[seqBase + j / KV_BLOCK];
            acc += att[ao + j] * kv[block * blockFloats + vOffset + (j % KV_BLOCK) * kvDim];
        }
    } else {
        int row = entryIndptr[e] + (layer * nHeads + h) * maxBlocksPerSeq + pos / KV_BLOCK;
        int ib = entryIndices[e];
        for (int m = patIndptr[row]; m < patIndptr[row + 1]; m++) {
            int kb = patIndices[ib + m];
            int block = blockTable[seqBase + kb];
            int blockLast = min(kb * KV_BLOCK + KV_BLOCK - 1, last);
            for (int j = kb * KV_BLOCK; j <= blockLast; j++) {
                acc += att[ao + j] * kv[block * blockFloats + vOffset + (j % KV_BLOCK) * kvDim];
            }
        }
    }
    xb[i] = acc;
}
