package io.stepstream.engine.dlm;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad generation settings fail with a message that names the field. */
class DiffusionParamsTest {
    private static final Remasking LC = Remasking.LOW_CONFIDENCE;

    private static void rejects(String field, Executable make) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, make);
        assertTrue(e.getMessage().startsWith(field + " "), "message should start with " + field + ": "
                + e.getMessage());
    }

    @Test
    void eachBadFieldIsNamed() {
        rejects("gen_length", () -> new DiffusionParams(0, 1, 1, 0, LC, null, 0));
        rejects("block_length", () -> new DiffusionParams(8, 0, 8, 0, LC, null, 0));
        rejects("gen_length", () -> new DiffusionParams(10, 4, 5, 0, LC, null, 0)); // not a multiple
        rejects("steps", () -> new DiffusionParams(8, 8, 0, 0, LC, null, 0));
        rejects("steps", () -> new DiffusionParams(8, 2, 6, 0, LC, null, 0)); // 4 blocks
        rejects("steps", () -> new DiffusionParams(8, 8, 9, 0, LC, null, 0)); // more than gen_length
        rejects("temperature", () -> new DiffusionParams(8, 8, 8, -0.1, LC, null, 0));
        rejects("temperature", () -> new DiffusionParams(8, 8, 8, Double.NaN, LC, null, 0));
        rejects("temperature", () -> new DiffusionParams(8, 8, 8, Double.POSITIVE_INFINITY, LC, null, 0));
        rejects("remasking", () -> new DiffusionParams(8, 8, 8, 0, null, null, 0));
        rejects("threshold", () -> new DiffusionParams(8, 8, 8, 0, LC, 0.0, 0));
        rejects("threshold", () -> new DiffusionParams(8, 8, 8, 0, LC, 1.5, 0));
        rejects("threshold", () -> new DiffusionParams(8, 8, 8, 0, LC, Double.NaN, 0));
    }

    @Test
    void goodSettingsPass() {
        assertDoesNotThrow(() -> new DiffusionParams(8, 2, 8, 0.5, Remasking.RANDOM, 1.0, 0));
        assertDoesNotThrow(() -> new DiffusionParams(64, 16, 32, 0, LC, 0.9, 0));
        DiffusionParams d = DiffusionParams.defaults();
        assertEquals(128, d.genLength());
        assertEquals(1, d.numBlocks());
        assertEquals(128, d.stepsPerBlock());
        assertEquals(4, new DiffusionParams(64, 16, 32, 0, LC, null, 0).numBlocks());
        assertEquals(8, new DiffusionParams(64, 16, 32, 0, LC, null, 0).stepsPerBlock());
    }

    @Test
    void theGenerationChecksThePromptAndTheContext() {
        DiffusionParams p = new DiffusionParams(8, 8, 8, 0, LC, null, 0);
        rejects("gen_length", () -> new LladaGeneration(new int[]{1, 5, 6}, p, 512, 513, 10));
        assertDoesNotThrow(() -> new LladaGeneration(new int[]{1, 5}, p, 512, 513, 10));
        rejects("prompt", () -> new LladaGeneration(new int[0], p, 512, 513, 256));
        rejects("prompt", () -> new LladaGeneration(new int[]{1, 512}, p, 512, 513, 256));
        rejects("prompt", () -> new LladaGeneration(new int[]{1, 513}, p, 512, 513, 256));
        rejects("prompt", () -> new LladaGeneration(new int[]{-1}, p, 512, 513, 256));
        rejects("logits", () -> new LladaGeneration(new int[]{1}, p, 512, 513, 256).apply(new float[8 * 513 - 1]));
    }

    @Test
    void aFinishedGenerationRefusesMoreSteps() {
        LladaGeneration g = new LladaGeneration(new int[]{1}, new DiffusionParams(1, 1, 1, 0, LC, null, 0), 3, 4, 8);
        g.apply(new float[]{0, 1, 0, 0});
        assertTrue(g.done());
        assertThrows(IllegalStateException.class, g::nextInput);
        assertThrows(IllegalStateException.class, () -> g.apply(new float[4]));
        assertEquals(1, g.canvas()[1]);
    }
}
