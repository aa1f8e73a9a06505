package io.stepstream.engine.llama;

import io.stepstream.engine.format.gguf.GgufFile;
import io.stepstream.engine.format.gguf.Quants;
import io.stepstream.engine.format.gguf.TensorInfo;

import java.util.ArrayList;
import java.util.List;

/**
 * The plainest Llama / Qwen2 forward: one sequence, one token at a time, double precision, weights dequantized
 * straight from a GGUF file with {@link Quants}. It shares no code with {@link LlamaModel}.
 */
final class LlamaReference {
    private final int dim, hidden, layers, heads, kvHeads, headSize, vocab;
    private final double eps, theta;
    private final boolean neox;
    private final double[] freqFactors;
    private final double[][] embedding;
    private final double[][] output;
    private final double[] outputNorm;
    private final double[][] attnNorm, ffnNorm, bq, bk, bv;
    private final double[][][] wq, wk, wv, wo, gate, up, down;

    LlamaReference(GgufFile f) {
        String arch = f.getString("general.architecture");
        String a = arch + ".";
        dim = f.getInt(a + "embedding_length");
        hidden = f.getInt(a + "feed_forward_length");
        layers = f.getInt(a + "block_count");
        heads = f.getInt(a + "attention.head_count");
        kvHeads = f.getInt(a + "attention.head_count_kv");
        headSize = dim / heads;
        eps = f.getFloat(a + "attention.layer_norm_rms_epsilon");
        theta = f.getFloat(a + "rope.freq_base");
        neox = arch.equals("qwen2");
        freqFactors = f.hasTensor("rope_freqs.weight") ? vec(f, "rope_freqs.weight") : null;
        embedding = mat(f, "token_embd.weight");
        vocab = embedding.length;
        output = f.hasTensor("output.weight") ? mat(f, "output.weight") : embedding;
        outputNorm = vec(f, "output_norm.weight");
        attnNorm = new double[layers][];
        ffnNorm = new double[layers][];
        bq = new double[layers][];
        bk = new double[layers][];
        bv = new double[layers][];
        wq = new double[layers][][];
        wk = new double[layers][][];
        wv = new double[layers][][];
        wo = new double[layers][][];
        gate = new double[layers][][];
        up = new double[layers][][];
        down = new double[layers][][];
        for (int l = 0; l < layers; l++) {
            String b = "blk." + l + ".";
            attnNorm[l] = vec(f, b + "attn_norm.weight");
            ffnNorm[l] = vec(f, b + "ffn_norm.weight");
            wq[l] = mat(f, b + "attn_q.weight");
            wk[l] = mat(f, b + "attn_k.weight");
            wv[l] = mat(f, b + "attn_v.weight");
            wo[l] = mat(f, b + "attn_output.weight");
            gate[l] = mat(f, b + "ffn_gate.weight");
            up[l] = mat(f, b + "ffn_up.weight");
            down[l] = mat(f, b + "ffn_down.weight");
            if (f.hasTensor(b + "attn_q.bias")) {
                bq[l] = vec(f, b + "attn_q.bias");
                bk[l] = vec(f, b + "attn_k.bias");
                bv[l] = vec(f, b + "attn_v.bias");
            }
        }
    }

    private static double[] vec(GgufFile f, String name) {
        float[] v = Quants.dequantize(f.tensor(name).type(), f.tensorData(name));
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    private static double[][] mat(GgufFile f, String name) {
        TensorInfo t = f.tensor(name);
        double[] flat = vec(f, name);
        int cols = (int) t.dim(0);
        int rows = (int) t.dim(1);
        double[][] m = new double[rows][cols];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(flat, r * cols, m[r], 0, cols);
        }
        return m;
    }

    private int length;
    private final List<List<double[]>> cacheK = new ArrayList<>();
    private final List<List<double[]>> cacheV = new ArrayList<>();

    int length() {
        return length;
    }

    /** Appends one token and returns the logits after it. */
    double[] next(int token) {
        if (cacheK.isEmpty()) {
            for (int l = 0; l < layers; l++) {
                cacheK.add(new ArrayList<>());
                cacheV.add(new ArrayList<>());
            }
        }
        int pos = length++;
        double[] x = embedding[token].clone();
        for (int l = 0; l < layers; l++) {
            double[] h = rmsnorm(x, attnNorm[l]);
            double[] q = matvec(wq[l], h, bq[l]);
            double[] k = matvec(wk[l], h, bk[l]);
            double[] v = matvec(wv[l], h, bv[l]);
            rope(q, heads, pos);
            rope(k, kvHeads, pos);
            cacheK.get(l).add(k);
            cacheV.get(l).add(v);
            double[] att = new double[dim];
            int group = heads / kvHeads;
            for (int hd = 0; hd < heads; hd++) {
                int kvo = (hd / group) * headSize;
                double[] s = new double[pos + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= pos; j++) {
                    double dot = 0;
                    for (int i = 0; i < headSize; i++) {
                        dot += q[hd * headSize + i] * cacheK.get(l).get(j)[kvo + i];
                    }
                    s[j] = dot / Math.sqrt(headSize);
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j <= pos; j++) {
                    s[j] = Math.exp(s[j] - max);
                    sum += s[j];
                }
                for (int j = 0; j <= pos; j++) {
                    for (int i = 0; i < headSize; i++) {
                        att[hd * headSize + i] += s[j] / sum * cacheV.get(l).get(j)[kvo + i];
                    }
                }
            }
            add(x, matvec(wo[l], att, null));
            h = rmsnorm(x, ffnNorm[l]);
            double[] g = matvec(gate[l], h, null);
            double[] u = matvec(up[l], h, null);
            for (int i = 0; i < hidden; i++) {
                g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
            }
            add(x, matvec(down[l], g, null));
        }
        return matvec(output, rmsnorm(x, outputNorm), null);
    }

    int vocab() {
        return vocab;
    }

    private void rope(double[] v, int nHeads, int pos) {
        int half = headSize / 2;
        for (int h = 0; h < nHeads; h++) {
            for (int p = 0; p < half; p++) {
                double freq = Math.pow(theta, -2.0 * p / headSize);
                if (freqFactors != null) {
                    freq /= freqFactors[p];
                }
                double angle = pos * freq;
                int i0 = h * headSize + (neox ? p : 2 * p);
                int i1 = neox ? i0 + half : i0 + 1;
                double a = v[i0];
                double b = v[i1];
                v[i0] = a * Math.cos(angle) - b * Math.sin(angle);
                v[i1] = a * Math.sin(angle) + b * Math.cos(angle);
            }
        }
    }

    private double[] rmsnorm(double[] x, double[] w) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double s = 1 / Math.sqrt(ss / x.length + eps);
        double[] o = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            o[i] = w[i] * x[i] * s;
        }
        return o;
    }

    private static double[] matvec(double[][] m, double[] x, double[] bias) {
        double[] o = new double[m.length];
        for (int r = 0; r < m.length; r++) {
            double s = bias == null ? 0 : bias[r];
            for (int c = 0; c < x.length; c++) {
                s += m[r][c] * x[c];
            }
            o[r] = s;
        }
        return o;
    }

    private static void add(double[] x, double[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += y[i];
        }
    }
}
