// The non-matmul passes of a llama2 step as small hand-written kernels (OpenCL C 1.2), with the same arithmetic
// as Llama2Kernel's passes of the same name, so that the direct dispatch with hand matmuls enqueues no Aparapi
// pass: each of these takes a dozen arguments where the Aparapi step kernel takes ~80, and a driver's enqueue
// cost grows with the buffer arguments it has to track.
//
// Layouts are Llama2Kernel's: activations row-major per token; KV pool [block][layer][k|v][position][kvDim]
// with 16 positions a block, addressed through each entry's block table (64-bit offsets: a device-only pool may
// hold more than 2^31 elements); KV elements are floats or, with -DKV_F16, half bits read through kv.cl's macros
// (prepended to this file); att rows of ctx floats per (token, head); block-sparse patterns as BSR rows per (layer, head, query block), -1 = dense.

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
                     __global const float *q, __global const KV_T *kv, __global float *att,
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
        long ko = (long) block * blockFloats + ((layer * 2) * KV_BLOCK + j % KV_BLOCK) * kvDim + (h / kvGroup) * headSize;
        int qo = t * dim + h * headSize;
        float s = 0.0f;
        for (int d = 0; d < headSize; d++) {
            s += q[qo + d] * KV_LOAD1(kv, ko + d);
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
                       __global const float *att, __global const KV_T *kv, __global float *xb,
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
            acc += att[ao + j] * KV_LOAD1(kv, (long) block * blockFloats + vOffset + (j % KV_BLOCK) * kvDim);
        }
    } else {
        int row = entryIndptr[e] + (layer * nHeads + h) * maxBlocksPerSeq + pos / KV_BLOCK;
        int ib = entryIndices[e];
        for (int m = patIndptr[row]; m < patIndptr[row + 1]; m++) {
            int kb = patIndices[ib + m];
            int block = blockTable[seqBase + kb];
            int blockLast = min(kb * KV_BLOCK + KV_BLOCK - 1, last);
            for (int j = kb * KV_BLOCK; j <= blockLast; j++) {
                acc += att[ao + j] * KV_LOAD1(kv, (long) block * blockFloats + vOffset + (j % KV_BLOCK) * kvDim);
            }
        }
    }
    xb[i] = acc;
}

// ---------------------------------------------------------------------------------------------------------------
// attn_tiled: scores + softmax + weighted sum of one layer in one kernel, for steps whose entries have many query
// rows (diffusion canvases, chunked prefill). Built with -DHEAD_SIZE -DKV_GROUP -DATT_TQ -DATT_LANES -DATT_TK
// (HandStep); HEAD_SIZE a multiple of 4, ATT_TK a multiple of ATT_LANES.
//
// A work-group per (entry, KV head, tile of ATT_TQ consecutive rows of the entry): its ATT_ROWS = ATT_TQ * KV_GROUP
// query rows (every query head that shares the KV head, GQA) each get ATT_LANES work items. The entry's keys and
// values stream through local memory ATT_TK positions at a time (float4 loads, consecutive items reading
// consecutive floats of one position, through the block table); each lane scores ATT_TK / ATT_LANES of them with
// its row's q held in registers, and owns every ATT_LANES-th float4 of the row's output. The softmax is online:
// a running maximum per row (the same in all lanes of the row: each takes the max over the row's lane maxima) and
// a running sum per lane (rescaled with the same factors, so the lanes' sums add up exactly at the end). Which
// keys a row sees is last_key's rule, as in `scores`: positions 0..tokenPos (causal) or 0..entryLen-1 (canvas).
// The scale is the passes' (dot / attScale), in float32.
//
// Split over keys (built with -DATT_SPLIT as well, for steps with few rows an entry: decodes): each (entry, KV
// head, row tile) is also split into `chunks` runs of `chunkKeys` positions (a multiple of ATT_TK), a group each,
// so that one sequence's keys are walked by many groups at once. With chunks > 1 a group writes, per row, its
// chunk's running max m, sum l and unnormalized output acc[HEAD_SIZE] to `part` and attn_combine merges the chunks
// in chunk order; with chunks == 1 it writes xb itself, as the unsplit kernel does.
// ---------------------------------------------------------------------------------------------------------------
#ifdef HEAD_SIZE
#define HS4 (HEAD_SIZE / 4)
#define ATT_ROWS (ATT_TQ * KV_GROUP)
#define ATT_WG (ATT_ROWS * ATT_LANES)
#define KEYS_PER_LANE (ATT_TK / ATT_LANES)
#define CHUNKS_PER_LANE ((HS4 + ATT_LANES - 1) / ATT_LANES)
// Row strides in local memory, one slot longer than the row: the lanes of a row read ATT_LANES consecutive key
// rows (scores) and rows of one tile sit ATT_TK floats apart (probabilities); unpadded they would share banks.
#define KS_STRIDE (HS4 + 1)
#define PS_STRIDE (ATT_TK + 1)
// Float4s of a key row an item loads at once: two (one 16-byte load of 8 halves) from an f16 pool whose head has an
// even number of float4s, else one (an f16 pool's 8-byte loads halved the bytes each load moves; H200, 7B: slower).
#if defined(KV_F16) && HS4 % 2 == 0
#define KV_W 2
#else
#define KV_W 1
#endif
#define ROW_LOADS (HS4 / KV_W)
// What an item holds of the next tile: floats, or an f16 pool's raw words (8 halves a uint4, half the registers),
// widened when staged in local memory.
#if KV_W == 2
#define KV_TILE_T uint4
#else
#define KV_TILE_T float4
#endif
#define TILE_LOADS ((ATT_TK * ROW_LOADS + ATT_WG - 1) / ATT_WG)
#if HEAD_SIZE % 4 != 0 || ATT_TK % ATT_LANES != 0
#error "attn_tiled needs HEAD_SIZE % 4 == 0 and ATT_TK % ATT_LANES == 0"
#endif

