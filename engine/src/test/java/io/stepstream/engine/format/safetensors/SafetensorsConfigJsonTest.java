package io.stepstream.engine.format.safetensors;

import io.stepstream.engine.ModelLoadException;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** config.json to a typed record: defaults where Hugging Face has them, named errors where it does not. */
class SafetensorsConfigJsonTest {
    private static final String MINIMAL = """
            {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 32, "rms_norm_eps": 1e-6}""";

    private static HfConfig parse(String json) {
        return HfConfig.parse("config.json", json.getBytes(StandardCharsets.UTF_8));
    }

    private static void fails(String json, String message) {
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> parse(json));
        assertEquals("config.json: " + message, e.getMessage());
    }

    @Test
    void shippedDiffusionConfig() {
        HfConfig c = HfConfig.read(java.nio.file.Path.of(System.getProperty("user.dir"))
                .resolve("src/main/resources/io/stepstream/engine/models/tinystories-dlm/config.json"));
        assertEquals("llada-tiny", c.modelType());
        assertEquals(256, c.hiddenSize());
        assertEquals(688, c.intermediateSize());
        assertEquals(5, c.numHiddenLayers());
        assertEquals(8, c.numAttentionHeads());
        assertEquals(4, c.numKeyValueHeads());
        assertEquals(32, c.headDim());
        assertEquals(513, c.vocabSize());
        assertEquals(512, c.tokenizerVocabSize());
        assertEquals(256, c.maxPositionEmbeddings());
        assertEquals(1e-5, c.rmsNormEps());
        assertEquals(10000.0, c.ropeTheta());
        assertEquals(512, c.maskTokenId());
        assertEquals(1, c.bosTokenId());
        assertEquals(2, c.eosTokenId());
        assertEquals(Boolean.FALSE, c.causal());
        assertTrue(c.ropeInterleaved());
        assertFalse(c.tieWordEmbeddings());
    }

    @Test
    void defaults() {
        HfConfig c = parse(MINIMAL);
        assertEquals(4, c.numKeyValueHeads());
        assertEquals(16, c.headDim());
        assertEquals(10000.0, c.ropeTheta());
        assertEquals("silu", c.hiddenAct());
        assertNull(c.maskTokenId());
        assertNull(c.causal());
        assertFalse(c.ropeInterleaved());
    }

    @Test
    void missingAndMistypedKeysAreNamed() {
        fails(MINIMAL.replace("\"hidden_size\": 64, ", ""), "missing key hidden_size");
        fails(MINIMAL.replace(", \"rms_norm_eps\": 1e-6", ""), "missing key rms_norm_eps");
        fails(MINIMAL.replace("\"model_type\": \"llama\", ", ""), "missing key model_type");
        fails(MINIMAL.replace("\"vocab_size\": 100", "\"vocab_size\": null"), "missing key vocab_size");
        fails(MINIMAL.replace("\"vocab_size\": 100", "\"vocab_size\": \"100\""),
                "key vocab_size must be a positive integer, got \"100\"");
        fails(MINIMAL.replace("\"vocab_size\": 100", "\"vocab_size\": 0"),
                "key vocab_size must be a positive integer, got 0");
        fails(MINIMAL.replace("\"vocab_size\": 100", "\"vocab_size\": 1.5"),
                "key vocab_size must be a positive integer, got 1.5");
        fails(MINIMAL.replace("\"rms_norm_eps\": 1e-6", "\"rms_norm_eps\": -1"),
                "key rms_norm_eps must be a positive number, got -1");
        fails(MINIMAL.replace("}", ", \"causal\": \"no\"}"), "key causal must be true or false, got \"no\"");
        fails(MINIMAL.replace("}", ", \"mask_token_id\": -1}"), "key mask_token_id must be a non-negative integer, got -1");
        fails(MINIMAL.replace("\"hidden_size\": 64", "\"hidden_size\": 63"),
                "hidden_size 63 is not a multiple of num_attention_heads 4 and head_dim is not given");
        fails("[]", "config must be a JSON object");
        assertThrows(ModelLoadException.class, () -> parse("{"));
    }
}
