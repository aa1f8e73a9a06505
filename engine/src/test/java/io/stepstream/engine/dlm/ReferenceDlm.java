package io.stepstream.engine.dlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
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
    private final Map<String, double[]> w;

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
        w = Float64Reference.readF32Safetensors(dir.resolve("model.safetensors"));
    }

    double[] weight(String name) {
        return Float64Reference.tensor(w, name);
    }

    /** Which keys a query may see, per layer and head (block-sparse attention tests). */
    interface KeyMask {
        boolean keep(int layer, int head, int query, int key);
    }

    /** Logits of canvas positions [from, to) after a full bidirectional pass over the canvas; [to-from][vocab]. */
    double[][] logits(int[] canvas, int from, int to) {
        return logits(canvas, from, to, (layer, head, query, key) -> true);
    }

    /** As {@link #logits(int[], int, int)}, with the keys {@code mask} refuses left out of each softmax. */
    double[][] logits(int[] canvas, int from, int to, KeyMask mask) {
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
            int layer = l;
            double[][] attended = Float64Reference.attend(q, k, v, heads, kvHeads, headDim,
                    (head, query, key) -> mask.keep(layer, head, query, key));
            for (int p = 0; p < n; p++) {
                Float64Reference.outputAndMlp(h[p], attended[p], this::weight, pre, hidden, eps);
            }
        }
        double[][] out = new double[to - from][];
        for (int p = from; p < to; p++) {
            out[p - from] = linear(weight("lm_head.weight"), rmsnorm(h[p], weight("model.norm.weight")), vocab);
        }
        return out;
    }

    private static double[] linear(double[] weight, double[] x, int out) {
        return Float64Reference.linear(weight, x, out);
    }

    private double[] rmsnorm(double[] x, double[] gain) {
        return Float64Reference.rmsnorm(x, gain, eps);
    }

    /** Interleaved pairs (2i, 2i+1) of each head, angle pos * theta^(-2i/headDim). */
    private void rope(double[] vec, int pos) {
        Float64Reference.ropeInterleaved(vec, pos, headDim, theta);
    }
}
