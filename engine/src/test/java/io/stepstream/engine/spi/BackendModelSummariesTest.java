package io.stepstream.engine.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.Models;
import io.stepstream.engine.Sampler;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.RowSummaries;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The default {@link BackendModel#forwardSummaries}: a row summary's argmax is bitwise the token the greedy
 * {@link Sampler} picks from the same logits (ties included), and its log confidence the sampler's float64
 * log-probability within 1e-12; a greedy stories260K generation through summaries equals the logits one.
 */
class BackendModelSummariesTest {
    private static final SamplingParams GREEDY_WITH_LOGPROB = new SamplingParams(0f, 0, 1f, 0L, 1);

    /** Rows of several kinds: gaussian, small integers (the max held by many ids), a wide spread, a max at the end. */
    private static float[] row(SplittableRandom r, int kind, int vocab) {
        float[] l = new float[vocab];
        for (int i = 0; i < vocab; i++) {
            l[i] = switch (kind) {
                case 0 -> (float) (4 * r.nextGaussian());
                case 1 -> (float) r.nextInt(5);
                case 2 -> (float) ((r.nextDouble() - 0.5) * 200);
                default -> (float) (r.nextGaussian() - 5);
            };
        }
        if (kind == 3) {
            l[vocab - 1] = 25f;
        }
        return l;
    }

    @Test
    void hostSummariesGiveTheGreedySamplersTokenAndItsLogprob() {
        SplittableRandom r = new SplittableRandom(5);
        int checkedTies = 0;
        for (int t = 0; t < 200; t++) {
            int vocab = 1 + r.nextInt(4000);
            float[] logits = row(r, t % 4, vocab);
            RowSummaries s = RowSummaries.ofRows(1);
            s.summarizeRow(0, logits, 0, vocab);
            Sampler.Sample greedy = new Sampler(SamplingParams.GREEDY).sample(logits);
            assertEquals(greedy.tokenId(), s.argmax()[0], "row " + t);
            double reference = Sampler.logprob(logits, greedy.tokenId());
            assertTrue(Math.abs(s.logprob(0) - reference) <= 1e-12,
                    "row " + t + ": " + s.logprob(0) + " vs " + reference);
            // What the sampler reports when asked is that float64 value rounded to float.
            assertEquals((float) reference, new Sampler(GREEDY_WITH_LOGPROB).sample(logits).logprob(), "row " + t);
            if (t % 4 == 1 && vocab > 50) {
                checkedTies++;
            }
        }
        assertTrue(checkedTies > 10, "rows with tied maxima were checked");
    }

    /** Greedy tokens of several prompts decoded together, through the logits and a sampler or through summaries. */
    private static List<int[]> generate(BackendModel model, int[][] prompts, int steps, boolean summaries,
                                        List<double[]> logprobs) {
        int n = prompts.length;
        int vocab = model.config().vocabSize();
        List<KvCache> caches = new ArrayList<>();
        int[][] out = new int[n][steps];
        double[][] lp = new double[n][steps];
        float[][] logits = new float[n][vocab];
        RowSummaries rows = RowSummaries.ofRows(n);
        Sampler[] samplers = new Sampler[n];
        List<ForwardBatch.Entry> entries = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            caches.add(model.newKvCache());
            samplers[i] = new Sampler(SamplingParams.GREEDY);
            entries.add(new ForwardBatch.Entry(caches.get(i), prompts[i], 0, prompts[i].length));
        }
        int[] next = new int[n];
        for (int s = 0; s < steps; s++) {
            ForwardBatch batch = new ForwardBatch(entries);
            if (summaries) {
                model.forwardSummaries(batch, logits, rows);
            } else {
                model.forward(batch, logits);
            }
            entries.clear();
            for (int i = 0; i < n; i++) {
                next[i] = summaries ? rows.argmax()[i] : samplers[i].sample(logits[i]).tokenId();
                out[i][s] = next[i];
                lp[i][s] = summaries ? rows.logprob(i) : Sampler.logprob(logits[i], next[i]);
                entries.add(new ForwardBatch.Entry(caches.get(i), next, i, 1));
            }
        }
        caches.forEach(KvCache::close);
        for (double[] a : lp) {
            logprobs.add(a);
        }
        return List.of(out);
    }

    @Test
    void aGreedyGenerationThroughHostSummariesEqualsTheLogitsOne() {
        try (Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            BackendModel model = BackendModel.onCpu(cpu);
            assertEquals("cpu", model.backendName());
            assertFalse(model.summarizesOnDevice());
            int[][] prompts = {{1}, {1, 403, 407, 261}, {1, 70, 300}};
            List<double[]> lpLogits = new ArrayList<>();
            List<double[]> lpSummaries = new ArrayList<>();
            List<int[]> viaLogits = generate(model, prompts, 40, false, lpLogits);
            List<int[]> viaSummaries = generate(model, prompts, 40, true, lpSummaries);
            for (int i = 0; i < prompts.length; i++) {
                org.junit.jupiter.api.Assertions.assertArrayEquals(viaLogits.get(i), viaSummaries.get(i), "seq " + i);
                for (int s = 0; s < 40; s++) {
                    assertTrue(Math.abs(lpLogits.get(i)[s] - lpSummaries.get(i)[s]) <= 1e-12, "seq " + i + " step " + s);
                    assertTrue(lpLogits.get(i)[s] < 0, "a real logprob, not a constant");
                }
            }
        }
    }

    @Test
    void summariesWithoutARowPerEntryAreRefusedBeforeAnythingRuns() {
        try (Model cpu = Models.load(Models.DEFAULT_MODEL); KvCache a = cpu.newKvCache(); KvCache b = cpu.newKvCache()) {
            BackendModel model = BackendModel.onCpu(cpu);
            ForwardBatch batch = new ForwardBatch(List.of(new ForwardBatch.Entry(a, new int[]{1}, 0, 1),
                    new ForwardBatch.Entry(b, new int[]{1}, 0, 1)));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> model.forwardSummaries(batch, new float[2][cpu.config().vocabSize()], RowSummaries.ofRows(1)));
            assertTrue(e.getMessage().contains("summaries must have a row per entry: 2 entries, 1 rows"), e.getMessage());
            assertEquals(0, a.length(), "nothing ran");
        }
    }
}