/** The first of rows [0, tokens) whose entry is >= e (an entry's rows are one run, entries ascend). */
inline int first_row(int e, int tokens, __global const int *tokenSeq) {
    int lo = 0;
    int hi = tokens;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (tokenSeq[mid] < e) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

#ifdef ATT_SPLIT
/**
 * Whether this group is the last of a (entry, KV head, tile)'s `chunks` groups to finish: every item fences its
 * global writes, the group counts itself in (flag: the group's shared answer), and the last one sees the others'
 * writes after its own fence. The caller resets the counter. Every item of the group must call it (barriers).
 */
inline int last_chunk_group(__global int *counter, int chunks, __local int *flag, int lid) {
    mem_fence(CLK_GLOBAL_MEM_FENCE);
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        *flag = atomic_inc(counter) == chunks - 1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    return *flag;
}

/**
 * Output float4 c of row th = t * nHeads + h from its chunks' (m, l, acc) in `part` (layout: attn_tiled's split
 * build): M = max m_s, sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s, summed in chunk order (the same result
 * every run). Every row has key 0 in chunk 0, so M is finite and l > 0. attn_combine and attn_tiled's last chunk
 * group both merge through it, so their results are the same bits; volatile because the latter reads parts other
 * groups wrote in the same launch.
 */
inline float4 merge_chunks(volatile __global const float *part, int tokens, int nHeads, int chunks, int th, int c) {
    int first = th * chunks;
    volatile __global const float *ml = part + tokens * nHeads * chunks * HEAD_SIZE + 2 * first;
    float m = MASKED;
    for (int s = 0; s < chunks; s++) {
        m = max(m, ml[2 * s]);
    }
    float l = 0.0f;
    float4 out = (float4) (0.0f);
    for (int s = 0; s < chunks; s++) {
        float w = exp(ml[2 * s] - m);
        l += w * ml[2 * s + 1];
        volatile __global const float *a = part + (first + s) * HEAD_SIZE + 4 * c;
        out += w * (float4) (a[0], a[1], a[2], a[3]);
    }
    return out / l;
}
#endif

/**
 * This item's float4s of the keys and values at positions k0 .. k0+ATT_TK-1 (zeros past keysLast, whose block
 * may not exist): item lid takes load lid + u * ATT_WG of the tile (KV_W float4s each), consecutive items
 * consecutive floats of one position (coalesced), through the entry's block table.
 */
inline void load_kv_tile(int k0, int keysLast, int lid, int tableBase, int kOffset, int vOffset, int kvDim,
                         int blockFloats, __global const int *blockTable, __global const KV_T *kv,
                         KV_TILE_T *nextK, KV_TILE_T *nextV) {
    #pragma unroll
    for (int u = 0; u < TILE_LOADS; u++) {
        int i = lid + u * ATT_WG;
        int jj = i / ROW_LOADS;
        int j = k0 + jj;
        KV_TILE_T kval = (KV_TILE_T) (0);
        KV_TILE_T vval = (KV_TILE_T) (0);
        if (i < ATT_TK * ROW_LOADS && j <= keysLast) {
            long base = (long) blockTable[tableBase + j / KV_BLOCK] * blockFloats + (j % KV_BLOCK) * kvDim
                    + 4 * KV_W * (i - jj * ROW_LOADS);
#if KV_W == 2
            kval = KV_LOAD8_RAW(kv, base + kOffset);
            vval = KV_LOAD8_RAW(kv, base + vOffset);
#else
            kval = KV_LOAD4(kv, base + kOffset);
            vval = KV_LOAD4(kv, base + vOffset);
#endif
        }
        nextK[u] = kval;
        nextV[u] = vval;
    }
}

/**
 * xb[t][h*hs ..] = softmax over the keys row t sees of (q[t,h] . k[j] / attScale), weighting v[j]; dense entries
 * only (no block-sparse pattern). Groups: entries x KV heads x tiles, tiles = ceil(most rows of an entry / ATT_TQ);
 * a group past its entry's rows does nothing.
 */
__kernel __attribute__((reqd_work_group_size(ATT_WG, 1, 1)))
void attn_tiled(int tokens, int tiles, int dim, int kvDim, int maxBlocksPerSeq, int blockFloats, int layer,
                float attScale, __global const int *tokenPos, __global const int *tokenSeq,
                __global const int *blockTable, __global const int *entryLen, __global const float *q,
                __global const KV_T *kv, __global float *xb
#ifdef ATT_SPLIT
                , int chunks, int chunkKeys, __global float *part
#ifdef ATT_FUSED_COMBINE
                , __global int *counters
#endif
#endif
                ) {
    __local float4 ks[ATT_TK * KS_STRIDE];
    __local float4 vs[ATT_TK * HS4];
    __local float ps[ATT_ROWS * PS_STRIDE];
    __local float laneVals[ATT_WG];
    __local int groupLast;
#if defined(ATT_SPLIT) && defined(ATT_FUSED_COMBINE)
    __local int lastChunk;
#endif

    int lid = get_local_id(0);
    int r = lid / ATT_LANES;
    int lane = lid - r * ATT_LANES;
    int group = get_group_id(0);
#ifdef ATT_SPLIT
    // Groups: (entry, KV head, tile, chunk), the chunk fastest.
    int chunk = group % chunks;
    group /= chunks;
#else
    const int chunks = 1;
    const int chunk = 0;
    const int chunkKeys = 0;
#endif
    int tile = group % tiles;
    int rest = group / tiles;
    int nKv = kvDim / HEAD_SIZE;
    int kvh = rest % nKv;
    int e = rest / nKv;
    int first = first_row(e, tokens, tokenSeq);
    int count = first_row(e + 1, tokens, tokenSeq) - first;
    int tq = r / KV_GROUP;
    int h = kvh * KV_GROUP + (r - tq * KV_GROUP);
    int rowInEntry = tile * ATT_TQ + tq;
    int live = rowInEntry < count;
    int t = first + rowInEntry;
    int len = entryLen[e];
    int last = live ? (len > 0 ? len - 1 : tokenPos[t]) : -1;
    // The last key any row of the tile sees bounds the key loop (the same trip count for every item: the loop
    // has barriers). A tile past its entry's rows gets -1 and runs no iteration.
    if (lid == 0) {
        int m = -1;
        for (int i = 0; i < ATT_TQ && tile * ATT_TQ + i < count; i++) {
            m = max(m, len > 0 ? len - 1 : tokenPos[first + tile * ATT_TQ + i]);
        }
        groupLast = m;
    }

    float4 qr[HS4];
    int qo = t * dim + h * HEAD_SIZE;
    #pragma unroll
    for (int c = 0; c < HS4; c++) {
        qr[c] = live ? vload4(c, q + qo) : (float4) (0.0f);
    }
    float4 acc[CHUNKS_PER_LANE];
    #pragma unroll
    for (int i = 0; i < CHUNKS_PER_LANE; i++) {
        acc[i] = (float4) (0.0f);
    }
    float rowMax = MASKED;
    float laneSum = 0.0f;
    int tableBase = e * maxBlocksPerSeq;
    int kOffset = (layer * 2) * KV_BLOCK * kvDim + kvh * HEAD_SIZE;
    int vOffset = kOffset + KV_BLOCK * kvDim;
    barrier(CLK_LOCAL_MEM_FENCE);
    // This group's keys: [keysFirst, keysLast] (all of the tile's keys unless split; a chunk past the tile's last
    // key runs no iteration). A row's own keys stop at min(last, keysLast).
    int keysFirst = chunk * chunkKeys;
    int keysLast = chunks == 1 ? groupLast : min(groupLast, keysFirst + chunkKeys - 1);
    int rowLast = min(last, keysLast);

    // Each item moves TILE_LOADS float4s of keys and of values a tile. The next tile's are loaded into registers
    // while the current one is scored and summed, so the global latency hides behind that work.
    KV_TILE_T nextK[TILE_LOADS];
    KV_TILE_T nextV[TILE_LOADS];
    load_kv_tile(keysFirst, keysLast, lid, tableBase, kOffset, vOffset, kvDim, blockFloats, blockTable, kv, nextK,
                 nextV);
    for (int k0 = keysFirst; k0 <= keysLast; k0 += ATT_TK) {
        #pragma unroll
        for (int u = 0; u < TILE_LOADS; u++) {
            int i = lid + u * ATT_WG;
            if (i < ATT_TK * ROW_LOADS) {
                int jj = i / ROW_LOADS;
                int c = (i - jj * ROW_LOADS) * KV_W;
#if KV_W == 2
                ks[jj * KS_STRIDE + c] = kv_halves4(nextK[u].xy);
                ks[jj * KS_STRIDE + c + 1] = kv_halves4(nextK[u].zw);
                vs[jj * HS4 + c] = kv_halves4(nextV[u].xy);
                vs[jj * HS4 + c + 1] = kv_halves4(nextV[u].zw);
#else
                ks[jj * KS_STRIDE + c] = nextK[u];
                vs[jj * HS4 + c] = nextV[u];
#endif
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (k0 + ATT_TK <= keysLast) {
            load_kv_tile(k0 + ATT_TK, keysLast, lid, tableBase, kOffset, vOffset, kvDim, blockFloats, blockTable, kv,
                         nextK, nextV);
        }

        // This lane's keys lane, lane + ATT_LANES, ...: scores in registers and their maximum.
        float s[KEYS_PER_LANE];
        float tileMax = MASKED;
        #pragma unroll
        for (int m = 0; m < KEYS_PER_LANE; m++) {
            int jj = lane + m * ATT_LANES;
            float4 d = (float4) (0.0f);
            #pragma unroll
            for (int c = 0; c < HS4; c++) {
                d += qr[c] * ks[jj * KS_STRIDE + c];
            }
            float score = k0 + jj <= rowLast ? (d.x + d.y + d.z + d.w) / attScale : MASKED;
            s[m] = score;
            tileMax = max(tileMax, score);
        }
        laneVals[lid] = tileMax;
        barrier(CLK_LOCAL_MEM_FENCE);

        float newMax = rowMax;
        for (int i = 0; i < ATT_LANES; i++) {
            newMax = max(newMax, laneVals[r * ATT_LANES + i]);
        }
        float rescale = exp(rowMax - newMax);
        rowMax = newMax;
        laneSum *= rescale;
        #pragma unroll
        for (int i = 0; i < CHUNKS_PER_LANE; i++) {
            acc[i] *= rescale;
        }
        #pragma unroll
        for (int m = 0; m < KEYS_PER_LANE; m++) {
            int jj = lane + m * ATT_LANES;
            float p = k0 + jj <= rowLast ? exp(s[m] - newMax) : 0.0f;
            ps[r * PS_STRIDE + jj] = p;
            laneSum += p;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        // Weighted values: every key of the tile (masked ones weigh 0) into this lane's float4s of the row.
        int keys = min(ATT_TK, keysLast - k0 + 1);
        for (int jj = 0; jj < keys; jj++) {
            float p = ps[r * PS_STRIDE + jj];
            #pragma unroll
            for (int i = 0; i < CHUNKS_PER_LANE; i++) {
                int c = lane + i * ATT_LANES;
                if (c < HS4) {
                    acc[i] += p * vs[jj * HS4 + c];
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    laneVals[lid] = laneSum;
    barrier(CLK_LOCAL_MEM_FENCE);
    int toPart = 0;
    if (live) {
        float sum = 0.0f;
        for (int i = 0; i < ATT_LANES; i++) {
            sum += laneVals[r * ATT_LANES + i];
        }
#ifdef ATT_SPLIT
        toPart = chunks > 1;
        if (toPart) {
            // This chunk's (m, l, acc) of row (t, h): acc at ((t * nHeads + h) * chunks + chunk) * HEAD_SIZE, then
            // (m, l) pairs after all the acc rows. A row that saw no key of the chunk leaves (MASKED, 0, 0).
            int nHeads = dim / HEAD_SIZE;
            int slot = (t * nHeads + h) * chunks + chunk;
            #pragma unroll
            for (int i = 0; i < CHUNKS_PER_LANE; i++) {
                int c = lane + i * ATT_LANES;
                if (c < HS4) {
                    vstore4(acc[i], c, part + slot * HEAD_SIZE);
                }
            }
            if (lane == 0) {
                int ml = tokens * nHeads * chunks * HEAD_SIZE + 2 * slot;
                part[ml] = rowMax;
                part[ml + 1] = sum;
            }
        }
#endif
        if (!toPart) {
            float inv = 1.0f / sum;
            #pragma unroll
            for (int i = 0; i < CHUNKS_PER_LANE; i++) {
                int c = lane + i * ATT_LANES;
                if (c < HS4) {
                    vstore4(acc[i] * inv, c, xb + qo);
                }
            }
        }
    }
#if defined(ATT_SPLIT) && defined(ATT_FUSED_COMBINE)
    // The chunk group of (entry, KV head, tile) that finishes last merges the chunks' rows into xb through
    // merge_chunks, as attn_combine does, so no second kernel runs: its writers fence their parts before counting
    // themselves in, it reads them back through volatile pointers (written in this launch by other groups) and
    // zeroes the counter for the next launch.
    if (chunks > 1) {
        if (last_chunk_group(counters + group, chunks, &lastChunk, lid)) {
            mem_fence(CLK_GLOBAL_MEM_FENCE);
            if (live) {
                int nHeads = dim / HEAD_SIZE;
                #pragma unroll
                for (int i = 0; i < CHUNKS_PER_LANE; i++) {
                    int c = lane + i * ATT_LANES;
                    if (c < HS4) {
                        vstore4(merge_chunks(part, tokens, nHeads, chunks, t * nHeads + h, c), c, xb + qo);
                    }
                }
            }
            if (lid == 0) {
                counters[group] = 0;
            }
        }
    }
#endif
}

#ifdef ATT_SPLIT
/**
 * A kernel NAME writing xb[t][h*hs ..] from a split build's per-chunk rows of [0, tokens), merged by MERGE; one item
 * per output float4. attn_combine (merge_chunks) and attn_decode_combine (dec_merge) are its two instances.
 */
#define ATT_COMBINE_KERNEL(NAME, MERGE) \
__kernel void NAME(int tokens, int chunks, int dim, __global const float *part, __global float *xb) { \
    int i = get_global_id(0); \
    int nHeads = dim / HEAD_SIZE; \
    if (i >= tokens * nHeads * HS4) { \
        return; \
    } \
    int th = i / HS4; \
    int c = i - th * HS4; \
    int t = th / nHeads; \
    int h = th - t * nHeads; \
    vstore4(MERGE(part, tokens, nHeads, chunks, th, c), c, xb + t * dim + h * HEAD_SIZE); \
}

ATT_COMBINE_KERNEL(attn_combine, merge_chunks)
#endif
#if defined(ATT_SPLIT) && defined(DEC_LANES)
// ---------------------------------------------------------------------------------------------------------------
// attn_decode: the attention of a decode step (one query row an entry) read straight from the paged pool, for small
// KV groups (MHA) where attn_tiled's split build carries a whole q row and a whole K/V tile in registers per item.
// Built into the split program with -DDEC_WG -DDEC_LANES -DDEC_UNROLL as well (HandStep.DecodeTile).
//
// A group of DEC_WG items per (entry, KV head, key chunk), the chunk fastest; its rows are the entry's row times the
// KV_GROUP query heads of the KV head. The items form DEC_SLOTS slots of DEC_LANES lanes; a slot owns one key row at
// a time and its lanes split the head: lane owns float4s lane, lane + DEC_LANES, ... (DEC_CPL of them; f16 pools:
// adjacent pairs, see DEC_C), of q, of
// the key and value rows and of the output, so q and the accumulators stay a few registers. A tile is DEC_TK keys:
// slot s reads keys k0 + u * DEC_SLOTS + s for u < DEC_UNROLL, all its K and V float4s issued together (consecutive
// items read consecutive float4s of a row: coalesced) and nothing staged in local memory; the lanes' partial dot
// products meet in local memory (one row of DEC_LANES partials per (slot, query row, key), each summed by one lane of
// the slot), and each slot keeps its own online softmax (m, l, acc) per query row over its keys, so a tile needs no
// group-wide maximum. At the end of the chunk the slots' (m, l, acc) are merged in slot order through local memory
// into the chunk's (m, l, acc): written to `part` in attn_tiled's split layout (merged by merge_chunks, fused by the
// last chunk group or by attn_combine), or with one chunk, normalized into xb. Everything is summed in a fixed order,
// so a run is bitwise repeatable.
// ---------------------------------------------------------------------------------------------------------------
#define DEC_SLOTS (DEC_WG / DEC_LANES)
#define DEC_CPL ((HS4 + DEC_LANES - 1) / DEC_LANES)
#define DEC_TK (DEC_SLOTS * DEC_UNROLL)
#define DEC_COMBOS (KV_GROUP * DEC_UNROLL)
#define DEC_RED_STRIDE (DEC_LANES + 1)
#define DEC_RED (DEC_SLOTS * DEC_COMBOS * DEC_RED_STRIDE)
#define DEC_MERGE (DEC_SLOTS * KV_GROUP * HEAD_SIZE)
#define DEC_LOCAL (DEC_RED > DEC_MERGE ? DEC_RED : DEC_MERGE)
#if DEC_WG % DEC_LANES != 0
#error "attn_decode needs DEC_WG a multiple of DEC_LANES"
#endif

// With an f16 pool whose head has an even number of float4s per lane, a lane's float4s come in adjacent pairs, each
// pair one 16-byte load of 8 halves (KV_LOAD8): lane owns float4s 2 * (lane + p * DEC_LANES) + {0, 1}, p < DEC_CPL / 2.
// Otherwise lane owns float4s lane + i * DEC_LANES. DEC_C(lane, i) is the head's float4 of a lane's i-th.
#if defined(KV_F16) && HS4 % (2 * DEC_LANES) == 0
#define DEC_PAIRS 1
#define DEC_C(lane, i) (2 * ((lane) + ((i) >> 1) * DEC_LANES) + ((i) & 1))
#else
#define DEC_PAIRS 0
#define DEC_C(lane, i) ((lane) + (i) * DEC_LANES)
#endif

/** Whether float4 c of a lane (DEC_C) is in the head: always where DEC_LANES divides HS4. */
inline int dec_owns(int c) {
#if HS4 % DEC_LANES == 0
    return 1;
#else
    return c < HS4;
#endif
}
/**
 * merge_chunks' result, the same expressions in the same order, with the chunks' volatile loads issued
 * DEC_MERGE_BATCH at a time before their first use: merge_chunks waits for each chunk's values before it asks for the
 * next one's, a chain of ~2 x chunks L2 round trips that attn_decode's many short chunks would put at the end of the
 * layer. attn_decode's fused merge and attn_decode_combine both use it, so they agree bitwise.
 */
#define DEC_MERGE_BATCH 8
inline float4 dec_merge(volatile __global const float *part, int tokens, int nHeads, int chunks, int th, int c) {
    int first = th * chunks;
    volatile __global const float *ml = part + tokens * nHeads * chunks * HEAD_SIZE + 2 * first;
    float m = MASKED;
    for (int s0 = 0; s0 < chunks; s0 += DEC_MERGE_BATCH) {
        float ms[DEC_MERGE_BATCH];
        #pragma unroll
        for (int i = 0; i < DEC_MERGE_BATCH; i++) {
            ms[i] = s0 + i < chunks ? ml[2 * (s0 + i)] : MASKED;
        }
        #pragma unroll
        for (int i = 0; i < DEC_MERGE_BATCH; i++) {
            m = max(m, ms[i]); // max(m, MASKED) is m: the padding changes nothing
        }
    }
    float l = 0.0f;
    float4 out = (float4) (0.0f);
    for (int s0 = 0; s0 < chunks; s0 += DEC_MERGE_BATCH) {
        float ms[DEC_MERGE_BATCH];
        float ls[DEC_MERGE_BATCH];
        float4 as[DEC_MERGE_BATCH];
        #pragma unroll
        for (int i = 0; i < DEC_MERGE_BATCH; i++) {
            int s = s0 + i;
            if (s < chunks) {
                volatile __global const float *a = part + (first + s) * HEAD_SIZE + 4 * c;
                ms[i] = ml[2 * s];
                ls[i] = ml[2 * s + 1];
                as[i] = (float4) (a[0], a[1], a[2], a[3]);
            }
        }
        #pragma unroll
        for (int i = 0; i < DEC_MERGE_BATCH; i++) {
            if (s0 + i < chunks) {
                float w = exp(ms[i] - m);
                l += w * ls[i];
                out += w * as[i];
            }
        }
    }
    return out / l;
}

/**
 * xb[t][h*hs ..] for the one row t of each entry and every query head h: softmax of (q[t,h] . k[j] / attScale) over
 * j <= last_key(t), weighting v[j]; dense entries only. Groups: entries x KV heads x chunks; an entry without a row
 * does nothing.
 */
__kernel __attribute__((reqd_work_group_size(DEC_WG, 1, 1)))
void attn_decode(int tokens, int dim, int kvDim, int maxBlocksPerSeq, int blockFloats, int layer, float attScale,
                 __global const int *tokenPos, __global const int *tokenSeq, __global const int *blockTable,
                 __global const int *entryLen, __global const float *q, __global const KV_T *kv,
                 __global float *xb, int chunks, int chunkKeys, __global float *part
#ifdef ATT_FUSED_COMBINE
                 , __global int *counters
#endif
                 ) {
    // Partial dot products of a tile, then (after the key loop) the slots' accumulators for the merge.
    __local float red[DEC_LOCAL];
    __local float sc[DEC_SLOTS * DEC_COMBOS];
    __local float slotM[DEC_SLOTS * KV_GROUP];
    __local float slotL[DEC_SLOTS * KV_GROUP];
#ifdef ATT_FUSED_COMBINE
    __local int lastChunk;
#endif
    int lid = get_local_id(0);
    int slot = lid / DEC_LANES;
    int lane = lid - slot * DEC_LANES;
    int group = get_group_id(0);
    int chunk = group % chunks;
    group /= chunks; // (entry, KV head): attn_tiled's group with one tile, so the fused merge's counter is the same
    int nKv = kvDim / HEAD_SIZE;
    int kvh = group % nKv;
    int e = group / nKv;
    int nHeads = dim / HEAD_SIZE;
    // The host runs this kernel only where no entry has two rows; with as many rows as entries (the enqueued groups
    // say how many entries) each entry has exactly one, row e, and the two binary searches' chains of dependent
    // loads are skipped.
    int entries = get_num_groups(0) / (chunks * nKv);
    int t = tokens == entries ? e : first_row(e, tokens, tokenSeq);
    int live = tokens == entries || first_row(e + 1, tokens, tokenSeq) > t;
    int len = entryLen[e];
    int last = live ? (len > 0 ? len - 1 : tokenPos[t]) : -1;
    int keysFirst = chunk * chunkKeys;
    int keysLast = min(last, keysFirst + chunkKeys - 1);
    int h0 = kvh * KV_GROUP;

    float4 qr[KV_GROUP][DEC_CPL];
    float4 acc[KV_GROUP][DEC_CPL];
    float m[KV_GROUP];
    float l[KV_GROUP];
    #pragma unroll
    for (int g = 0; g < KV_GROUP; g++) {
        #pragma unroll
        for (int i = 0; i < DEC_CPL; i++) {
            int c = DEC_C(lane, i);
            qr[g][i] = live && dec_owns(c)
                    ? vload4(c, q + t * dim + (h0 + g) * HEAD_SIZE) : (float4) (0.0f);
            acc[g][i] = (float4) (0.0f);
        }
        m[g] = MASKED;
        l[g] = 0.0f;
    }
    int tableBase = e * maxBlocksPerSeq;
    int kOffset = (layer * 2) * KV_BLOCK * kvDim + kvh * HEAD_SIZE;
    int vOffset = kOffset + KV_BLOCK * kvDim;

    // Where this slot's key rows of a tile start in the pool (-1: past keysLast, whose block may not exist); the
    // next tile's are looked up while the current tile's K and V are in flight, so the block table's latency does
    // not add to theirs.
    long base[DEC_UNROLL];
    #pragma unroll
    for (int u = 0; u < DEC_UNROLL; u++) {
        int j = keysFirst + u * DEC_SLOTS + slot;
        base[u] = j <= keysLast
                ? (long) blockTable[tableBase + j / KV_BLOCK] * blockFloats + (j % KV_BLOCK) * kvDim : -1;
    }
    for (int k0 = keysFirst; k0 <= keysLast; k0 += DEC_TK) {
        // This slot's keys of the tile, K and V together (zeros past keysLast). An f16 pool's pairs stay raw words
        // (8 halves a uint4: half the registers of floats, so as many loads in flight as f32's) until their use.
#if DEC_PAIRS
        uint4 kt[DEC_UNROLL][DEC_CPL / 2];
        uint4 vt[DEC_UNROLL][DEC_CPL / 2];
        #pragma unroll
        for (int u = 0; u < DEC_UNROLL; u++) {
            #pragma unroll
            for (int p = 0; p < DEC_CPL / 2; p++) {
                int c = DEC_C(lane, 2 * p);
                kt[u][p] = base[u] >= 0 ? KV_LOAD8_RAW(kv, base[u] + kOffset + 4 * c) : (uint4) (0u);
                vt[u][p] = base[u] >= 0 ? KV_LOAD8_RAW(kv, base[u] + vOffset + 4 * c) : (uint4) (0u);
            }
        }
#else
        float4 kt[DEC_UNROLL][DEC_CPL];
        float4 vt[DEC_UNROLL][DEC_CPL];
        #pragma unroll
        for (int u = 0; u < DEC_UNROLL; u++) {
            #pragma unroll
            for (int i = 0; i < DEC_CPL; i++) {
                int c = DEC_C(lane, i);
                int in = base[u] >= 0 && dec_owns(c);
                kt[u][i] = in ? KV_LOAD4(kv, base[u] + kOffset + 4 * c) : (float4) (0.0f);
                vt[u][i] = in ? KV_LOAD4(kv, base[u] + vOffset + 4 * c) : (float4) (0.0f);
            }
        }
#endif
        #pragma unroll
        for (int u = 0; u < DEC_UNROLL; u++) {
            int j = k0 + DEC_TK + u * DEC_SLOTS + slot;
            base[u] = j <= keysLast
                    ? (long) blockTable[tableBase + j / KV_BLOCK] * blockFloats + (j % KV_BLOCK) * kvDim : -1;
        }
        // Partial dot products: row (slot, query row g, key u) of DEC_LANES partials, one per lane.
#if DEC_PAIRS
        // Each key's halves widened once, for all KV_GROUP query rows (the sums as below, in the same order).
        #pragma unroll
        for (int u = 0; u < DEC_UNROLL; u++) {
            float4 kf[DEC_CPL];
            #pragma unroll
            for (int p = 0; p < DEC_CPL / 2; p++) {
                kf[2 * p] = kv_halves4(kt[u][p].xy);
                kf[2 * p + 1] = kv_halves4(kt[u][p].zw);
            }
            #pragma unroll
            for (int g = 0; g < KV_GROUP; g++) {
                float4 d = (float4) (0.0f);
                #pragma unroll
                for (int i = 0; i < DEC_CPL; i++) {
                    d += qr[g][i] * kf[i];
                }
                red[(slot * DEC_COMBOS + g * DEC_UNROLL + u) * DEC_RED_STRIDE + lane] = (d.x + d.y) + (d.z + d.w);
            }
        }
#else
        #pragma unroll
        for (int g = 0; g < KV_GROUP; g++) {
            #pragma unroll
            for (int u = 0; u < DEC_UNROLL; u++) {
                float4 d = (float4) (0.0f);
                #pragma unroll
                for (int i = 0; i < DEC_CPL; i++) {
                    d += qr[g][i] * kt[u][i];
                }
                red[(slot * DEC_COMBOS + g * DEC_UNROLL + u) * DEC_RED_STRIDE + lane] = (d.x + d.y) + (d.z + d.w);
            }
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int cb = lane; cb < DEC_COMBOS; cb += DEC_LANES) {
            int at = (slot * DEC_COMBOS + cb) * DEC_RED_STRIDE;
            float s = 0.0f;
            for (int i = 0; i < DEC_LANES; i++) {
                s += red[at + i];
            }
            sc[slot * DEC_COMBOS + cb] = s / attScale;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        // The slot's online softmax per query row over its DEC_UNROLL keys (every lane of the slot the same).
#if DEC_PAIRS
        float pr[KV_GROUP][DEC_UNROLL];
#endif
        #pragma unroll
        for (int g = 0; g < KV_GROUP; g++) {
            float s[DEC_UNROLL];
            float tileMax = MASKED;
            #pragma unroll
            for (int u = 0; u < DEC_UNROLL; u++) {
                int j = k0 + u * DEC_SLOTS + slot;
                s[u] = j <= keysLast ? sc[slot * DEC_COMBOS + g * DEC_UNROLL + u] : MASKED;
                tileMax = max(tileMax, s[u]);
            }
            float newMax = max(m[g], tileMax);
            float rescale = exp(m[g] - newMax);
            m[g] = newMax;
            l[g] *= rescale;
            #pragma unroll
            for (int i = 0; i < DEC_CPL; i++) {
                acc[g][i] *= rescale;
            }
            #pragma unroll
            for (int u = 0; u < DEC_UNROLL; u++) {
                int j = k0 + u * DEC_SLOTS + slot;
                float p = j <= keysLast ? exp(s[u] - newMax) : 0.0f;
                l[g] += p;
#if DEC_PAIRS
                pr[g][u] = p;
#else
                #pragma unroll
                for (int i = 0; i < DEC_CPL; i++) {
                    acc[g][i] += p * vt[u][i];
                }
#endif
            }
        }
#if DEC_PAIRS
        // Each key's values widened once for all query rows; every acc[g][i] still adds its keys in u order.
        #pragma unroll
        for (int u = 0; u < DEC_UNROLL; u++) {
            float4 vf[DEC_CPL];
            #pragma unroll
            for (int p = 0; p < DEC_CPL / 2; p++) {
                vf[2 * p] = kv_halves4(vt[u][p].xy);
                vf[2 * p + 1] = kv_halves4(vt[u][p].zw);
            }
            #pragma unroll
            for (int g = 0; g < KV_GROUP; g++) {
                #pragma unroll
                for (int i = 0; i < DEC_CPL; i++) {
                    acc[g][i] += pr[g][u] * vf[i];
                }
            }
        }
#endif
        // The next tile writes red and sc only after its own first barrier, which every item reaches after its
        // reads of this tile's: no third barrier.
    }

    // The slots' (m, l, acc) into local memory, then each output float4 merged over the slots in slot order.
    barrier(CLK_LOCAL_MEM_FENCE);
    #pragma unroll
    for (int g = 0; g < KV_GROUP; g++) {
        if (lane == 0) {
            slotM[slot * KV_GROUP + g] = m[g];
            slotL[slot * KV_GROUP + g] = l[g];
        }
        #pragma unroll
        for (int i = 0; i < DEC_CPL; i++) {
            int c = DEC_C(lane, i);
            if (dec_owns(c)) {
                vstore4(acc[g][i], c, red + (slot * KV_GROUP + g) * HEAD_SIZE);
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int o = lid; o < KV_GROUP * HS4; o += DEC_WG) {
        int g = o / HS4;
        int c = o - g * HS4;
        float mm = MASKED;
        for (int s = 0; s < DEC_SLOTS; s++) {
            mm = max(mm, slotM[s * KV_GROUP + g]);
        }
        float ll = 0.0f;
        float4 out = (float4) (0.0f);
        for (int s = 0; s < DEC_SLOTS; s++) {
            float w = exp(slotM[s * KV_GROUP + g] - mm);
            ll += w * slotL[s * KV_GROUP + g];
            out += w * vload4(c, red + (s * KV_GROUP + g) * HEAD_SIZE);
        }
        if (live) {
            int h = h0 + g;
            if (chunks > 1) {
                // This chunk's (m, l, acc) of row (t, h), as attn_tiled's split build writes it; a chunk past the
                // row's last key leaves (MASKED, 0, 0).
                int at = (t * nHeads + h) * chunks + chunk;
                vstore4(out, c, part + at * HEAD_SIZE);
                if (c == 0) {
                    int ml = tokens * nHeads * chunks * HEAD_SIZE + 2 * at;
                    part[ml] = mm;
                    part[ml + 1] = ll;
                }
            } else {
                vstore4(out / ll, c, xb + t * dim + h * HEAD_SIZE);
            }
        }
    }
#ifdef ATT_FUSED_COMBINE
    // As attn_tiled's split build: the chunk group of (entry, KV head) that finishes last merges the chunks (dec_merge).
    if (chunks > 1) {
        if (last_chunk_group(counters + group, chunks, &lastChunk, lid)) {
            mem_fence(CLK_GLOBAL_MEM_FENCE);
            if (live) {
                for (int o = lid; o < KV_GROUP * HS4; o += DEC_WG) {
                    int g = o / HS4;
                    int c = o - g * HS4;
                    int h = h0 + g;
                    vstore4(dec_merge(part, tokens, nHeads, chunks, t * nHeads + h, c), c,
                            xb + t * dim + h * HEAD_SIZE);
                }
            }
            if (lid == 0) {
                counters[group] = 0;
            }
        }
    }
#endif
}

/** xb[t][h*hs ..] from attn_decode's per-chunk rows of [0, tokens) (dec_merge). */
ATT_COMBINE_KERNEL(attn_decode_combine, dec_merge)
#endif
#endif
