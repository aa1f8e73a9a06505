package io.stepstream.engine.llama;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.format.gguf.GgufFile;
import io.stepstream.engine.format.gguf.Quants;
import io.stepstream.engine.format.gguf.TensorInfo;
import io.stepstream.engine.tensor.WeightMatrix;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reads Llama and Qwen2 weights from a GGUF file as llama.cpp writes them: the family from
 * {@code general.architecture}, the shape from the {@code <arch>.*} keys, the tensors by llama.cpp's names
 * ({@code token_embd}, {@code blk.N.attn_q} ..., {@code output_norm}, {@code output}; no {@code output} means
 * the classifier is tied to the embedding). Matrices stay in the mapping in their file encoding; the file must
 * stay open while the weights are used. Every missing key or tensor and every wrong shape is a
 * {@link ModelLoadException} naming the file and the key or tensor.
 */
public final class GgufLlamaLoader {
    private GgufLlamaLoader() {
    }

    /** The family named by general.architecture; anything else is refused with the supported list. */
    public static LlamaFamily family(GgufFile f) {
        String arch = f.getString("general.architecture");
        LlamaFamily family = LlamaFamily.byId(arch);
        if (family == null) {
            throw new ModelLoadException(f.name() + ": general.architecture '" + arch + "' is not supported"
                    + " (supported: " + Arrays.stream(LlamaFamily.values()).map(LlamaFamily::id).toList() + ")");
        }
        return family;
    }

    public static LlamaWeights read(GgufFile f) {
        LlamaFamily family = family(f);
        String a = family.id() + ".";
        int dim = positive(f, a + "embedding_length");
        int heads = positive(f, a + "attention.head_count");
        int kvHeads = f.containsKey(a + "attention.head_count_kv") ? positive(f, a + "attention.head_count_kv") : heads;
        int layers = positive(f, a + "block_count");
        int hidden = positive(f, a + "feed_forward_length");
        int context = positive(f, a + "context_length");
        float eps = f.getFloat(a + "attention.layer_norm_rms_epsilon");
        if (!(eps > 0)) {
            throw new ModelLoadException(f.name() + ": metadata '" + a + "attention.layer_norm_rms_epsilon' must be"
                    + " positive, got " + eps);
        }
        float theta = f.getFloat(a + "rope.freq_base", 10000f);
        if (!(theta > 0)) {
            throw new ModelLoadException(f.name() + ": metadata '" + a + "rope.freq_base' must be positive, got "
                    + theta);
        }
        if (dim % heads != 0 || heads % kvHeads != 0) {
            throw new ModelLoadException(f.name() + ": " + a + "embedding_length " + dim + " must divide into "
                    + a + "attention.head_count " + heads + " heads, and those into " + kvHeads + " kv heads");
        }
        int headSize = dim / heads;
        if (f.containsKey(a + "rope.dimension_count") && f.getInt(a + "rope.dimension_count") != headSize) {
            throw new ModelLoadException(f.name() + ": metadata '" + a + "rope.dimension_count' is "
                    + f.getInt(a + "rope.dimension_count") + "; only RoPE over the whole head (" + headSize
                    + ") is supported");
        }
        String scaling = f.getString(a + "rope.scaling.type", "none");
        if (!scaling.equals("none")) {
            throw new ModelLoadException(f.name() + ": metadata '" + a + "rope.scaling.type' is '" + scaling
                    + "'; only none (and Llama 3 scaling through rope_freqs.weight) is supported");
        }
        TensorInfo embd = f.tensor("token_embd.weight");
        if (embd.nDims() != 2 || embd.dim(0) != dim) {
            throw shape(f, embd, "[" + dim + ", vocab]");
        }
        int vocab = checkedInt(f, embd, embd.dim(1));
        if (f.containsKey(a + "vocab_size") && f.getInt(a + "vocab_size") != vocab) {
            throw new ModelLoadException(f.name() + ": metadata '" + a + "vocab_size' is " + f.getInt(a + "vocab_size")
                    + " but token_embd.weight has " + vocab + " rows");
        }
        boolean tied = !f.hasTensor("output.weight");
        ModelConfig config;
        try {
            config = new ModelConfig(dim, hidden, layers, heads, kvHeads, vocab, context, eps, theta, tied);
        } catch (IllegalArgumentException e) {
            throw new ModelLoadException(f.name() + ": " + e.getMessage(), e);
        }
        int kvDim = config.kvDim();
        WeightMatrix embedding = matrix(f, "token_embd.weight", vocab, dim);
        List<LlamaWeights.Layer> blocks = new ArrayList<>(layers);
        for (int l = 0; l < layers; l++) {
            String b = "blk." + l + ".";
            boolean bias = family.qkvBias();
            blocks.add(new LlamaWeights.Layer(
                    vector(f, b + "attn_norm.weight", dim),
                    matrix(f, b + "attn_q.weight", dim, dim),
                    matrix(f, b + "attn_k.weight", kvDim, dim),
                    matrix(f, b + "attn_v.weight", kvDim, dim),
                    bias ? vector(f, b + "attn_q.bias", dim) : null,
                    bias ? vector(f, b + "attn_k.bias", kvDim) : null,
                    bias ? vector(f, b + "attn_v.bias", kvDim) : null,
                    matrix(f, b + "attn_output.weight", dim, dim),
                    vector(f, b + "ffn_norm.weight", dim),
                    matrix(f, b + "ffn_gate.weight", hidden, dim),
                    matrix(f, b + "ffn_up.weight", hidden, dim),
                    matrix(f, b + "ffn_down.weight", dim, hidden)));
        }
        float[] ropeFreqs = f.hasTensor("rope_freqs.weight") ? vector(f, "rope_freqs.weight", headSize / 2) : null;
        WeightMatrix output = tied ? embedding : matrix(f, "output.weight", vocab, dim);
        RopeLayout rope = family == LlamaFamily.LLAMA ? RopeLayout.INTERLEAVED : RopeLayout.NEOX;
        try {
            return new LlamaWeights(config, family, rope, ropeFreqs, embedding, blocks,
                    vector(f, "output_norm.weight", dim), output);
        } catch (IllegalArgumentException e) {
            throw new ModelLoadException(f.name() + ": " + e.getMessage(), e);
        }
    }

