package io.stepstream.engine.dlm;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A canvas's logits are bitwise the same alone or batched with other requests at other steps. */
class DiffusionBatchInvarianceTest {
    @Test
    void fourRequestsAtDifferentStepsInOneForward() {
        DiffusionModel m = DlmTestSupport.model();
        List<LladaGeneration> gens = List.of(
                LladaGeneration.start(m, "Once upon a time",
                        new DiffusionParams(16, 16, 16, 0, Remasking.LOW_CONFIDENCE, null, 0)),
                LladaGeneration.start(m, "The little dog",
                        new DiffusionParams(24, 8, 12, 0.9, Remasking.LOW_CONFIDENCE, null, 5)),
                LladaGeneration.start(m, "Tom and Sue went to the park. They",
                        new DiffusionParams(16, 8, 8, 0, Remasking.RANDOM, null, 9)),
                LladaGeneration.start(m, "One day",
                        new DiffusionParams(16, 16, 16, 0, Remasking.LOW_CONFIDENCE, 0.9, 0)));
        int[] joinsAt = {0, 2, 3, 5}; // staggered, so the requests are at different step indices
        float[][] batchLogits = new float[gens.size()][];
        float[][] alone = new float[1][];
        int batchedSteps = 0;
        for (int step = 0; gens.stream().anyMatch(g -> !g.done()); step++) {
            List<LladaGeneration> active = new ArrayList<>();
            List<DenoiseInput> inputs = new ArrayList<>();
            for (int i = 0; i < gens.size(); i++) {
                if (step >= joinsAt[i] && !gens.get(i).done()) {
                    active.add(gens.get(i));
                    inputs.add(gens.get(i).nextInput());
                }
            }
            for (int i = 0; i < active.size(); i++) {
                batchLogits[i] = new float[active.get(i).logitsLength()];
            }
            m.forward(inputs, batchLogits);
            if (active.size() > 1) {
                batchedSteps++;
            }
            for (int i = 0; i < active.size(); i++) {
                alone[0] = new float[active.get(i).logitsLength()];
                m.forward(List.of(inputs.get(i)), alone);
                assertArrayEquals(alone[0], batchLogits[i], "step " + step + ": batched logits differ from alone");
            }
            for (int i = 0; i < active.size(); i++) {
                active.get(i).apply(batchLogits[i]);
            }
        }
        assertTrue(batchedSteps >= 8, "the requests really shared forwards: " + batchedSteps);
        // And each batched generation ends exactly where it ends when run alone.
        String[] prompts = {"Once upon a time", "The little dog", "Tom and Sue went to the park. They", "One day"};
        for (int i = 0; i < gens.size(); i++) {
            LladaGeneration solo = DlmTestSupport.run(m, LladaGeneration.start(m, prompts[i], gens.get(i).params()));
            assertArrayEquals(solo.canvas(), gens.get(i).canvas(), "request " + i);
            assertEquals(solo.forwards(), gens.get(i).forwards());
        }
    }
}
