package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.Models;
import io.stepstream.engine.tools.DreamSynth;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Dream's settings, schedule and loader errors: each bad value is refused with its field named. */
class DreamParamsTest {
    private static final DreamParams OK = DreamParams.greedy(16, 8, DreamAlgorithm.ENTROPY);

    private static void refused(String field, Executable e) {
        IllegalArgumentException x = assertThrows(IllegalArgumentException.class, e);
        assertTrue(x.getMessage().startsWith(field), x.getMessage());
    }

    @Test
    void badSettingsNameTheirField() {
        refused("gen_length", () -> new DreamParams(0, 8, 0, null, null, DreamAlgorithm.ORIGIN, null, 1e-3, 0));
        refused("steps", () -> new DreamParams(16, 0, 0, null, null, DreamAlgorithm.ORIGIN, null, 1e-3, 0));
        refused("temperature", () -> OK.withSampling(-0.1, null, null, 0));
        refused("temperature", () -> OK.withSampling(Double.NaN, null, null, 0));
        refused("top_p", () -> OK.withSampling(1, 0.0, null, 0));
        refused("top_p", () -> OK.withSampling(1, 1.5, null, 0));
        refused("top_k", () -> OK.withSampling(1, null, 0, 0));
        refused("alg", () -> OK.withAlg(null, null));
        refused("alg", () -> DreamAlgorithm.of("low_confidence"));
        refused("alg_temp", () -> OK.withAlg(DreamAlgorithm.ENTROPY, -1.0));
        refused("eps", () -> OK.withEps(0));
        refused("eps", () -> OK.withEps(1));
        assertEquals(DreamAlgorithm.TOPK_MARGIN, DreamAlgorithm.of("TopK_Margin"));
        refused("prompt", () -> new DreamGeneration(new int[0], OK, 512, 513, 64));
        refused("prompt token 1", () -> new DreamGeneration(new int[] {1, 512}, OK, 512, 513, 64));
        refused("gen_length", () -> new DreamGeneration(new int[] {1, 2}, OK, 512, 513, 17));
    }

    @Test
    void timestepsFollowTorchLinspaceInFloat32() {
        float[] t = DreamGeneration.timesteps(4, 1e-3);
        float step = (0.001f - 1f) / 4f;
        assertArrayEquals(new float[] {1f, 1f + step, 0.001f - 2 * step, 0.001f - step, 0.001f}, t);
        // int(n * (1 - s/t)) in float32; the last step takes every mask
        assertEquals((int) (10 * (1f - t[1] / t[0])), DreamGeneration.transferCount(t, 0, 10));
        assertEquals(2, DreamGeneration.transferCount(t, 0, 10));
        assertEquals(7, DreamGeneration.transferCount(t, 3, 7));
    }

    @Test
    void dreamLoaderNeedsTheQwen2Biases(@TempDir Path dir) throws IOException {
        DreamSynth.write(dir, DreamSynth.Shape.DREAM_TINY, 1);
        String config = Files.readString(dir.resolve("config.json"));
        // Without model_type Dream the same folder is read as LLaDA style, which has no biases and interleaved RoPE.
        Files.writeString(dir.resolve("config.json"), config.replace("\"Dream\"", "\"llada-tiny\""));
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("rope_interleaved"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), config.replace("\"Dream\"", "\"llada-tiny\"")
                .replace("\"hidden_act\"", "\"rope_interleaved\": true, \"hidden_act\""));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("q_proj.bias"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), config.replace("\"hidden_act\"", "\"mlp_bias\": true, \"hidden_act\""));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("mlp_bias"), e.getMessage());
        Files.writeString(dir.resolve("config.json"), config.replace("\"mask_token_id\": 512,", ""));
        e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(dir.toString()));
        assertTrue(e.getMessage().contains("mask_token_id"), e.getMessage());
    }
}
