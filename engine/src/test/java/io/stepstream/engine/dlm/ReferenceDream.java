package io.stepstream.engine.dlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
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
    private final Map<String, double[]> w;

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
        w = Float64Reference.readF32Safetensors(dir.resolve("model.safetensors"));
    }

    private double[] weight(String name) {
        return Float64Reference.tensor(w, name);
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
            double[][] attended = Float64Reference.attend(q, k, v, heads, kvHeads, headDim, null);
            for (int p = 0; p < n; p++) {
                Float64Reference.outputAndMlp(h[p], attended[p], this::weight, pre, hidden, eps);
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
        return Float64Reference.affine(weight, bias, x, weight.length / x.length);
    }

    private double[] rmsnorm(double[] x, double[] gain) {
        return Float64Reference.rmsnorm(x, gain, eps);
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
