package io.stepstream.engine.format.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.engine.ModelLoadException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The keys of a Hugging Face {@code config.json} that a Llama-shaped transformer (causal or bidirectional) needs.
 * Shape keys are required (a missing one is an error naming it); the rest take Hugging Face's Llama defaults
 * where Hugging Face has one, else stay null (the model family decides whether it needs them).
 *
 * @param modelType             model_type (required)
 * @param hiddenSize            hidden_size
 * @param intermediateSize      intermediate_size (MLP inner width)
 * @param numHiddenLayers       num_hidden_layers
 * @param numAttentionHeads     num_attention_heads
 * @param numKeyValueHeads      num_key_value_heads, default num_attention_heads
 * @param headDim               head_dim, default hidden_size / num_attention_heads
 * @param vocabSize             vocab_size (rows of the embedding and of lm_head)
 * @param maxPositionEmbeddings max_position_embeddings (the context length)
 * @param ropeTheta             rope_theta, default 10000
 * @param rmsNormEps            rms_norm_eps (required: it changes every activation)
 * @param hiddenAct             hidden_act, default "silu"
 * @param tieWordEmbeddings     tie_word_embeddings, default false
 * @param attentionBias         attention_bias, default false
 * @param mlpBias               mlp_bias, default false
 * @param bosTokenId            bos_token_id or null
 * @param eosTokenId            eos_token_id or null
 * @param maskTokenId           mask_token_id or null (diffusion models)
 * @param tokenizerVocabSize    tokenizer_vocab_size or null (when the tokenizer has fewer ids than the model)
 * @param causal                causal or null (unstated)
 * @param ropeInterleaved       rope_interleaved, default false (Hugging Face's rotate_half layout)
 */
public record HfConfig(String modelType, int hiddenSize, int intermediateSize, int numHiddenLayers,
                       int numAttentionHeads, int numKeyValueHeads, int headDim, int vocabSize,
                       int maxPositionEmbeddings, double ropeTheta, double rmsNormEps, String hiddenAct,
                       boolean tieWordEmbeddings, boolean attentionBias, boolean mlpBias, Integer bosTokenId,
                       Integer eosTokenId, Integer maskTokenId, Integer tokenizerVocabSize, Boolean causal,
                       boolean ropeInterleaved) {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    public static HfConfig read(Path file) {
        try {
            return parse(file.toString(), Files.readAllBytes(file));
        } catch (IOException e) {
            throw new ModelLoadException(file + ": cannot read config: " + e, e);
        }
    }

    /** Parses config.json text; {@code file} names it in errors. */
    public static HfConfig parse(String file, byte[] json) {
        JsonNode root;
        try {
            root = JSON.readTree(new String(json, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new ModelLoadException(file + ": config is not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelLoadException(file + ": config must be a JSON object");
        }
        Keys k = new Keys(file, root);
        int hidden = k.positiveInt("hidden_size");
        int heads = k.positiveInt("num_attention_heads");
        Integer headDim = k.optionalPositiveInt("head_dim");
        if (headDim == null && hidden % heads != 0) {
            throw new ModelLoadException(file + ": hidden_size " + hidden + " is not a multiple of num_attention_heads "
                    + heads + " and head_dim is not given");
        }
        Integer kvHeads = k.optionalPositiveInt("num_key_value_heads");
        return new HfConfig(
                k.string("model_type"),
                hidden,
                k.positiveInt("intermediate_size"),
                k.positiveInt("num_hidden_layers"),
                heads,
                kvHeads == null ? heads : kvHeads,
                headDim == null ? hidden / heads : headDim,
                k.positiveInt("vocab_size"),
                k.positiveInt("max_position_embeddings"),
                k.optionalPositiveDouble("rope_theta", 10000.0),
                k.positiveDouble("rms_norm_eps"),
                k.optionalString("hidden_act", "silu"),
                k.optionalBoolean("tie_word_embeddings", false),
                k.optionalBoolean("attention_bias", false),
                k.optionalBoolean("mlp_bias", false),
                k.optionalNonNegativeInt("bos_token_id"),
                k.optionalNonNegativeInt("eos_token_id"),
                k.optionalNonNegativeInt("mask_token_id"),
                k.optionalPositiveInt("tokenizer_vocab_size"),
                k.optionalBoolean("causal"),
                k.optionalBoolean("rope_interleaved", false));
    }

    /** Typed access to the root object's keys, with errors that name the file, the key and what was wrong. */
    private record Keys(String file, JsonNode root) {
        private JsonNode required(String key) {
            JsonNode v = root.get(key);
            if (v == null || v.isNull()) {
                throw new ModelLoadException(file + ": missing key " + key);
            }
            return v;
        }

        private ModelLoadException wrongType(String key, String wanted, JsonNode v) {
            return new ModelLoadException(file + ": key " + key + " must be " + wanted + ", got " + v);
        }

        int positiveInt(String key) {
            return checkInt(key, required(key), 1, "a positive integer");
        }

        Integer optionalPositiveInt(String key) {
            JsonNode v = root.get(key);
            return v == null || v.isNull() ? null : checkInt(key, v, 1, "a positive integer");
        }

        Integer optionalNonNegativeInt(String key) {
            JsonNode v = root.get(key);
            return v == null || v.isNull() ? null : checkInt(key, v, 0, "a non-negative integer");
        }

        private int checkInt(String key, JsonNode v, int min, String wanted) {
            if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < min) {
                throw wrongType(key, wanted, v);
            }
            return v.asInt();
        }

        double positiveDouble(String key) {
            return checkDouble(key, required(key));
        }

        double optionalPositiveDouble(String key, double fallback) {
            JsonNode v = root.get(key);
            return v == null || v.isNull() ? fallback : checkDouble(key, v);
        }

        private double checkDouble(String key, JsonNode v) {
            if (!v.isNumber() || !(v.asDouble() > 0) || !Double.isFinite(v.asDouble())) {
                throw wrongType(key, "a positive number", v);
            }
            return v.asDouble();
        }

        String string(String key) {
            JsonNode v = required(key);
            if (!v.isTextual()) {
                throw wrongType(key, "a string", v);
            }
            return v.asText();
        }

        String optionalString(String key, String fallback) {
            JsonNode v = root.get(key);
            if (v == null || v.isNull()) {
                return fallback;
            }
            if (!v.isTextual()) {
                throw wrongType(key, "a string", v);
            }
            return v.asText();
        }

        boolean optionalBoolean(String key, boolean fallback) {
            Boolean b = optionalBoolean(key);
            return b == null ? fallback : b;
        }

        Boolean optionalBoolean(String key) {
            JsonNode v = root.get(key);
            if (v == null || v.isNull()) {
                return null;
            }
            if (!v.isBoolean()) {
                throw wrongType(key, "true or false", v);
            }
            return v.asBoolean();
        }
    }
}
