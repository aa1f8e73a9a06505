package io.stepstream.engine.dlm;

import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The shipped diffusion model writes stories. */
class LladaStoryTest {
    @Test
    void greedyStoryAfterOnceUponATime() {
        DiffusionModel m = DlmTestSupport.model();
        DiffusionParams p = new DiffusionParams(64, 64, 64, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        LladaGeneration gen = DlmTestSupport.run(m, LladaGeneration.start(m, "Once upon a time", p));
        int[] canvas = gen.canvas();
        String text = DlmTestSupport.decode(m.tokenizer(), Arrays.copyOfRange(canvas, 1, canvas.length));
        System.out.println("[LladaStoryTest] " + text);
        assertEquals(64, gen.forwards());
    }
}
