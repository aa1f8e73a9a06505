package io.stepstream.engine.dlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.spi.DiffusionBackendModel;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Row summaries (argmax + float64 softmax probability of it) against a plain float64 reference on fresh random rows
 * (ties in the max, huge spreads whose terms underflow), and greedy LLaDA steps applied from host-made summaries
 * against the same steps applied from the logits: every outcome and canvas bitwise equal, with and without a
 * threshold, over several blocks. Settings that read more than a summary (temperature, random remasking, Dream)
 * refuse them.
 */
class RowSummariesTest {
    private static final int VOCAB = 5_003;
    private static final int MASK = VOCAB - 1;
    private static final int CONTEXT = 256;

    /** The reference: lowest id of the largest logit, and 1 / sum exp(l_i - l_max) in float64. */
    private static double[] reference(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) {
            if (row[i] > row[best]) {
                best = i;
            }
        }
        double sum = 0;
        for (float v : row) {
            sum += Math.exp((double) v - (double) row[best]);
        }
        return new double[]{best, 1.0 / sum};
    }

    static float[] randomRow(SplittableRandom r, int vocab, int kind) {
        float[] row = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            row[i] = switch (kind) {
                case 0 -> (float) (3 * r.nextGaussian());
                case 1 -> (float) r.nextInt(5); // many exact ties in the max
                default -> (float) ((r.nextDouble() - 0.5) * 2000); // most terms underflow to 0
            };
        }
        return row;
    }

    @Test
    void summariesEqualTheFloat64Reference() {
        SplittableRandom r = new SplittableRandom(3);
        int rows = 9;
        float[] logits = new float[rows * VOCAB];
        for (int j = 0; j < rows; j++) {
            System.arraycopy(randomRow(r, VOCAB, j % 3), 0, logits, j * VOCAB, VOCAB);
        }
        RowSummaries s = RowSummaries.ofRows(rows + 2);
        s.summarize(logits, rows, VOCAB);
        for (int j = 0; j < rows; j++) {
            double[] want = reference(java.util.Arrays.copyOfRange(logits, j * VOCAB, (j + 1) * VOCAB));
            assertEquals((int) want[0], s.argmax()[j], "row " + j);
            assertEquals(want[1], s.confidence()[j], Math.ulp(want[1]) * 4, "row " + j);
            assertTrue(s.confidence()[j] > 0 && s.confidence()[j] <= 1, "row " + j + ": " + s.confidence()[j]);
        }
        assertThrows(IllegalArgumentException.class, () -> s.summarize(logits, rows + 3, VOCAB));
    }

    private static int[] prompt(int length, long seed) {
        return DlmTestSupport.randomPrompt(length, VOCAB, seed);
    }

    private static List<LladaGeneration> greedyBatch() {
        DiffusionParams greedy = new DiffusionParams(32, 16, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        return List.of(new LladaGeneration(prompt(5, 1), greedy, MASK, VOCAB, CONTEXT),
                new LladaGeneration(prompt(9, 2), greedy.withThreshold(0.5), MASK, VOCAB, CONTEXT),
                new LladaGeneration(prompt(3, 3), greedy.withGenLength(48, 48, 12), MASK, VOCAB, CONTEXT));
    }

    /** Random logits for a step, a third of the rows peaked on one id (thresholds and confidence order matter). */
    private static float[] logits(LladaGeneration g, long seed) {
        return DlmTestSupport.randomLogits(g.nextInput().logitsLength(), g.logitsLength(), VOCAB, 8, seed);
    }

    @Test
    void greedyStepsFromHostSummariesEqualStepsFromLogits() {
        List<LladaGeneration> fromLogits = greedyBatch();
        List<LladaGeneration> fromSummaries = greedyBatch();
        RowSummaries[] summaries = new RowSummaries[fromLogits.size()];
        for (int i = 0; i < summaries.length; i++) {
            assertTrue(fromSummaries.get(i).acceptsSummaries());
            summaries[i] = RowSummaries.ofRows(fromSummaries.get(i).params().blockLength());
        }
        int steps = 0;
        int commits = 0;
        while (fromLogits.stream().anyMatch(g -> !g.done())) {
            for (int i = 0; i < fromLogits.size(); i++) {
                LladaGeneration a = fromLogits.get(i);
                LladaGeneration b = fromSummaries.get(i);
                assertEquals(a.done(), b.done());
                if (a.done()) {
                    continue;
                }
                float[] l = logits(a, 100L * steps + i);
                summaries[i].summarize(l, b.nextInput().logitsLength(), VOCAB);
                DenoiseOutcome want = a.apply(l);
                DenoiseOutcome got = b.applySummaries(summaries[i]);
                assertEquals(want.step(), got.step());
                assertArrayEquals(want.committedPositions(), got.committedPositions(), "step " + steps + " #" + i);
                assertArrayEquals(want.committedTokens(), got.committedTokens(), "step " + steps + " #" + i);
                assertEquals(want.completedBlock(), got.completedBlock());
                assertArrayEquals(want.blockTokens(), got.blockTokens());
                assertEquals(want.done(), got.done());
                assertArrayEquals(a.canvas(), b.canvas());
                commits += want.committedTokens().length;
            }
            steps++;
        }
        assertTrue(steps >= 8 && commits >= 112, steps + " steps, " + commits + " commits");
    }

    @Test
    void theDefaultBackendForwardSummarizesTheForwardsLogitsOnTheHost() {
        DiffusionModel model = DlmTestSupport.model();
        DiffusionBackendModel m = DiffusionBackendModel.onCpu(model);
        assertFalse(m.summarizesOnDevice());
        int vocab = model.vocabSize();
        int[] canvas = model.tokenizer().encode("Once upon a time there was", true, false);
        int[] masked = java.util.Arrays.copyOf(canvas, canvas.length + 8);
        java.util.Arrays.fill(masked, canvas.length, masked.length, model.maskId());
        List<DenoiseInput> batch = List.of(new DenoiseInput(masked, canvas.length, 8),
                new DenoiseInput(canvas, 1, 3));
        float[][] logits = {new float[8 * vocab], new float[3 * vocab]};
        RowSummaries[] s = {RowSummaries.ofRows(8), RowSummaries.ofRows(5)};
        m.forwardSummaries(batch, logits, s);
        float[][] want = {new float[8 * vocab], new float[3 * vocab]};
        model.forward(batch, want);
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < batch.get(i).logitsLength(); j++) {
                float[] row = java.util.Arrays.copyOfRange(want[i], j * vocab, (j + 1) * vocab);
                double[] ref = reference(row);
                assertEquals((int) ref[0], s[i].argmax()[j], "input " + i + " row " + j);
                assertEquals(ref[1], s[i].confidence()[j], Math.ulp(ref[1]) * 4, "input " + i + " row " + j);
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> m.forwardSummaries(batch, logits, new RowSummaries[]{RowSummaries.ofRows(7), s[1]}));
        assertTrue(e.getMessage().contains("summaries[0]"), e.getMessage());
    }

    @Test
    void settingsThatReadWholeRowsRefuseSummaries() {
        DiffusionParams greedy = new DiffusionParams(32, 16, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        List<DenoisingGeneration> refuse = new ArrayList<>();
        refuse.add(new LladaGeneration(prompt(4, 1), greedy.withTemperature(0.5, 1L), MASK, VOCAB, CONTEXT));
        refuse.add(new LladaGeneration(prompt(4, 1), greedy.withRemasking(Remasking.RANDOM), MASK, VOCAB, CONTEXT));
        refuse.add(new DreamGeneration(prompt(6, 5), new DreamParams(24, 8, 0.0, null, null,
                DreamAlgorithm.MASKGIT_PLUS, null, DreamParams.DEFAULT_EPS, 0L), MASK, VOCAB, CONTEXT));
        for (DenoisingGeneration g : refuse) {
            assertFalse(g.acceptsSummaries(), g.toString());
            RuntimeException e = assertThrows(RuntimeException.class, () -> g.applySummaries(RowSummaries.ofRows(16)));
            assertTrue(e instanceof IllegalStateException || e instanceof UnsupportedOperationException, e.toString());
        }
        LladaGeneration ok = new LladaGeneration(prompt(4, 1), greedy, MASK, VOCAB, CONTEXT);
        RowSummaries bad = RowSummaries.ofRows(16);
        bad.argmax()[3] = VOCAB;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ok.applySummaries(bad));
        assertTrue(e.getMessage().contains("argmax[3]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ok.applySummaries(RowSummaries.ofRows(15)));
    }
}
