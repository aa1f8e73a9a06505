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

/**
 * A plain float64 Dream forward for the tests, written from Dream's model description (a Qwen2 decoder run without
 * a causal mask) rather than from DiffusionModel: its own config.json and safetensors reading, one canvas at a
 * time, every loop spelled out. Qwen2 parts: q/k/v projections with biases (o without), Hugging Face's rotate-half
 * RoPE (element d pairs with d + headDim/2, frequency theta^(-2d/headDim)), grouped KV heads, RMSNorm, SwiGLU, and
 * lm_head or the tied embedding. {@link #shiftedLogits} applies Dream's shift: row i is the output at i - 1, row 0
 * its own.
 */
final class ReferenceDream {
    final int dim;
    final int hidden;
    final int layers;
    final int heads;
    final int kvHeads;
    final int headDim;
    final int vocab;
    final int maskId;
    final double eps;
    final double theta;
    final boolean tied;
    private final Map<String, double[]> w = new HashMap<>();

    ReferenceDream(Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        JsonNode cfg = json.readTree(dir.resolve("config.json").toFile());
        if (!cfg.get("model_type").asText().equals("Dream")) {
            throw new IllegalStateException("not a Dream config: " + cfg.get("model_type"));
        }
        dim = cfg.get("hidden_size").asInt();
        hidden = cfg.get("intermediate_size").asInt();
        layers = cfg.get("num_hidden_layers").asInt();
        heads = cfg.get("num_attention_heads").asInt();
        kvHeads = cfg.get("num_key_value_heads").asInt();
        headDim = dim / heads;
        vocab = cfg.get("vocab_size").asInt();
        maskId = cfg.get("mask_token_id").asInt();
        eps = cfg.get("rms_norm_eps").asDouble();
        theta = cfg.get("rope_theta").asDouble();
        tied = cfg.get("tie_word_embeddings").asBoolean();
        byte[] bytes = Files.readAllBytes(dir.resolve("model.safetensors"));
        ByteBuffer file = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int headerLength = (int) file.getLong(0);
        JsonNode header = json.readTree(new String(bytes, 8, headerLength, StandardCharsets.UTF_8));
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
                values[i] = file.getFloat((int) (8 + headerLength + begin + 4L * i));
            }
            w.put(e.getKey(), values);
        }
    }

    private double[] weight(String name) {
        double[] v = w.get(name);
        if (v == null) {
            throw new IllegalStateException("no tensor " + name);
        }
        return v;
    }

    /** The logits Dream's sampler reads for every canvas position: row i = output(i - 1), row 0 = output(0). */
    double[][] shiftedLogits(int[] canvas) {
        double[][] out = outputs(canvas);
        double[][] shifted = new double[out.length][];
        shifted[0] = out[0];
        for (int i = 1; i < out.length; i++) {
            shifted[i] = out[i - 1];
        }
        return shifted;
    }

    /** The model's own output logits at every position (no shift), [n][vocab]. */
    double[][] outputs(int[] canvas) {
        int n = canvas.length;
        double[][] h = new double[n][dim];
        double[] emb = weight("model.embed_tokens.weight");
        for (int p = 0; p < n; p++) {
            for (int i = 0; i < dim; i++) {
                h[p][i] = emb[canvas[p] * dim + i];
            }
        }
        for (int l = 0; l < layers; l++) {
            String pre = "model.layers." + l + ".";
            double[][] q = new double[n][];
            double[][] k = new double[n][];
            double[][] v = new double[n][];
            for (int p = 0; p < n; p++) {
                double[] normed = rmsnorm(h[p], weight(pre + "input_layernorm.weight"));
                q[p] = affine(weight(pre + "self_attn.q_proj.weight"), weight(pre + "self_attn.q_proj.bias"), normed);
                k[p] = affine(weight(pre + "self_attn.k_proj.weight"), weight(pre + "self_attn.k_proj.bias"), normed);
                v[p] = affine(weight(pre + "self_attn.v_proj.weight"), weight(pre + "self_attn.v_proj.bias"), normed);
                rotateHalf(q[p], p);
                rotateHalf(k[p], p);
            }
            double[][] attended = new double[n][heads * headDim];
            for (int p = 0; p < n; p++) {
                for (int head = 0; head < heads; head++) {
                    int kv = head / (heads / kvHeads);
                    double[] score = new double[n];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < n; j++) { // bidirectional: every position of the canvas
                        double s = 0;
                        for (int d = 0; d < headDim; d++) {
                            s += q[p][head * headDim + d] * k[j][kv * headDim + d];
                        }
                        score[j] = s / Math.sqrt(headDim);
                        max = Math.max(max, score[j]);
                    }
                    double total = 0;
                    for (int j = 0; j < n; j++) {
                        score[j] = Math.exp(score[j] - max);
                        total += score[j];
                    }
                    for (int j = 0; j < n; j++) {
                        for (int d = 0; d < headDim; d++) {
                            attended[p][head * headDim + d] += score[j] / total * v[j][kv * headDim + d];
                        }
                    }
                }
            }
            for (int p = 0; p < n; p++) {
                double[] o = affine(weight(pre + "self_attn.o_proj.weight"), null, attended[p]);
                for (int i = 0; i < dim; i++) {
                    h[p][i] += o[i];
                }
                double[] normed = rmsnorm(h[p], weight(pre + "post_attention_layernorm.weight"));
                double[] gate = affine(weight(pre + "mlp.gate_proj.weight"), null, normed);
                double[] up = affine(weight(pre + "mlp.up_proj.weight"), null, normed);
                double[] act = new double[hidden];
                for (int i = 0; i < hidden; i++) {
                    act[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                double[] down = affine(weight(pre + "mlp.down_proj.weight"), null, act);
                for (int i = 0; i < dim; i++) {
                    h[p][i] += down[i];
                }
            }
        }
        double[] head = tied ? weight("model.embed_tokens.weight") : weight("lm_head.weight");
        double[][] out = new double[n][];
        for (int p = 0; p < n; p++) {
            out[p] = affine(head, null, rmsnorm(h[p], weight("model.norm.weight")));
        }
        return out;
    }

    /** y = W x + b with W stored [out][in] (b may be null). */
    private static double[] affine(double[] weight, double[] bias, double[] x) {
        int in = x.length;
        int outs = weight.length / in;
        double[] y = new double[outs];
        for (int r = 0; r < outs; r++) {
            double s = bias == null ? 0 : bias[r];
            for (int c = 0; c < in; c++) {
                s += weight[r * in + c] * x[c];
            }
            y[r] = s;
        }
        return y;
    }

    private double[] rmsnorm(double[] x, double[] gain) {
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

    /** x * cos + rotate_half(x) * sin per head, rotate_half(x) = (-x2, x1) over the head's two halves. */
    private void rotateHalf(double[] vec, int pos) {
        int half = headDim / 2;
        for (int head = 0; head < vec.length / headDim; head++) {
            int o = head * headDim;
            double[] rotated = new double[headDim];
            for (int d = 0; d < headDim; d++) {
                double x = vec[o + d];
                double partner = d < half ? -vec[o + d + half] : vec[o + d - half];
                double angle = pos * Math.pow(theta, -2.0 * (d % half) / headDim);
                rotated[d] = x * Math.cos(angle) + partner * Math.sin(angle);
            }
            System.arraycopy(rotated, 0, vec, o, headDim);
        }
    }
}