    private static int positive(GgufFile f, String key) {
        int v = f.getInt(key);
        if (v <= 0) {
            throw new ModelLoadException(f.name() + ": metadata '" + key + "' must be positive, got " + v);
        }
        return v;
    }

    /** A [rows x cols] matrix: GGUF dims {cols, rows}, in the file's encoding, over the mapping. */
    static WeightMatrix matrix(GgufFile f, String name, int rows, int cols) {
        TensorInfo t = f.tensor(name);
        if (t.nDims() != 2 || t.dim(0) != cols || t.dim(1) != rows) {
            throw shape(f, t, "[" + cols + ", " + rows + "]");
        }
        try {
            return WeightMatrix.of(t.type(), f.tensorData(t), rows, cols);
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            throw new ModelLoadException(f.name() + ": tensor '" + name + "': " + e.getMessage(), e);
        }
    }

    /** A 1-D tensor of {@code n} elements, decoded to float32. */
    static float[] vector(GgufFile f, String name, int n) {
        TensorInfo t = f.tensor(name);
        if (t.nDims() != 1 || t.dim(0) != n) {
            throw shape(f, t, "[" + n + "]");
        }
        return Quants.dequantize(t.type(), f.tensorData(t));
    }

    private static int checkedInt(GgufFile f, TensorInfo t, long v) {
        if (v < 1 || v > Integer.MAX_VALUE - 16) {
            throw new ModelLoadException(f.name() + ": tensor '" + t.name() + "' has an unusable dimension " + v);
        }
        return (int) v;
    }

    private static ModelLoadException shape(GgufFile f, TensorInfo t, String expected) {
        return new ModelLoadException(f.name() + ": tensor '" + t.name() + "' has dims "
                + Arrays.toString(t.dims()) + " (" + t.type() + "), expected " + expected);
    }
}
