package io.stepstream.engine.cpu;

/**
 * Plain float32 kernels of a Llama block, written so every output element is computed with one fixed
 * summation order (left to right over the reduction index) whatever the batch size or the thread split:
 * that is what makes a sequence's logits bitwise identical alone or batched.
 */
public final class Kernels {
    private Kernels() {
    }

    /** out[t*rows + r] = sum_c w[r*cols + c] * in[inOffset + t*cols + c] for rows r in [r0, r1), all t. */
    public static void matmulRows(float[] w, int rows, int cols, float[] in, int inOffset, int tokens,
                                  float[] out, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
            int wRow = r * cols;
            // Each weight row is read once per step and reused for every token of the batch.
            for (int t = 0; t < tokens; t++) {
                int x = inOffset + t * cols;
                float sum = 0f;
                for (int c = 0; c < cols; c++) {
                    sum += w[wRow + c] * in[x + c];
                }
                out[t * rows + r] = sum;
            }
        }
    }

    /** RMSNorm of one row as llama2.c computes it: o = weight * (x / sqrt(mean(x^2) + eps)). */
    public static void rmsnorm(float[] out, int outOffset, float[] x, int xOffset, float[] weight, int size,
                               float eps) {
        float ss = 0f;
        for (int j = 0; j < size; j++) {
            float v = x[xOffset + j];
            ss += v * v;
        }
        ss /= size;
        ss += eps;
        ss = 1f / (float) Math.sqrt(ss);
        for (int j = 0; j < size; j++) {
            out[outOffset + j] = weight[j] * (ss * x[xOffset + j]);
        }
    }

    /** In-place softmax over x[offset .. offset+size). */
    public static void softmax(float[] x, int offset, int size) {
        float max = x[offset];
        for (int i = 1; i < size; i++) {
            max = Math.max(max, x[offset + i]);
        }
        float sum = 0f;
        for (int i = 0; i < size; i++) {
            float e = (float) Math.exp(x[offset + i] - max);
            x[offset + i] = e;
            sum += e;
        }
        for (int i = 0; i < size; i++) {
            x[offset + i] /= sum;
        }
    }

    /** a[i] = silu(a[i]) * b[i] over [from, to): the SwiGLU gate. */
    public static void swiglu(float[] a, float[] b, int from, int to) {
        for (int i = from; i < to; i++) {
            float v = a[i];
            v *= 1f / (1f + (float) Math.exp(-v));
            a[i] = v * b[i];
        }
    }
}
