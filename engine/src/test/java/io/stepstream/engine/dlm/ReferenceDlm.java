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
 * A deliberately plain float64 transcription of the tinystories-dlm forward pass, written from the model card
 * rather than from the production code: its own safetensors and config.json reading, one canvas at a time, every
 * loop spelled out, all arithmetic in double.
 */
final class ReferenceDlm {
    final int dim;
    final int hidden;
    final int layers;
    final int heads;
    final int kvHeads;
    final int headDim;
    final int vocab;
    final int context;
    final int maskId;
    final double eps;
    final double theta;
    private final Map<String, double[]> w = new HashMap<>();

    ReferenceDlm(Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        JsonNode cfg = json.readTree(dir.resolve("config.json").toFile());
        dim = cfg.get("hidden_size").asInt();
        hidden = cfg.get("intermediate_size").asInt();
        layers = cfg.get("num_hidden_layers").asInt();
        heads = cfg.get("num_attention_heads").asInt();
        kvHeads = cfg.get("num_key_value_heads").asInt();
        headDim = cfg.get("head_dim").asInt();
        vocab = cfg.get("vocab_size").asInt();
        context = cfg.get("max_position_embeddings").asInt();
        maskId = cfg.get("mask_token_id").asInt();
        eps = cfg.get("rms_norm_eps").asDouble();
        theta = cfg.get("rope_theta").asDouble();
        // safetensors: u64 LE header length, JSON header, then the raw little-endian data.
        ByteBuffer file = ByteBuffer.wrap(Files.readAllBytes(dir.resolve("model.safetensors"))).order(ByteOrder.LITTLE_ENDIAN);
        int headerLength = (int) file.getLong(0);
        JsonNode header = json.readTree(new String(file.array(), 8, headerLength, StandardCharsets.UTF_8));
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

    double[] weight(String name) {
        double[] v = w.get(name);
        if (v == null) {
            throw new IllegalStateException("no tensor " + name);
        }
        return v;
    }

    /** Which keys a query may see, per layer and head (block-sparse attention tests). */
    interface KeyMask {
        boolean keep(int layer, int head, int query, int key);
    }

    /** Logits of canvas positions [from, to) after a full bidirectional pass over the canvas; [to-from][vocab]. */
    double[][] logits(int[] canvas, int from, int to) {
        return logits(canvas, from, to, (layer, head, query, key) -> true);
    }

    /** Sees each layer's queries and keys after RoPE: [position][heads * headDim], [position][kvHeads * headDim]. */
    interface QueryKeySink {
        void layer(int layer, double[][] q, double[][] k);
    }

    /** As {@link #logits(int[], int, int)}, with the keys {@code mask} refuses left out of each softmax. */
    double[][] logits(int[] canvas, int from, int to, KeyMask mask) {
        return logits(canvas, from, to, mask, (layer, q, k) -> { });
    }

    /** As above, handing each layer's rotated queries and keys to {@code sink}. */
    double[][] logits(int[] canvas, int from, int to, KeyMask mask, QueryKeySink sink) {
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
                q[p] = linear(weight(pre + "self_attn.q_proj.weight"), normed, heads * headDim);
                k[p] = linear(weight(pre + "self_attn.k_proj.weight"), normed, kvHeads * headDim);
                v[p] = linear(weight(pre + "self_attn.v_proj.weight"), normed, kvHeads * headDim);
                rope(q[p], p);
                rope(k[p], p);
            }
            sink.layer(l, q, k);
            double[][] attended = new double[n][heads * headDim];
            for (int p = 0; p < n; p++) {
                for (int head = 0; head < heads; head++) {
                    int kv = head / (heads / kvHeads);
                    double[] score = new double[n];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < n; j++) { // no causal mask; only the test's key mask, if any
                        if (!mask.keep(l, head, p, j)) {
                            score[j] = Double.NEGATIVE_INFINITY;
                            continue;
                        }
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
                        double a = score[j] / total;
                        for (int d = 0; d < headDim; d++) {
                            attended[p][head * headDim + d] += a * v[j][kv * headDim + d];
                        }
                    }
                }
            }
            for (int p = 0; p < n; p++) {
                double[] o = linear(weight(pre + "self_attn.o_proj.weight"), attended[p], dim);
                for (int i = 0; i < dim; i++) {
                    h[p][i] += o[i];
                }
                double[] normed = rmsnorm(h[p], weight(pre + "post_attention_layernorm.weight"));
                double[] gate = linear(weight(pre + "mlp.gate_proj.weight"), normed, hidden);
                double[] up = linear(weight(pre + "mlp.up_proj.weight"), normed, hidden);
                for (int i = 0; i < hidden; i++) {
                    gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                }
                double[] down = linear(weight(pre + "mlp.down_proj.weight"), gate, dim);
                for (int i = 0; i < dim; i++) {
                    h[p][i] += down[i];
                }
            }
        }
        double[][] out = new double[to - from][];
        for (int p = from; p < to; p++) {
            out[p - from] = linear(weight("lm_head.weight"), rmsnorm(h[p], weight("model.norm.weight")), vocab);
        }
        return out;
    }

    /** y = W x with W stored [out][in]. */
    private static double[] linear(double[] weight, double[] x, int out) {
        int in = x.length;
        double[] y = new double[out];
        for (int r = 0; r < out; r++) {
            double s = 0;
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

    /** Interleaved pairs (2i, 2i+1) of each head, angle pos * theta^(-2i/headDim). */
    private void rope(double[] vec, int pos) {
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
}
