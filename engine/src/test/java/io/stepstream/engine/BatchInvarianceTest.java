package io.stepstream.engine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A sequence's logits must be bitwise identical whether it runs alone, token by token, or inside a batch
 * where others prefill in chunks and decode around it (and whatever the thread split).
 */
class BatchInvarianceTest {
    private static final int[] PROMPT_LENGTHS = {1, 3, 6, 9, 16, 17, 23, 33};
    private static final int[] CHUNKS = {4, 16, 1, 8, 5, 16, 7, 32};
    private static final int STEPS = 40;

    @TempDir
    Path dir;

    @Test
    void randomModelBatchedEqualsAlone() throws IOException {
        ForwardReferenceTest.writeRandomModel(dir, 21, false);
        ModelOptions single = ModelOptions.defaults().withComputeThreads(1);
        try (Model batched = Models.load(dir.resolve("random.bin").toString(), single);
             Model alone = Models.load(dir.resolve("random.bin").toString(), single)) {
            check(batched, alone, 77);
        }
    }

    @Test
    void randomModelThreadPoolBatchedEqualsSingleThreadAlone() throws IOException {
        ForwardReferenceTest.writeRandomModel(dir, 22, true);
        try (Model batched = Models.load(dir.resolve("random.bin").toString(),
                ModelOptions.defaults().withComputeThreads(3).withParallelThreshold(0));
             Model alone = Models.load(dir.resolve("random.bin").toString(),
                     ModelOptions.defaults().withComputeThreads(1))) {
            check(batched, alone, 78);
        }
    }

    @Test
    void stories260KBatchedEqualsAlone() {
        try (Model batched = Models.load(Models.DEFAULT_MODEL); Model alone = Models.load(Models.DEFAULT_MODEL)) {
            check(batched, alone, 79);
        }
    }

    private static void check(Model batched, Model alone, long seed) {
        int vocab = batched.config().vocabSize();
        Random rnd = new Random(seed);
        int n = PROMPT_LENGTHS.length;
        int[][] prompts = new int[n][];
        for (int s = 0; s < n; s++) {
            prompts[s] = rnd.ints(PROMPT_LENGTHS[s], 3, vocab).toArray();
        }
        // Batched run: sequence s joins at step s; prefill in chunks, then greedy decode.
        List<List<Integer>> fedTokens = new ArrayList<>();
        List<Map<Integer, float[]>> logitsAtLength = new ArrayList<>();
        KvCache[] caches = new KvCache[n];
        int[] fed = new int[n];
        int[] nextToken = new int[n];
        for (int s = 0; s < n; s++) {
            fedTokens.add(new ArrayList<>());
            logitsAtLength.add(new HashMap<>());
            caches[s] = batched.newKvCache();
        }
        int mixedSteps = 0;
        for (int step = 0; step < STEPS; step++) {
            List<ForwardBatch.Entry> entries = new ArrayList<>();
            List<Integer> members = new ArrayList<>();
            boolean anyPrefill = false;
            boolean anyDecode = false;
            for (int s = 0; s < n && s <= step; s++) {
                int[] input;
                if (fed[s] < prompts[s].length) {
                    int len = Math.min(CHUNKS[s], prompts[s].length - fed[s]);
                    input = Arrays.copyOfRange(prompts[s], fed[s], fed[s] + len);
                    fed[s] += len;
                    anyPrefill |= len > 1;
                } else {
                    input = new int[]{nextToken[s]};
                    anyDecode = true;
                }
                for (int t : input) {
                    fedTokens.get(s).add(t);
                }
                entries.add(new ForwardBatch.Entry(caches[s], input, 0, input.length));
                members.add(s);
            }
            if (anyPrefill && anyDecode) {
                mixedSteps++;
            }
            float[][] logits = new float[entries.size()][vocab];
            batched.forward(new ForwardBatch(entries), logits);
            for (int i = 0; i < members.size(); i++) {
                int s = members.get(i);
                logitsAtLength.get(s).put(caches[s].length(), logits[i]);
                nextToken[s] = TestSupport.argmax(logits[i]);
            }
        }
        assertTrue(mixedSteps >= 5, "steps mixing prefill and decode: " + mixedSteps);
        // Alone: the same tokens, one per step, on a fresh model instance.
        for (int s = 0; s < n; s++) {
            try (KvCache cache = alone.newKvCache()) {
                List<Integer> tokens = fedTokens.get(s);
                int compared = 0;
                for (int i = 0; i < tokens.size(); i++) {
                    float[] logits = TestSupport.step(alone, cache, new int[]{tokens.get(i)}, 0, 1);
                    float[] batchedLogits = logitsAtLength.get(s).get(cache.length());
                    if (batchedLogits != null) {
                        assertArrayEquals(batchedLogits, logits, "sequence " + s + " at length " + cache.length());
                        compared++;
                    }
                    // the decode tokens of the batched run are the argmax of the alone logits too
                    if (i + 1 < tokens.size() && i + 1 >= prompts[s].length) {
                        assertEquals(TestSupport.argmax(logits), tokens.get(i + 1), "sequence " + s + " token " + i);
                    }
                }
                assertEquals(logitsAtLength.get(s).size(), compared);
                caches[s].close();
            }
        }
    }
}
