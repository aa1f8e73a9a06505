package io.stepstream.engine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The production batched forward against the plain double-precision reference, on random and real weights. */
class ForwardReferenceTest {
    private static final double TOLERANCE = 1e-4;
    private static final int[] PROMPT_LENGTHS = {1, 5, 17, 40};

    @TempDir
    Path dir;

    /** Writes a random checkpoint (grouped-query, separate classifier) and a tokenizer beside it. */
    static TestCheckpoint writeRandomModel(Path dir, long seed, boolean shared) throws IOException {
        Random rnd = new Random(seed);
        TestCheckpoint ckpt = TestCheckpoint.random(rnd, 48, 80, 3, 6, 2, 320, 96, shared);
        ckpt.write(dir.resolve("random.bin"));
        Files.write(dir.resolve("tokenizer.bin"), TestCheckpoint.randomTokenizer(rnd, 320));
        return ckpt;
    }

    static TestCheckpoint stories260K() throws IOException {
        try (InputStream in = ForwardReferenceTest.class.getResourceAsStream(
                "/io/stepstream/engine/models/stories260K/stories260K.bin")) {
            return TestCheckpoint.read(in.readAllBytes());
        }
    }

    @Test
    void randomModelMatchesReferenceForEveryChunking() throws IOException {
        TestCheckpoint ckpt = writeRandomModel(dir, 11, false);
        try (Model model = Models.load(dir.resolve("random.bin").toString(),
                ModelOptions.defaults().withComputeThreads(1))) {
            assertEquals("random", model.name());
            assertTrue(!model.config().sharedClassifier() && model.config().nKvHeads() < model.config().nHeads());
            for (int chunk : new int[]{1, 3, 16, 64}) {
                compareBatchedRun(model, ckpt, chunk, 1000 + chunk);
            }
        }
    }

    @Test
    void randomSharedClassifierModelMatchesReferenceWithThreadPool() throws IOException {
        TestCheckpoint ckpt = writeRandomModel(dir, 12, true);
        // threshold 0 forces every kernel through the pool, so the split paths are exercised
        try (Model model = Models.load(dir.resolve("random.bin"), dir.resolve("tokenizer.bin"),
                ModelOptions.defaults().withComputeThreads(3).withParallelThreshold(0))) {
            assertTrue(model.config().sharedClassifier());
            for (int chunk : new int[]{1, 7}) {
                compareBatchedRun(model, ckpt, chunk, 2000 + chunk);
            }
        }
    }

    @Test
    void stories260KMatchesReference() throws IOException {
        TestCheckpoint ckpt = stories260K();
        try (Model model = Models.load(Models.DEFAULT_MODEL)) {
            for (int chunk : new int[]{1, 16}) {
                compareBatchedRun(model, ckpt, chunk, 3000 + chunk);
            }
        }
    }

    /**
     * Runs one sequence per prompt length together in each step: a chunk of at most {@code chunk} prompt
     * tokens while prompt is left, then random decode tokens, and compares every logits row to the reference.
     */
    private static void compareBatchedRun(Model model, TestCheckpoint ckpt, int chunk, long seed) {
        Random rnd = new Random(seed);
        int n = PROMPT_LENGTHS.length;
        int[][] prompts = new int[n][];
        List<KvCache> caches = new ArrayList<>();
        ReferenceForward[] refs = new ReferenceForward[n];
        int[] fed = new int[n];
        for (int s = 0; s < n; s++) {
            prompts[s] = rnd.ints(PROMPT_LENGTHS[s], 0, ckpt.vocab()).toArray();
            caches.add(model.newKvCache());
            refs[s] = new ReferenceForward(ckpt);
        }
        int checked = 0;
        double worst = 0;
        for (int step = 0; step < 12; step++) {
            List<ForwardBatch.Entry> entries = new ArrayList<>();
            int[][] inputs = new int[n][];
            for (int s = 0; s < n; s++) {
                if (fed[s] < prompts[s].length) {
                    int len = Math.min(chunk, prompts[s].length - fed[s]);
                    inputs[s] = java.util.Arrays.copyOfRange(prompts[s], fed[s], fed[s] + len);
                    fed[s] += len;
                } else {
                    inputs[s] = new int[]{rnd.nextInt(ckpt.vocab())};
                }
                // an offset into a larger array, as the scheduler passes prompt slices
                int[] padded = new int[inputs[s].length + 2];
                System.arraycopy(inputs[s], 0, padded, 1, inputs[s].length);
                entries.add(new ForwardBatch.Entry(caches.get(s), padded, 1, inputs[s].length));
            }
            float[][] logits = new float[n][ckpt.vocab()];
            model.forward(new ForwardBatch(entries), logits);
            for (int s = 0; s < n; s++) {
                double[] expected = null;
                for (int t : inputs[s]) {
                    expected = refs[s].next(t);
                }
                assertEquals(refs[s].length(), caches.get(s).length(), "cache length");
                double err = TestSupport.relativeError(logits[s], expected);
                worst = Math.max(worst, err);
                assertTrue(err <= TOLERANCE, "sequence " + s + " step " + step + " chunk " + chunk
                        + ": relative error " + err);
                checked++;
            }
        }
        caches.forEach(KvCache::close);
        assertEquals(12 * n, checked);
        assertTrue(worst > 0, "float and double paths cannot agree exactly; a zero error means nothing was compared");
    }
}
