package io.stepstream.engine.dlm;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LladaGeneration's decisions against the reference transcription of generate, with a stand-in "model" whose
 * logits are pseudo-random functions of the canvas. Both sides see exactly the same float logits, so every
 * decision must agree, including the tie rules: the logits are drawn from a few levels so that equal logits
 * (argmax ties) and equal confidences (top-k ties) happen all the time.
 */
class LladaDecisionTest {
    private static final int VOCAB = 11;
    private static final int MASK = 10;

    /** Logits as a deterministic function of the canvas and the position. */
    private record FakeModel(long salt, int levels, int maskBias) {
        float[] row(int[] canvas, int position) {
            long h = salt;
            for (int t : canvas) {
                h = h * 31 + t;
            }
            SplittableRandom r = new SplittableRandom(h * 1_000_003L + position);
            float[] row = new float[VOCAB];
            for (int id = 0; id < VOCAB; id++) {
                row[id] = levels > 0 ? r.nextInt(levels) * 0.75f : (float) r.nextGaussian() * 3f;
            }
            row[MASK] += maskBias; // maskBias > 0 makes the model pick the mask id itself now and then
            return row;
        }

        float[] logits(int[] canvas, int from, int to) {
            float[] out = new float[(to - from) * VOCAB];
            for (int p = from; p < to; p++) {
                System.arraycopy(row(canvas, p), 0, out, (p - from) * VOCAB, VOCAB);
            }
            return out;
        }

        double[][] reference(int[] canvas, int from, int to) {
            double[][] out = new double[to - from][VOCAB];
            for (int p = from; p < to; p++) {
                float[] row = row(canvas, p);
                for (int id = 0; id < VOCAB; id++) {
                    out[p - from][id] = row[id];
                }
            }
            return out;
        }
    }

