package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.format.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The batched float32 bidirectional forward against the plain float64 reference, on fresh random inputs. */
class DiffusionForwardTest {
    private static final double TOLERANCE = 1e-4;

    @Test
    void shippedModelMatchesTheReferenceOnRandomCanvases() {
        DiffusionModel m = DlmTestSupport.model();
        ReferenceDlm ref = DlmTestSupport.reference();
        compareOnRandomBatches(m, ref, new SplittableRandom(17), 3, 80);
    }

    @Test
    void randomWeightsWithWiderGroupsMatchTheReference(@TempDir Path dir) throws IOException {
        // 8 query heads share 2 KV heads (groups of 4), head_dim 8; fresh random weights.
        writeRandomModel(dir, new SplittableRandom(99), 64, 80, 2, 8, 2, 48);
        try (DiffusionModel m = Models.loadDiffusion(dir.toString(), ModelOptions.defaults().withComputeThreads(3)
                .withParallelThreshold(0))) {
            assertEquals(dir.getFileName().toString(), m.name());
            assertEquals(512, m.maskId());
            assertEquals(16, m.config().kvDim());
            compareOnRandomBatches(m, new ReferenceDlm(dir), new SplittableRandom(5), 4, 48);
        }
    }

    private static void compareOnRandomBatches(DiffusionModel m, ReferenceDlm ref, SplittableRandom r, int rounds,
                                               int maxLength) {
        int vocab = m.vocabSize();
        for (int round = 0; round < rounds; round++) {
            List<DenoiseInput> batch = new ArrayList<>();
            int n = 1 + r.nextInt(3);
            for (int i = 0; i < n; i++) {
                int len = 2 + r.nextInt(maxLength - 1);
                int[] tokens = new int[len];
                for (int p = 0; p < len; p++) {
                    tokens[p] = r.nextInt(3) == 0 ? m.maskId() : r.nextInt(vocab); // plenty of masks
                }
                tokens[0] = 1;
                int start = r.nextInt(len);
                batch.add(new DenoiseInput(tokens, start, 1 + r.nextInt(len - start)));
            }
            float[][] logits = new float[n][];
            for (int i = 0; i < n; i++) {
                logits[i] = new float[batch.get(i).logitsLength() * vocab];
            }
            m.forward(batch, logits);
            for (int i = 0; i < n; i++) {
                DenoiseInput in = batch.get(i);
                double[][] expected = ref.logits(in.tokens(), in.logitsStart(), in.logitsStart() + in.logitsLength());
                double maxDiff = 0;
                double maxRef = 0;
                for (int p = 0; p < in.logitsLength(); p++) {
                    for (int v = 0; v < vocab; v++) {
                        maxDiff = Math.max(maxDiff, Math.abs(logits[i][p * vocab + v] - expected[p][v]));
                        maxRef = Math.max(maxRef, Math.abs(expected[p][v]));
                    }
                }
                assertTrue(maxRef > 0.1, "reference logits are not trivially small");
                assertTrue(maxDiff / maxRef < TOLERANCE, "round " + round + " input " + i + ": relative error "
                        + maxDiff / maxRef);
            }
        }
    }

    /** A tiny random bidirectional Llama in the shipped model's format, with the real tok512 tokenizer. */
    static void writeRandomModel(Path dir, SplittableRandom r, int dim, int hidden, int layers, int heads,
                                 int kvHeads, int context) throws IOException {
        int headDim = dim / heads;
        int kvDim = kvHeads * headDim;
        int vocab = 513;
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        w.f32("model.embed_tokens.weight", random(r, vocab * dim, 1.0), vocab, dim);
        for (int l = 0; l < layers; l++) {
            String p = "model.layers." + l + ".";
            w.f32(p + "input_layernorm.weight", norm(r, dim), dim);
            w.f32(p + "self_attn.q_proj.weight", random(r, dim * dim, 0.5 / Math.sqrt(dim)), dim, dim);
            w.f32(p + "self_attn.k_proj.weight", random(r, kvDim * dim, 0.5 / Math.sqrt(dim)), kvDim, dim);
            w.f32(p + "self_attn.v_proj.weight", random(r, kvDim * dim, 1 / Math.sqrt(dim)), kvDim, dim);
            w.f32(p + "self_attn.o_proj.weight", random(r, dim * dim, 1 / Math.sqrt(dim)), dim, dim);
            w.f32(p + "post_attention_layernorm.weight", norm(r, dim), dim);
            w.f32(p + "mlp.gate_proj.weight", random(r, hidden * dim, 1 / Math.sqrt(dim)), hidden, dim);
            w.f32(p + "mlp.up_proj.weight", random(r, hidden * dim, 1 / Math.sqrt(dim)), hidden, dim);
            w.f32(p + "mlp.down_proj.weight", random(r, dim * hidden, 1 / Math.sqrt(hidden)), dim, hidden);
        }
        w.f32("model.norm.weight", norm(r, dim), dim);
        w.f32("lm_head.weight", random(r, vocab * dim, 1 / Math.sqrt(dim)), vocab, dim);
        w.write(dir.resolve("model.safetensors"));
        Files.writeString(dir.resolve("config.json"), """
                {"model_type": "llada-tiny", "hidden_size": %d, "intermediate_size": %d, "num_hidden_layers": %d,
                 "num_attention_heads": %d, "num_key_value_heads": %d, "head_dim": %d, "vocab_size": 513,
                 "tokenizer_vocab_size": 512, "max_position_embeddings": %d, "rope_theta": 10000.0,
                 "rms_norm_eps": 1e-05, "hidden_act": "silu", "mask_token_id": 512, "bos_token_id": 1,
                 "eos_token_id": 2, "causal": false, "rope_interleaved": true, "tie_word_embeddings": false}
                """.formatted(dim, hidden, layers, heads, kvHeads, headDim, context));
        Files.copy(DlmTestSupport.resourceDir().resolve("tokenizer.bin"), dir.resolve("tokenizer.bin"));
    }

