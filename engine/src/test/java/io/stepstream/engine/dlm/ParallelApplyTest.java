package io.stepstream.engine.dlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A step's host work in parallel ({@link DenoisingGeneration#applyAll} on a fork-join pool, positions split inside
 * each request) against the plain sequential {@link DenoisingGeneration#apply(float[])} of the same generations fed
 * the same logits: every outcome (step, committed positions and tokens, completed blocks, done) and every canvas is
 * the same at every step, for a mixed batch of LLaDA greedy, LLaDA threshold, LLaDA random remasking with
 * temperature, LLaDA low-confidence with temperature, and Dream (greedy maskgit_plus, sampled top_p/top_k entropy,
 * origin). The logits are fresh random rows with a few peaked positions (so thresholds and confidence order matter),
 * over a vocabulary large enough that every position is a chunk of its own.
 */
class ParallelApplyTest {
    private static final int VOCAB = 20_000;
    private static final int MASK = VOCAB - 1;
    private static final int CONTEXT = 256;
    private static ForkJoinPool pool;

    @BeforeAll
    static void start() {
        pool = new ForkJoinPool(4);
    }

    @AfterAll
    static void stop() {
        pool.shutdownNow();
    }

    private static int[] prompt(int length, long seed) {
        return DlmTestSupport.randomPrompt(length, VOCAB, seed);
    }

    /** A fresh mixed batch; called twice so that both runs start from equal, independent generations. */
    private static List<DenoisingGeneration> batch() {
        List<DenoisingGeneration> g = new ArrayList<>();
        DiffusionParams greedy = new DiffusionParams(32, 16, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        g.add(new LladaGeneration(prompt(5, 1), greedy, MASK, VOCAB, CONTEXT));
        g.add(new LladaGeneration(prompt(9, 2), greedy.withThreshold(0.5), MASK, VOCAB, CONTEXT));
        g.add(new LladaGeneration(prompt(7, 3), greedy.withRemasking(Remasking.RANDOM).withTemperature(0.7, 11L),
                MASK, VOCAB, CONTEXT));
        g.add(new LladaGeneration(prompt(3, 4), greedy.withTemperature(1.0, 12L), MASK, VOCAB, CONTEXT));
        g.add(new DreamGeneration(prompt(6, 5), new DreamParams(24, 8, 0.0, null, null,
                DreamAlgorithm.MASKGIT_PLUS, null, DreamParams.DEFAULT_EPS, 0L), MASK, VOCAB, CONTEXT));
        g.add(new DreamGeneration(prompt(4, 6), new DreamParams(24, 8, 0.9, 0.95, 500, DreamAlgorithm.ENTROPY,
                0.5, DreamParams.DEFAULT_EPS, 21L), MASK, VOCAB, CONTEXT));
        g.add(new DreamGeneration(prompt(8, 7), new DreamParams(24, 8, 0.8, null, null, DreamAlgorithm.ORIGIN,
                null, DreamParams.DEFAULT_EPS, 22L), MASK, VOCAB, CONTEXT));
        return g;
    }

    /** Random logits for the rows {@code input} asks for, a third of the rows peaked on one id. */
    private static float[] logits(DenoiseInput input, int length, long seed) {
        return DlmTestSupport.randomLogits(input.logitsLength(), length, VOCAB, 20, seed);
    }

    @Test
    void parallelApplyEqualsSequentialForAMixedBatch() {
        List<DenoisingGeneration> sequential = batch();
        List<DenoisingGeneration> parallel = batch();
        RangeExecutor executor = RangeExecutor.on(pool);
        int steps = 0;
        int commits = 0;
        while (true) {
            List<DenoisingGeneration> liveSeq = new ArrayList<>();
            List<DenoisingGeneration> livePar = new ArrayList<>();
            List<float[]> rows = new ArrayList<>();
            for (int i = 0; i < sequential.size(); i++) {
                assertEquals(sequential.get(i).done(), parallel.get(i).done());
                if (sequential.get(i).done()) {
                    continue;
                }
                DenoiseInput in = sequential.get(i).nextInput();
                DenoiseInput inPar = parallel.get(i).nextInput();
                assertEquals(in.logitsStart(), inPar.logitsStart());
                assertEquals(in.logitsLength(), inPar.logitsLength());
                liveSeq.add(sequential.get(i));
                livePar.add(parallel.get(i));
                rows.add(logits(in, sequential.get(i).logitsLength(), 1000L * steps + i));
            }
            if (liveSeq.isEmpty()) {
                break;
            }
            float[][] forPar = new float[rows.size()][];
            for (int i = 0; i < rows.size(); i++) {
                forPar[i] = rows.get(i).clone();
            }
            DenoiseOutcome[] got = DenoisingGeneration.applyAll(livePar, forPar, executor);
            for (int i = 0; i < liveSeq.size(); i++) {
                DenoiseOutcome want = liveSeq.get(i).apply(rows.get(i));
                assertEquals(want.step(), got[i].step());
                assertArrayEquals(want.committedPositions(), got[i].committedPositions(), "step " + steps + " #" + i);
                assertArrayEquals(want.committedTokens(), got[i].committedTokens(), "step " + steps + " #" + i);
                assertEquals(want.blockCompleted(), got[i].blockCompleted());
                assertArrayEquals(want.blockTokens(), got[i].blockTokens());
                assertEquals(want.done(), got[i].done());
                assertArrayEquals(liveSeq.get(i).canvas(), livePar.get(i).canvas());
                commits += want.committedTokens().length;
            }
            steps++;
        }
        assertTrue(steps >= 8, "the batch ran " + steps + " steps");
        assertTrue(commits > 100, "only " + commits + " positions committed");
    }

    @Test
    void chunksCoverTheRangeOnceAndNest() {
        RangeExecutor executor = RangeExecutor.on(pool);
        int[] hits = new int[1000];
        AtomicInteger inner = new AtomicInteger();
        executor.run(1000, 7, (from, to) -> {
            assertEquals(0, from % 7);
            assertTrue(to == Math.min(1000, from + 7));
            for (int i = from; i < to; i++) {
                hits[i]++;
            }
            executor.run(10, 1, (a, b) -> inner.addAndGet(b - a)); // nested on the same pool
        });
        for (int h : hits) {
            assertEquals(1, h);
        }
        assertEquals(10 * RangeExecutor.chunks(1000, 7), inner.get());
    }

    @Test
    void aFailingChunkFailsTheRun() {
        RangeExecutor executor = RangeExecutor.on(pool);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> executor.run(8, 1, (from, to) -> {
            if (from == 5) {
                throw new IllegalStateException("chunk 5");
            }
        }));
        assertTrue(e.getMessage().contains("chunk 5"), e.getMessage()); // fork-join may rewrap it, same type
    }
}
