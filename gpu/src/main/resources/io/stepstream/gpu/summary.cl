// Row summaries of a diffusion step's logits (RowSummaryKernel): per logits row, the argmax id (ties to the
// lowest id, over every id) and its float64 softmax probability 1 / sum_i exp((double) l_i - (double) l_max),
// so that a greedy low-confidence step reads back 12 bytes a row instead of the row.
// One work-group of SUMMARY_WG items per row. Output, for rows 0..rows-1: the confidences as doubles, then the
// ids as ints (one buffer, so one read of 12 * rows bytes brings both).
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

#ifndef SUMMARY_WG
#define SUMMARY_WG 256
#endif

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
    const double max = (double) bestValue[0];
    double sum = 0.0;
    for (int i = lid; i < vocab; i += SUMMARY_WG) {
        sum += exp((double) l[i] - max);
    }
    partial[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = SUMMARY_WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        ((__global double *) out)[row] = 1.0 / partial[0];
        ((__global int *) (out + (size_t) rows * sizeof(double)))[row] = bestId[0];
    }
}
