package io.stepstream.engine.llama;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.format.safetensors.HfConfig;
import io.stepstream.engine.format.safetensors.SafetensorsCheckpoint;
import io.stepstream.engine.format.safetensors.SafetensorsTensor;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tensor.WeightMatrix;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reads Llama and Qwen2 weights from a Hugging Face checkpoint: config.json for the family
 * ({@code architectures}, else {@code model_type}), the shape and Llama 3 {@code rope_scaling}; tensors by
 * Hugging Face's names ({@code model.embed_tokens}, {@code model.layers.N.self_attn.q_proj} ...,
 * {@code model.norm}, {@code lm_head}, or the embedding when {@code tie_word_embeddings}). F32, F16 and BF16
 * matrices stay in the mapping as they are; RoPE is Hugging Face's rotate-half layout unless the config says
 * {@code rope_interleaved}.
 */
public final class SafetensorsLlamaLoader {
    private static final ObjectMapper JSON = new ObjectMapper();

    private SafetensorsLlamaLoader() {
    }

    /** The family config.json names; {@code file} names config.json in errors. */
    public static LlamaFamily family(String file, byte[] configJson, HfConfig config) {
        JsonNode root = tree(file, configJson);
        JsonNode archs = root.get("architectures");
        LlamaFamily byType = LlamaFamily.byId(config.modelType());
        if (archs != null && !archs.isNull()) {
            if (!archs.isArray() || archs.isEmpty() || !archs.get(0).isTextual()) {
                throw new ModelLoadException(file + ": key architectures must be a non-empty array of strings");
            }
            String arch = archs.get(0).asText();
            LlamaFamily family = LlamaFamily.byHfArchitecture(arch);
            if (family == null) {
                throw new ModelLoadException(file + ": architectures " + arch + " is not supported (supported: "
                        + Arrays.stream(LlamaFamily.values()).map(LlamaFamily::hfArchitecture).toList() + ")");
            }
            if (byType != null && byType != family) {
                throw new ModelLoadException(file + ": architectures " + arch + " contradicts model_type "
                        + config.modelType());
            }
            return family;
        }
        if (byType == null) {
            throw new ModelLoadException(file + ": model_type " + config.modelType() + " is not supported (supported: "
                    + Arrays.stream(LlamaFamily.values()).map(LlamaFamily::id).toList() + ")");
        }
        return byType;
    }

    /**
     * The weights of {@code checkpoint} described by config.json ({@code configFile} names it in errors).
     * The checkpoint must stay open while the weights are used.
     */
    public static LlamaWeights read(String configFile, byte[] configJson, SafetensorsCheckpoint checkpoint) {
        HfConfig hf = HfConfig.parse(configFile, configJson);
        LlamaFamily family = family(configFile, configJson, hf);
        int dim = hf.hiddenSize();
        if (hf.headDim() * hf.numAttentionHeads() != dim) {
            throw new ModelLoadException(configFile + ": head_dim " + hf.headDim() + " x num_attention_heads "
                    + hf.numAttentionHeads() + " must equal hidden_size " + dim);
        }
        if (!hf.hiddenAct().equals("silu")) {
            throw new ModelLoadException(configFile + ": hidden_act " + hf.hiddenAct() + " is not supported (silu)");
        }
        if (hf.mlpBias()) {
            throw new ModelLoadException(configFile + ": mlp_bias true is not supported");
        }
        if (hf.attentionBias() && !family.qkvBias()) {
            throw new ModelLoadException(configFile + ": attention_bias true is not supported for " + family.id());
        }
        ModelConfig config;
        try {
            config = new ModelConfig(dim, hf.intermediateSize(), hf.numHiddenLayers(), hf.numAttentionHeads(),
                    hf.numKeyValueHeads(), hf.vocabSize(), hf.maxPositionEmbeddings(), (float) hf.rmsNormEps(),
                    (float) hf.ropeTheta(), hf.tieWordEmbeddings());
        } catch (IllegalArgumentException e) {
            throw new ModelLoadException(configFile + ": " + e.getMessage(), e);
        }
        float[] ropeFactors = ropeScaling(configFile, tree(configFile, configJson), config);
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        int vocab = config.vocabSize();
        Tensors t = new Tensors(checkpoint);
        WeightMatrix embedding = t.matrix("model.embed_tokens.weight", vocab, dim);
        List<LlamaWeights.Layer> layers = new ArrayList<>();
        for (int l = 0; l < config.nLayers(); l++) {
            String p = "model.layers." + l + ".";
            boolean bias = family.qkvBias();
            layers.add(new LlamaWeights.Layer(
                    t.vector(p + "input_layernorm.weight", dim),
                    t.matrix(p + "self_attn.q_proj.weight", dim, dim),
                    t.matrix(p + "self_attn.k_proj.weight", kvDim, dim),
                    t.matrix(p + "self_attn.v_proj.weight", kvDim, dim),
                    bias ? t.vector(p + "self_attn.q_proj.bias", dim) : null,
                    bias ? t.vector(p + "self_attn.k_proj.bias", kvDim) : null,
                    bias ? t.vector(p + "self_attn.v_proj.bias", kvDim) : null,
                    t.matrix(p + "self_attn.o_proj.weight", dim, dim),
                    t.vector(p + "post_attention_layernorm.weight", dim),
                    t.matrix(p + "mlp.gate_proj.weight", hidden, dim),
                    t.matrix(p + "mlp.up_proj.weight", hidden, dim),
                    t.matrix(p + "mlp.down_proj.weight", dim, hidden)));
        }
        WeightMatrix output = config.sharedClassifier() ? embedding : t.matrix("lm_head.weight", vocab, dim);
        RopeLayout rope = hf.ropeInterleaved() ? RopeLayout.INTERLEAVED : RopeLayout.NEOX;
        try {
            return new LlamaWeights(config, family, rope, ropeFactors, embedding, layers,
                    t.vector("model.norm.weight", dim), output);
        } catch (IllegalArgumentException e) {
            throw new ModelLoadException(checkpoint.name() + ": " + e.getMessage(), e);
        }
    }

