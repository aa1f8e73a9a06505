// Row summaries of a diffusion step's logits (RowSummaryKernel): per logits row, the argmax id (ties to the
// lowest id, over every id) and its float64 softmax probability 1 / sum_i exp((double) l_i - (double) l_max),
// so that a greedy low-confidence step reads back 12 bytes a row instead of the row.
// One work-group of SUMMARY_WG items per row. Output, for rows 0..rows-1: the confidences as doubles, then the
// ids as ints (one buffer, so one read of 12 * rows bytes brings both).
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

#ifndef SUMMARY_WG
#define SUMMARY_WG 256
#endif

/** The group's (value, id) with the largest value, ties to the lowest id, into bestValue[0] / bestId[0] (a tree). */
inline void group_argmax(float m, int id, __local float *bestValue, __local int *bestId) {
    const int lid = get_local_id(0);
    bestValue[lid] = m;
    bestId[lid] = id;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = SUMMARY_WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            float v = bestValue[lid + s];
            int i = bestId[lid + s];
            if (v > bestValue[lid] || (v == bestValue[lid] && i < bestId[lid])) {
                bestValue[lid] = v;
                bestId[lid] = i;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/** The group's sum of `sum` into partial[0], in a fixed tree order. */
inline void group_sum(double sum, __local double *partial) {
    const int lid = get_local_id(0);
    partial[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = SUMMARY_WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

__kernel __attribute__((reqd_work_group_size(SUMMARY_WG, 1, 1)))
void row_summary(const int rows, const int vocab, __global const float *logits, __global uchar *out) {
    __local float bestValue[SUMMARY_WG];
    __local int bestId[SUMMARY_WG];
    __local double partial[SUMMARY_WG];
    const int row = get_group_id(0);
    const int lid = get_local_id(0);
    if (row >= rows) {
        return; // the whole group: every item of a group shares its row
    }
    __global const float *l = logits + (size_t) row * vocab;
    // Each item's ids ascend, so its first strictly larger value keeps the lowest id of its maximum. An item
    // with no id holds (-inf, INT_MAX), which loses every tie.
    float m = -INFINITY;
    int id = INT_MAX;
    if (lid < vocab) {
        m = l[lid];
        id = lid;
    }
    for (int i = lid + SUMMARY_WG; i < vocab; i += SUMMARY_WG) {
        float v = l[i];
        if (v > m) {
            m = v;
            id = i;
        }
    }
    group_argmax(m, id, bestValue, bestId);
    const double max = (double) bestValue[0];
    double sum = 0.0;
    for (int i = lid; i < vocab; i += SUMMARY_WG) {
        sum += exp((double) l[i] - max);
    }
    group_sum(sum, partial);
    if (lid == 0) {
        ((__global double *) out)[row] = 1.0 / partial[0];
        ((__global int *) (out + (size_t) rows * sizeof(double)))[row] = bestId[0];
    }
}

// The same summaries with each row split over `splits` groups, for steps with few rows (batch-1 decode: one group
// would walk 32000 logits alone, ~25 us on the H200, while the other compute units idle). Group s of a row takes
// ids [s * chunk, min(vocab, (s + 1) * chunk)): its argmax (ties to the lowest id) m_s, id_s and
// sum_s = sum exp((double) l_i - (double) m_s) go to `partial`; the group that finishes a row last (a per-row
// counter) merges them in split order: M = the first largest m_s (ids ascend with s, so the lowest id of the
// maximum wins), confidence = 1 / sum_s sum_s * exp((double) m_s - (double) M), and zeroes the counter for the next
// call. The argmax is bitwise row_summary's; the confidence differs in rounding only (the same float64 sum,
// regrouped). Partials are read back through volatile pointers: another group wrote them in this same launch.
__kernel __attribute__((reqd_work_group_size(SUMMARY_WG, 1, 1)))
void row_summary_split(const int rows, const int vocab, const int splits, __global const float *logits,
                       __global uchar *out, __global double *partialSum, __global float *partialMax,
                       __global int *partialId, __global int *counters) {
    __local float bestValue[SUMMARY_WG];
    __local int bestId[SUMMARY_WG];
    __local double partial[SUMMARY_WG];
    __local int last;
    const int row = get_group_id(0) / splits;
    const int s = get_group_id(0) - row * splits;
    const int lid = get_local_id(0);
    if (row >= rows) {
        return;
    }
    const int chunk = (vocab + splits - 1) / splits;
    const int begin = s * chunk;
    const int end = min(vocab, begin + chunk);
    __global const float *l = logits + (size_t) row * vocab;
    float m = -INFINITY;
    int id = INT_MAX;
    for (int i = begin + lid; i < end; i += SUMMARY_WG) {
        float v = l[i];
        if (v > m || id == INT_MAX) {
            m = v;
            id = i;
        }
    }
    group_argmax(m, id, bestValue, bestId);
    const double max = (double) bestValue[0];
    double sum = 0.0;
    for (int i = begin + lid; i < end; i += SUMMARY_WG) {
        sum += exp((double) l[i] - max);
    }
    group_sum(sum, partial);
    if (lid == 0) {
        const int slot = row * splits + s;
        partialSum[slot] = partial[0];
        partialMax[slot] = bestValue[0];
        partialId[slot] = bestId[0];
        // The partials must reach global memory before the counter says they are there.
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        last = atomic_inc(counters + row) == splits - 1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (last && lid == 0) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        volatile __global const double *ps = partialSum + row * splits;
        volatile __global const float *pm = partialMax + row * splits;
        volatile __global const int *pi = partialId + row * splits;
        float bm = pm[0];
        int bi = pi[0];
        for (int k = 1; k < splits; k++) {
            float v = pm[k];
            if (v > bm) {
                bm = v;
                bi = pi[k];
            }
        }
        double total = 0.0;
        for (int k = 0; k < splits; k++) {
            total += ps[k] * exp((double) pm[k] - (double) bm);
        }
        ((__global double *) out)[row] = 1.0 / total;
        ((__global int *) (out + (size_t) rows * sizeof(double)))[row] = bi;
        counters[row] = 0;
    }
}