    private static float[] random(SplittableRandom r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
        return a;
    }

    private static float[] norm(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (0.5 + r.nextDouble());
        }
        return a;
    }

    @Test
    void badBatchesAreRefusedBeforeAnyWork() {
        DiffusionModel m = DlmTestSupport.model();
        int[] ok = {1, 512, 512};
        assertThrows(IllegalArgumentException.class,
                () -> m.forward(List.of(new DenoiseInput(ok, 1, 2)), new float[1][2 * 513 - 1]));
        assertThrows(IllegalArgumentException.class,
                () -> m.forward(List.of(new DenoiseInput(new int[]{1, 513}, 0, 1)), new float[1][513]));
        assertThrows(IllegalArgumentException.class,
                () -> m.forward(List.of(new DenoiseInput(new int[257], 0, 1)), new float[1][513]));
        assertThrows(IllegalArgumentException.class, () -> new DenoiseInput(ok, 2, 2));
        assertThrows(IllegalArgumentException.class, () -> new DenoiseInput(ok, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new DenoiseInput(new int[0], 0, 1));
    }

    @Test
    void directoryLoaderNamesWhatIsMissing(@TempDir Path dir) throws IOException {
        ModelLoadException e = assertThrows(ModelLoadException.class,
                () -> Models.loadDiffusion(dir.resolve("nope").toString()));
        assertTrue(e.getMessage().contains("no such diffusion model"), e.getMessage());
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("config.json not found"), e.getMessage());
        writeRandomModel(dir, new SplittableRandom(1), 16, 24, 1, 2, 1, 16);
        Files.writeString(dir.resolve("config.json"), Files.readString(dir.resolve("config.json"))
                .replace("\"mask_token_id\": 512,", "").replace("\"tokenizer_vocab_size\": 512,", ""));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("missing key mask_token_id"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), Files.readString(dir.resolve("config.json"))
                .replace("\"bos_token_id\"", "\"mask_token_id\": 512, \"bos_token_id\"")
                .replace("\"causal\": false", "\"causal\": true"));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("causal"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), Files.readString(dir.resolve("config.json"))
                .replace("\"causal\": true", "\"causal\": false").replace("\"rope_interleaved\": true", "\"x\": 0"));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("rope_interleaved"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), Files.readString(dir.resolve("config.json"))
                .replace("\"x\": 0", "\"rope_interleaved\": true").replace("\"hidden_size\": 16", "\"hidden_size\": 32")
                .replace("\"head_dim\": 8", "\"head_dim\": 16"));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("model.embed_tokens.weight has shape [513, 16], expected [513, 32]"),
                e.getMessage());
        Files.delete(dir.resolve("tokenizer.bin"));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("no tokenizer.json or tokenizer.bin"), e.getMessage());
    }

    @Test
    void leftoverTensorsAreAnError(@TempDir Path dir) throws IOException {
        writeRandomModel(dir, new SplittableRandom(2), 16, 24, 1, 2, 1, 16);
        byte[] original = Files.readAllBytes(dir.resolve("model.safetensors"));
        // Re-write with an extra bias tensor the architecture does not have.
        var extra = new SafetensorsWriter();
        try (var file = io.stepstream.engine.format.safetensors.SafetensorsFile.of("orig", original)) {
            for (var t : file.tensors().values()) {
                extra.f32(t.name(), t.toFloats(), t.shape());
            }
        }
        extra.f32("model.layers.0.self_attn.q_proj.bias", new float[16], 16).write(dir.resolve("model.safetensors"));
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("q_proj.bias"), e.getMessage());
    }
}