    @Test
    void decisionsMatchTheReferenceOnRandomLogits() {
        SplittableRandom r = new SplittableRandom(2024);
        int cases = 0;
        for (int trial = 0; trial < 400; trial++) {
            int blockLength = 1 + r.nextInt(12);
            int blocks = 1 + r.nextInt(4);
            int gen = blockLength * blocks;
            int stepsPerBlock = 1 + r.nextInt(blockLength);
            int steps = stepsPerBlock * blocks;
            double temperature = r.nextInt(3) == 0 ? 0.0 : 0.25 + r.nextDouble() * 1.5;
            Remasking remasking = r.nextBoolean() ? Remasking.LOW_CONFIDENCE : Remasking.RANDOM;
            Double threshold = r.nextInt(3) == 0 ? 0.05 + 0.9 * r.nextDouble() : null;
            long seed = r.nextLong();
            FakeModel model = new FakeModel(r.nextLong(), r.nextInt(4) == 0 ? 0 : 2 + r.nextInt(3),
                    r.nextInt(4) == 0 ? 1 : -100);
            int[] prompt = new int[1 + r.nextInt(4)];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = r.nextInt(MASK);
            }
            DiffusionParams p = new DiffusionParams(gen, blockLength, steps, temperature, remasking, threshold, seed);
            LladaGeneration production = new LladaGeneration(prompt, p, MASK, VOCAB, 64);
            int forwards = 0;
            while (!production.done()) {
                DenoiseInput in = production.nextInput();
                production.apply(model.logits(in.tokens(), in.logitsStart(), in.logitsStart() + in.logitsLength()));
                forwards++;
            }
            ReferenceLlada.Result expected = ReferenceLlada.generate(model::reference, prompt, VOCAB, MASK, gen,
                    blockLength, steps, temperature, remasking == Remasking.RANDOM, threshold, seed);
            assertArrayEquals(expected.canvas(), production.canvas(), "trial " + trial + ": " + p);
            assertEquals(expected.forwards(), forwards, "trial " + trial + ": forwards");
            assertEquals(forwards, production.forwards());
            if (threshold == null) {
                assertEquals(steps, forwards, "LLaDA runs exactly `steps` forward passes");
            }
            cases++;
        }
        assertEquals(400, cases);
    }

    @Test
    void stepsCommitTheScheduledCountsAndBlocksStreamInOrder() {
        FakeModel model = new FakeModel(5, 3, -100);
        int[] prompt = {1, 4, 5};
        DiffusionParams p = new DiffusionParams(12, 4, 9, 0.0, Remasking.LOW_CONFIDENCE, null, 0);
        LladaGeneration gen = new LladaGeneration(prompt, p, MASK, VOCAB, 64);
        int[] expectedCounts = {2, 1, 1}; // 4 masks over 3 steps per block
        int step = 0;
        int nextBlock = 0;
        while (!gen.done()) {
            DenoiseInput in = gen.nextInput();
            assertEquals(3 + 4 * nextBlock, in.logitsStart(), "the logits range is the current block");
            assertEquals(4, in.logitsLength());
            DenoiseOutcome out = gen.apply(model.logits(in.tokens(), in.logitsStart(), in.logitsStart() + 4));
            assertEquals(step, out.step());
            assertEquals(expectedCounts[step % 3], out.committedPositions().length, "step " + step);
            for (int i = 0; i < out.committedPositions().length; i++) {
                int pos = out.committedPositions()[i];
                assertTrue(pos >= in.logitsStart() && pos < in.logitsStart() + 4, "commits stay in the block");
                assertEquals(out.committedTokens()[i], gen.canvas()[pos]);
                assertTrue(i == 0 || pos > out.committedPositions()[i - 1], "ascending");
            }
            if (step % 3 == 2) {
                assertEquals(nextBlock, out.completedBlock());
                assertEquals(3 + 4 * nextBlock, out.blockStart());
                assertArrayEquals(Arrays.copyOfRange(gen.canvas(), out.blockStart(), out.blockStart() + 4),
                        out.blockTokens());
                nextBlock++;
            } else {
                assertEquals(-1, out.completedBlock());
                assertEquals(0, out.blockTokens().length);
            }
            assertEquals(nextBlock == 3, out.done());
            step++;
        }
        assertEquals(9, step);
        assertEquals(3, gen.currentBlock());
        int[] generated = gen.generated();
        assertEquals(12, generated.length);
        for (int t : generated) {
            assertTrue(t != MASK, "every mask was filled");
        }
    }

    @Test
    void thresholdCommitsEverythingConfidentEnoughAndAtLeastOne() {
        // Position 0 of the block is certain, position 1 fairly sure, position 2 unsure.
        int vocab = 4;
        int mask = 3;
        LladaGeneration gen = new LladaGeneration(new int[]{1}, new DiffusionParams(3, 3, 3, 0.0,
                Remasking.LOW_CONFIDENCE, 0.6, 0), mask, vocab, 16);
        float[] logits = {
                9, 0, 0, 0,      // p(0) ~ 0.9996
                0, 2, 0, 0,      // p(1) ~ 0.71
                0, 0, 0.1f, 0};  // p(2) ~ 0.27
        DenoiseOutcome first = gen.apply(logits);
        assertArrayEquals(new int[]{1, 2}, first.committedPositions());
        assertArrayEquals(new int[]{0, 1}, first.committedTokens());
        DenoiseOutcome second = gen.apply(logits);
        assertArrayEquals(new int[]{3}, second.committedPositions(), "below the threshold, the best one anyway");
        assertArrayEquals(new int[]{2}, second.committedTokens());
        assertTrue(second.done());
        assertEquals(0, second.completedBlock());
        assertArrayEquals(new int[]{0, 1, 2}, second.textTokens(mask));
        assertEquals(2, gen.forwards());
    }

    @Test
    void aCommittedMaskIdStaysMaskedAndIsLeftOutOfTheText() {
        int vocab = 3;
        int mask = 2;
        LladaGeneration gen = new LladaGeneration(new int[]{1}, new DiffusionParams(2, 2, 2, 0.0,
                Remasking.LOW_CONFIDENCE, null, 0), mask, vocab, 16);
        // The model prefers the mask id at position 1 (LLaDA's argmax includes it), token 0 at position 2.
        float[] logits = {0, 0, 5, 4, 0, 0};
        DenoiseOutcome first = gen.apply(logits);
        assertArrayEquals(new int[]{1}, first.committedPositions(), "the most confident one");
        assertArrayEquals(new int[]{mask}, first.committedTokens());
        DenoiseOutcome second = gen.apply(logits);
        assertArrayEquals(new int[]{1}, second.committedPositions(), "still masked, so still a candidate");
        assertTrue(second.done());
        assertArrayEquals(new int[]{mask, mask}, second.blockTokens());
        assertArrayEquals(new int[0], second.textTokens(mask));
    }
}
