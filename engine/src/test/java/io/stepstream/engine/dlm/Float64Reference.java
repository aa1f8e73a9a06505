package io.stepstream.engine.dlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * The plain float64 pieces the reference forward passes ({@link ReferenceDlm}, {@link ReferenceDream},
 * {@link ReferenceFastDllm}) share, written from the formats' and models' descriptions rather than from production
 * code: reading F32 safetensors, an affine map, RMSNorm and the interleaved-pairs RoPE of LLaDA-style models.
 */
final class Float64Reference {
    private Float64Reference() {
    }

    /** Every tensor of a single-file safetensors model, widened to double; F32 tensors only. */
    static Map<String, double[]> readF32Safetensors(Path file) throws IOException {
        // safetensors: u64 LE header length, JSON header, then the raw little-endian data.
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer data = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int headerLength = (int) data.getLong(0);
        JsonNode header = new ObjectMapper().readTree(new String(bytes, 8, headerLength, StandardCharsets.UTF_8));
        Map<String, double[]> tensors = new HashMap<>();
        for (Map.Entry<String, JsonNode> e : header.properties()) {
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            if (!e.getValue().get("dtype").asText().equals("F32")) {
                throw new IllegalStateException("reference reads F32 only: " + e.getKey());
            }
            long begin = e.getValue().get("data_offsets").get(0).asLong();
            long end = e.getValue().get("data_offsets").get(1).asLong();
            double[] values = new double[(int) ((end - begin) / 4)];
            for (int i = 0; i < values.length; i++) {
                values[i] = data.getFloat((int) (8 + headerLength + begin + 4L * i));
            }
            tensors.put(e.getKey(), values);
        }
        return tensors;
    }

    /** The named tensor; a clear error when the model has none of that name. */
    static double[] tensor(Map<String, double[]> tensors, String name) {
        double[] v = tensors.get(name);
        if (v == null) {
            throw new IllegalStateException("no tensor " + name);
        }
        return v;
    }

    /** y = W x + b, W stored [out][in] with in = x.length (b may be null). */
    static double[] affine(double[] weight, double[] bias, double[] x, int out) {
        int in = x.length;
        double[] y = new double[out];
        for (int r = 0; r < out; r++) {
            double s = bias == null ? 0 : bias[r];
            for (int c = 0; c < in; c++) {
                s += weight[r * in + c] * x[c];
            }
            y[r] = s;
        }
        return y;
    }

    /** y = W x with W stored [out][in]. */
    static double[] linear(double[] weight, double[] x, int out) {
        return affine(weight, null, x, out);
    }

    static double[] rmsnorm(double[] x, double[] gain, double eps) {
        double ss = 0;
        for (double v : x) {
            ss += v * v;
        }
        double scale = 1 / Math.sqrt(ss / x.length + eps);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = x[i] * scale * gain[i];
        }
        return y;
    }

    /** Interleaved pairs (2i, 2i+1) of each head at position pos, angle pos * theta^(-2i/headDim). */
    static void ropeInterleaved(double[] vec, int pos, int headDim, double theta) {
        for (int head = 0; head < vec.length / headDim; head++) {
            for (int i = 0; i < headDim / 2; i++) {
                double angle = pos * Math.pow(theta, -2.0 * i / headDim);
                int a = head * headDim + 2 * i;
                double x0 = vec[a];
                double x1 = vec[a + 1];
                vec[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
                vec[a + 1] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
            }
        }
    }

    /** Which keys a query row may see in one head; null keeps every key. */
    interface KeyFilter {
        boolean keep(int head, int query, int key);
    }

    /**
     * Softmax attention of each query row over every key row (no causal mask: the canvas is bidirectional), grouped
     * KV heads; keys the filter refuses are left out of the softmax. Rows are already RoPE-rotated.
     */
    static double[][] attend(double[][] q, double[][] keys, double[][] values, int heads, int kvHeads, int headDim,
                             KeyFilter filter) {
        double[][] attended = new double[q.length][heads * headDim];
        for (int p = 0; p < q.length; p++) {
            for (int head = 0; head < heads; head++) {
                int kv = head / (heads / kvHeads);
                double[] score = new double[keys.length];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < keys.length; j++) {
                    if (filter != null && !filter.keep(head, p, j)) {
                        score[j] = Double.NEGATIVE_INFINITY;
                        continue;
                    }
                    double s = 0;
                    for (int d = 0; d < headDim; d++) {
                        s += q[p][head * headDim + d] * keys[j][kv * headDim + d];
                    }
                    score[j] = s / Math.sqrt(headDim);
                    max = Math.max(max, score[j]);
                }
                double total = 0;
                for (int j = 0; j < keys.length; j++) {
                    score[j] = Math.exp(score[j] - max);
                    total += score[j];
                }
                for (int j = 0; j < keys.length; j++) {
                    double a = score[j] / total;
                    for (int d = 0; d < headDim; d++) {
                        attended[p][head * headDim + d] += a * values[j][kv * headDim + d];
                    }
                }
            }
        }
        return attended;
    }

    /**
     * The rest of a decoder layer for one row, in place on {@code h}: the attention output projection and its
     * residual, then RMSNorm, the SwiGLU MLP (silu(gate) * up, down) and its residual. {@code weight} looks up
     * layer {@code pre}'s tensors by their Hugging Face names; o_proj and the MLP have no biases.
     */
    static void outputAndMlp(double[] h, double[] attended, Function<String, double[]> weight, String pre,
                             int hidden, double eps) {
        int dim = h.length;
        double[] o = linear(weight.apply(pre + "self_attn.o_proj.weight"), attended, dim);
        for (int i = 0; i < dim; i++) {
            h[i] += o[i];
        }
        double[] normed = rmsnorm(h, weight.apply(pre + "post_attention_layernorm.weight"), eps);
        double[] gate = linear(weight.apply(pre + "mlp.gate_proj.weight"), normed, hidden);
        double[] up = linear(weight.apply(pre + "mlp.up_proj.weight"), normed, hidden);
        for (int i = 0; i < hidden; i++) {
            gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
        }
        double[] down = linear(weight.apply(pre + "mlp.down_proj.weight"), gate, dim);
        for (int i = 0; i < dim; i++) {
            h[i] += down[i];
        }
    }
}
