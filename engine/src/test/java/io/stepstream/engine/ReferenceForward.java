package io.stepstream.engine;

/**
 * A deliberately plain, single-sequence transcription of the llama2.c forward pass in double precision,
 * written without looking at the production code: one token at a time, a contiguous KV cache, every loop
 * spelled out. The production batched forward is checked against it.
 */
final class ReferenceForward {
    private final TestCheckpoint m;
    private final double[][][] keys;   // [layer][pos][kvDim]
    private final double[][][] values; // [layer][pos][kvDim]
    private int length;

    ReferenceForward(TestCheckpoint m) {
        this.m = m;
        this.keys = new double[m.layers()][m.seqLen()][m.kvDim()];
        this.values = new double[m.layers()][m.seqLen()][m.kvDim()];
    }

    int length() {
        return length;
    }

    /** Feeds the next token (at position length()) and returns the logits after it. */
    double[] next(int token) {
        int pos = length++;
        int dim = m.dim();
        int hs = m.headSize();
        int kvDim = m.kvDim();
        double[] x = new double[dim];
        for (int i = 0; i < dim; i++) {
            x[i] = m.embedding()[token * dim + i];
        }
        for (int l = 0; l < m.layers(); l++) {
            double[] h = rmsnorm(x, m.rmsAtt()[l]);
            double[] q = matvec(m.wq()[l], h, dim);
            double[] k = matvec(m.wk()[l], h, kvDim);
            double[] v = matvec(m.wv()[l], h, kvDim);
            rotate(q, pos);
            rotate(k, pos);
            keys[l][pos] = k;
            values[l][pos] = v;
            double[] attnOut = new double[dim];
            int group = m.heads() / m.kvHeads();
            for (int head = 0; head < m.heads(); head++) {
                int kvBase = (head / group) * hs;
                double[] w = new double[pos + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int t = 0; t <= pos; t++) {
                    double s = 0;
                    for (int i = 0; i < hs; i++) {
                        s += q[head * hs + i] * keys[l][t][kvBase + i];
                    }
                    w[t] = s / Math.sqrt(hs);
                    max = Math.max(max, w[t]);
                }
                double sum = 0;
                for (int t = 0; t <= pos; t++) {
                    w[t] = Math.exp(w[t] - max);
                    sum += w[t];
                }
                for (int t = 0; t <= pos; t++) {
                    for (int i = 0; i < hs; i++) {
                        attnOut[head * hs + i] += w[t] / sum * values[l][t][kvBase + i];
                    }
                }
            }
            double[] o = matvec(m.wo()[l], attnOut, dim);
            for (int i = 0; i < dim; i++) {
                x[i] += o[i];
            }
            h = rmsnorm(x, m.rmsFfn()[l]);
            double[] gate = matvec(m.w1()[l], h, m.hidden());
            double[] up = matvec(m.w3()[l], h, m.hidden());
            for (int i = 0; i < m.hidden(); i++) {
                gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
            }
            double[] down = matvec(m.w2()[l], gate, dim);
            for (int i = 0; i < dim; i++) {
                x[i] += down[i];
            }
        }
        return matvec(m.wcls(), rmsnorm(x, m.rmsFinal()), m.vocab());
    }

    /** Interleaved-pair rotation; within each head, pair j turns by pos / 10000^(2j/headSize). */
    private void rotate(double[] vec, int pos) {
        int hs = m.headSize();
        for (int head = 0; head < vec.length / hs; head++) {
            for (int j = 0; j < hs / 2; j++) {
                double angle = pos / Math.pow(10000, 2.0 * j / hs);
                int a = head * hs + 2 * j;
                double re = vec[a];
                double im = vec[a + 1];
                vec[a] = re * Math.cos(angle) - im * Math.sin(angle);
                vec[a + 1] = re * Math.sin(angle) + im * Math.cos(angle);
            }
        }
    }

    private static double[] rmsnorm(double[] x, float[] weight) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double scale = 1 / Math.sqrt(ss / x.length + 1e-5);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = weight[i] * x[i] * scale;
        }
        return out;
    }

    private static double[] matvec(float[] w, double[] x, int rows) {
        double[] out = new double[rows];
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int c = 0; c < x.length; c++) {
                s += w[r * x.length + c] * x[c];
            }
            out[r] = s;
        }
        return out;
    }
}