    /** Llama 3's rope_scaling as per-pair divisors; null without rope_scaling; other kinds are refused. */
    static float[] ropeScaling(String file, JsonNode root, ModelConfig config) {
        JsonNode s = root.get("rope_scaling");
        if (s == null || s.isNull()) {
            return null;
        }
        if (!s.isObject()) {
            throw new ModelLoadException(file + ": key rope_scaling must be an object or null");
        }
        JsonNode kind = s.has("rope_type") ? s.get("rope_type") : s.get("type");
        if (kind == null || !kind.isTextual()) {
            throw new ModelLoadException(file + ": missing key rope_scaling.rope_type");
        }
        if (kind.asText().equals("default")) {
            return null;
        }
        if (!kind.asText().equals("llama3")) {
            throw new ModelLoadException(file + ": rope_scaling.rope_type " + kind.asText()
                    + " is not supported (llama3, default)");
        }
        try {
            return RopeScaling.llama3Factors(config.ropeTheta(), config.headSize(), number(file, s, "factor"),
                    number(file, s, "low_freq_factor"), number(file, s, "high_freq_factor"),
                    number(file, s, "original_max_position_embeddings"));
        } catch (IllegalArgumentException e) {
            throw new ModelLoadException(file + ": rope_scaling: " + e.getMessage(), e);
        }
    }

    private static double number(String file, JsonNode s, String key) {
        JsonNode v = s.get(key);
        if (v == null || v.isNull()) {
            throw new ModelLoadException(file + ": missing key rope_scaling." + key);
        }
        if (!v.isNumber()) {
            throw new ModelLoadException(file + ": key rope_scaling." + key + " must be a number, got " + v);
        }
        return v.asDouble();
    }

    private static JsonNode tree(String file, byte[] json) {
        try {
            JsonNode root = JSON.readTree(json);
            if (root == null || !root.isObject()) {
                throw new ModelLoadException(file + ": config must be a JSON object");
            }
            return root;
        } catch (IOException e) {
            throw new ModelLoadException(file + ": config is not valid JSON: " + e.getMessage(), e);
        }
    }

    private record Tensors(SafetensorsCheckpoint checkpoint) {
        SafetensorsTensor get(String name) {
            if (!checkpoint.contains(name)) {
                throw new ModelLoadException(checkpoint.name() + ": missing tensor " + name);
            }
            return checkpoint.tensor(name);
        }

        WeightMatrix matrix(String name, int rows, int cols) {
            SafetensorsTensor t = get(name).requireShape(rows, cols);
            TensorType type = switch (t.dtype()) {
                case F32 -> TensorType.F32;
                case F16 -> TensorType.F16;
                case BF16 -> TensorType.BF16;
            };
            return WeightMatrix.of(type, t.data(), rows, cols);
        }

        float[] vector(String name, int n) {
            return get(name).requireShape(n).toFloats();
        }
    }
}
