package io.stepstream.engine.llama;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.Models;
import io.stepstream.engine.format.gguf.GgufFile;
import io.stepstream.engine.format.gguf.GgufValue;
import io.stepstream.engine.format.gguf.GgufWriter;
import io.stepstream.engine.format.gguf.TensorInfo;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Broken Llama files fail with one ModelLoadException naming the file and the key or tensor. */
class LlamaLoaderErrorTest {
    @TempDir
    Path dir;

    /** A copy of a good GGUF with metadata and tensors filtered or replaced. */
    private Path rewrite(Path good, String name, Predicate<String> keepKey, Map<String, GgufValue> replace,
                         Predicate<String> keepTensor, String reshape) throws IOException {
        Path out = dir.resolve(name + ".gguf");
        try (GgufFile f = GgufFile.open(good)) {
            GgufWriter w = new GgufWriter();
            f.metadata().forEach((k, v) -> {
                if (keepKey.test(k)) {
                    w.put(k, replace.getOrDefault(k, v));
                }
            });
            for (TensorInfo t : f.tensors()) {
                if (!keepTensor.test(t.name())) {
                    continue;
                }
                if (t.name().equals(reshape)) {
                    // same bytes, rows and columns swapped in the header
                    w.addTensor(t.name(), t.type(), new long[]{t.dim(1), t.dim(0)}, f.tensorData(t));
                } else {
                    w.addTensor(t.name(), t.type(), t.dims(), f.tensorData(t));
                }
            }
            w.write(out);
        }
        return out;
    }

    private void fails(Path file, String... mentions) {
        failsNaming(file, file, mentions);
    }

    private void failsNaming(Path load, Path named, String... mentions) {
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> Models.load(load.toString()).close());
        assertTrue(e.getMessage().contains(named.toString()), "names the file: " + e.getMessage());
        for (String m : mentions) {
            assertTrue(e.getMessage().contains(m), "mentions '" + m + "': " + e.getMessage());
        }
    }

    @Test
    void brokenGgufFilesNameTheKeyOrTensor() throws IOException {
        Path good = LlamaTestModels.write(dir, LlamaTestModels.Kind.QWEN2_UNTIED, TensorType.F32, 5);
        Models.load(good.toString()).close();
        fails(rewrite(good, "no-heads", k -> !k.equals("qwen2.attention.head_count"), Map.of(), t -> true, null),
                "qwen2.attention.head_count");
        fails(rewrite(good, "arch", k -> true, Map.of("general.architecture", new GgufValue.Text("gptneox")),
                t -> true, null), "gptneox", "not supported");
        fails(rewrite(good, "no-bias", k -> true, Map.of(), t -> !t.equals("blk.1.attn_k.bias"), null),
                "blk.1.attn_k.bias");
        fails(rewrite(good, "no-down", k -> true, Map.of(), t -> !t.equals("blk.0.ffn_down.weight"), null),
                "blk.0.ffn_down.weight");
        fails(rewrite(good, "shape", k -> true, Map.of(), t -> true, "blk.0.ffn_up.weight"),
                "blk.0.ffn_up.weight", "expected");
        fails(rewrite(good, "eps", k -> !k.endsWith("layer_norm_rms_epsilon"), Map.of(), t -> true, null),
                "layer_norm_rms_epsilon");
    }

    @Test
    void brokenSafetensorsFoldersNameTheKeyOrTensor() throws IOException {
        Path hf = dir.resolve("hf");
        Files.createDirectories(hf);
        Files.writeString(hf.resolve("config.json"), """
                {"architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 64,
                 "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 512,
                 "max_position_embeddings": 64, "rms_norm_eps": 1e-5}""");
        Files.write(hf.resolve("model.safetensors"), new byte[]{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'});
        failsNaming(hf.resolve("model.safetensors"), hf.resolve("config.json"), "MambaForCausalLM");
        Files.writeString(hf.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
                 "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 512,
                 "max_position_embeddings": 64}""");
        failsNaming(hf, hf.resolve("config.json"), "rms_norm_eps");
        Files.writeString(hf.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
                 "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 512,
                 "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
                 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0}}""");
        failsNaming(hf, hf.resolve("config.json"), "rope_scaling.high_freq_factor");
        Files.writeString(hf.resolve("config.json"), """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
                 "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 512,
                 "max_position_embeddings": 64, "rms_norm_eps": 1e-5}""");
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> Models.load(hf.toString()).close());
        assertTrue(e.getMessage().contains("model.embed_tokens.weight"), e.getMessage());
    }
}
