package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.format.safetensors.SafetensorsCheckpoint;
import io.stepstream.engine.format.safetensors.SafetensorsTensor;

import java.util.LinkedHashSet;
import java.util.Set;

/**
 * The float32 weights of a bidirectional Llama or Qwen2, row-major {@code [out][in]} as Hugging Face stores them
 * ({@code y = x W^T}), so each output row is one contiguous dot product. {@code bq}, {@code bk}, {@code bv} are the
 * per-layer q/k/v biases of a Qwen2 (Dream), or null when the model has none (LLaDA).
 */
public record DiffusionWeights(ModelConfig config, float[] embedding, float[][] attentionNorm, float[][] wq,
                        float[][] wk, float[][] wv, float[][] wo, float[][] ffnNorm, float[][] gate, float[][] up,
                        float[][] down, float[] finalNorm, float[] lmHead, float[][] bq, float[][] bk,
                        float[][] bv) {

    /** Weights without attention biases (a bidirectional Llama). */
    public DiffusionWeights(ModelConfig config, float[] embedding, float[][] attentionNorm, float[][] wq, float[][] wk,
                     float[][] wv, float[][] wo, float[][] ffnNorm, float[][] gate, float[][] up, float[][] down,
                     float[] finalNorm, float[] lmHead) {
        this(config, embedding, attentionNorm, wq, wk, wv, wo, ffnNorm, gate, up, down, finalNorm, lmHead, null, null,
                null);
    }

    public boolean hasQkvBias() {
        return bq != null;
    }

    /** Reads and shape-checks every tensor by its Hugging Face Llama name; leftover tensors are an error too. */
    static DiffusionWeights read(SafetensorsCheckpoint ckpt, ModelConfig c) {
        return read(ckpt, c, false);
    }

    /**
     * As {@link #read(SafetensorsCheckpoint, ModelConfig)}; with {@code qkvBias} (Qwen2, so Dream) the
     * {@code self_attn.{q,k,v}_proj.bias} vectors of every layer are required too.
     */
    static DiffusionWeights read(SafetensorsCheckpoint ckpt, ModelConfig c, boolean qkvBias) {
        Set<String> unused = new LinkedHashSet<>(ckpt.tensors().keySet());
        int layers = c.nLayers();
        long dim = c.dim();
        long kvDim = c.kvDim();
        long hidden = c.hiddenDim();
        long vocab = c.vocabSize();
        Reader r = new Reader(ckpt, unused);
        float[] embedding = r.take("model.embed_tokens.weight", vocab, dim);
        float[][] attNorm = new float[layers][];
        float[][] wq = new float[layers][];
        float[][] wk = new float[layers][];
        float[][] wv = new float[layers][];
        float[][] wo = new float[layers][];
        float[][] ffnNorm = new float[layers][];
        float[][] gate = new float[layers][];
        float[][] up = new float[layers][];
        float[][] down = new float[layers][];
        float[][] bq = qkvBias ? new float[layers][] : null;
        float[][] bk = qkvBias ? new float[layers][] : null;
        float[][] bv = qkvBias ? new float[layers][] : null;
        for (int l = 0; l < layers; l++) {
            String p = "model.layers." + l + ".";
            attNorm[l] = r.take(p + "input_layernorm.weight", dim);
            wq[l] = r.take(p + "self_attn.q_proj.weight", dim, dim);
            wk[l] = r.take(p + "self_attn.k_proj.weight", kvDim, dim);
            wv[l] = r.take(p + "self_attn.v_proj.weight", kvDim, dim);
            wo[l] = r.take(p + "self_attn.o_proj.weight", dim, dim);
            ffnNorm[l] = r.take(p + "post_attention_layernorm.weight", dim);
            gate[l] = r.take(p + "mlp.gate_proj.weight", hidden, dim);
            up[l] = r.take(p + "mlp.up_proj.weight", hidden, dim);
            down[l] = r.take(p + "mlp.down_proj.weight", dim, hidden);
            if (qkvBias) {
                bq[l] = r.take(p + "self_attn.q_proj.bias", dim);
                bk[l] = r.take(p + "self_attn.k_proj.bias", kvDim);
                bv[l] = r.take(p + "self_attn.v_proj.bias", kvDim);
            }
        }
        float[] norm = r.take("model.norm.weight", dim);
        float[] lmHead;
        if (c.sharedClassifier()) {
            lmHead = embedding;
            if (ckpt.contains("lm_head.weight")) {
                throw new ModelLoadException(ckpt.name() + ": tie_word_embeddings is true but the checkpoint also"
                        + " has lm_head.weight; which one is meant?");
            }
        } else {
            lmHead = r.take("lm_head.weight", vocab, dim);
        }
        if (!unused.isEmpty()) {
            throw new ModelLoadException(ckpt.name() + ": tensors this model does not use (biases or a different"
                    + " architecture?): " + unused);
        }
        return new DiffusionWeights(c, embedding, attNorm, wq, wk, wv, wo, ffnNorm, gate, up, down, norm, lmHead, bq, bk,
                bv);
    }

    private record Reader(SafetensorsCheckpoint ckpt, Set<String> unused) {
        float[] take(String name, long... shape) {
            SafetensorsTensor t = ckpt.tensor(name).requireShape(shape);
            unused.remove(name);
            return t.toFloats();
        }
    }
}
