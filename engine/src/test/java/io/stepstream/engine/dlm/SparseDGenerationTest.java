package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.engine.sparse.SparseDBuilderTest;
import io.stepstream.engine.sparse.PatternHandle;
import io.stepstream.engine.sparse.SparseDPolicy;
import io.stepstream.engine.sparse.RandomSparseInputs;
import io.stepstream.engine.sparse.SparsePattern;
import io.stepstream.engine.sparse.SparseStep;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** SparseD inside the diffusion model, on the shipped tinystories-dlm. */
class SparseDGenerationTest {
    /** A long prompt, so the canvas spans several 32-token blocks of prompt and of generated text. */
    static final String LONG_PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside"
            + " in the park with her friends. One day, she saw a big red ball under a tree. She ran to the ball and"
            + " picked it up. Lily was very happy. She wanted to show the ball to her mom.";

    /**
     * Runs a dense and a sparse generation of the same request step by step, both inputs in one batch, and checks
     * the sparse one's logits are bitwise the dense ones at every step; returns the sparse generation.
     */
    private static LladaGeneration lockstepBitwise(DiffusionModel m, int[] prefix, DiffusionParams dense,
                                                   SparseDPolicy policy) {
        LladaGeneration d = LladaGeneration.start(m, prefix, dense);
        LladaGeneration s = LladaGeneration.start(m, prefix, dense.withSparseD(policy));
        assertNull(d.patternHandle());
        assertNotNull(s.patternHandle());
        float[][] logits = {new float[d.logitsLength()], new float[s.logitsLength()]};
        while (!d.done()) {
            DenoiseInput sparseInput = s.nextInput();
            assertEquals(s.forwards(), sparseInput.sparse().step());
            m.forward(List.of(d.nextInput(), sparseInput), logits);
            assertArrayEquals(logits[0], logits[1], 0f, "logits at step " + d.forwards());
            DenoiseOutcome a = d.apply(logits[0]);
            DenoiseOutcome b = s.apply(logits[1]);
            assertArrayEquals(a.committedTokens(), b.committedTokens());
            assertEquals(a.done(), b.done());
        }
        assertArrayEquals(d.canvas(), s.canvas());
        return s;
    }

    @Test
    void selectOneIsExactlyDense() {
        DiffusionModel m = DlmTestSupport.model();
        PatternCache cache = m.patternCache();
        int[] prefix = m.tokenizer().encode(LONG_PROMPT, true, false);
        assertTrue(prefix.length > 64, "prompt spans several blocks: " + prefix.length);
        Object[][] settings = {
                {new DiffusionParams(64, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L), 32},
                {new DiffusionParams(32, 16, 8, 0.0, Remasking.RANDOM, null, 9L), 16},
                {new DiffusionParams(32, 32, 8, 0.7, Remasking.LOW_CONFIDENCE, 0.9, 4L), 8},
        };
        for (Object[] setting : settings) {
            DiffusionParams p = (DiffusionParams) setting[0];
            SparseDPolicy policy = new SparseDPolicy(0.2, 1.0, (int) setting[1]);
            long hits = cache.hits();
            long misses = cache.misses();
            LladaGeneration s = lockstepBitwise(m, prefix, p, policy);
            int sparseSteps = s.forwards() - policy.switchStep(p.steps());
            assertTrue(sparseSteps > 1, "steps past the switch: " + sparseSteps);
            assertEquals(1, cache.misses() - misses, "one build per request");
            assertEquals(sparseSteps - 1, cache.hits() - hits, "every later step reuses it");
            assertTrue(cache.holds(s.patternHandle()));
            assertTrue(cache.bytesHeld() > 0);
            m.releasePattern(s.patternHandle());
            assertEquals(0, cache.bytesHeld(), "release frees the request's pattern");
        }
    }

    @Test
    void sparseForwardMatchesTheMaskedReferenceOnRandomPatterns() {
        DiffusionModel m = DlmTestSupport.model();
        ReferenceDlm ref = DlmTestSupport.reference();
        SplittableRandom r = new SplittableRandom(31);
        int vocab = m.vocabSize();
        for (int round = 0; round < 3; round++) {
            int len = 20 + r.nextInt(60);
            int[] tokens = new int[len];
            for (int p = 0; p < len; p++) {
                tokens[p] = r.nextInt(3) == 0 ? m.maskId() : r.nextInt(vocab);
            }
            tokens[0] = 1;
            int bs = 4 + r.nextInt(12);
            SparsePattern pattern = RandomSparseInputs.pattern(r, m.config().nLayers(), m.config().nHeads(), len, bs, 0.4);
            PatternHandle handle = new PatternHandle();
            m.patternCache().store(handle, pattern);
            // A step well past the switch, so the forward looks the pattern up and attends through it.
            SparseStep step = new SparseStep(handle, new SparseDPolicy(0.2, 0.3, bs), 9, 10, 1 + r.nextInt(len));
            int start = r.nextInt(len);
            DenoiseInput in = new DenoiseInput(tokens, start, 1 + r.nextInt(len - start), step);
            float[][] logits = {new float[in.logitsLength() * vocab]};
            long hits = m.patternCache().hits();
            m.forward(List.of(in), logits);
            assertEquals(hits + 1, m.patternCache().hits());
            double[][] expected = ref.logits(tokens, in.logitsStart(), in.logitsStart() + in.logitsLength(),
                    (layer, head, query, key) -> contains(pattern.keyBlocks(layer, head, query / bs), key / bs));
            double[][] dense = ref.logits(tokens, in.logitsStart(), in.logitsStart() + in.logitsLength());
            double maxDiff = 0;
            double maxRef = 0;
            double denseDiff = 0;
            for (int p = 0; p < in.logitsLength(); p++) {
                for (int v = 0; v < vocab; v++) {
                    maxDiff = Math.max(maxDiff, Math.abs(logits[0][p * vocab + v] - expected[p][v]));
                    maxRef = Math.max(maxRef, Math.abs(expected[p][v]));
                    denseDiff = Math.max(denseDiff, Math.abs(dense[p][v] - expected[p][v]));
                }
            }
            assertTrue(maxDiff / maxRef < 1e-4, "round " + round + ": relative error " + maxDiff / maxRef);
            assertTrue(denseDiff / maxRef > 1e-2, "the pattern really changes the logits: " + denseDiff / maxRef);
            m.releasePattern(handle);
        }
    }

    private static boolean contains(int[] blocks, int b) {
        return Arrays.binarySearch(blocks, b) >= 0;
    }

    /**
     * The pattern the model builds at the switch step is SparseD's selection (transcribed plainly in
     * {@link SparseDBuilderTest#referenceRow}) of that step's queries and keys; and those queries and keys, as
     * {@link DiffusionModel#forwardProbed} hands them out, are the float64 reference model's.
     */
    @Test
    void switchStepPatternIsSparseDsSelectionOfTheModelsQueriesAndKeys() {
        DiffusionModel m = DlmTestSupport.model();
        ReferenceDlm ref = DlmTestSupport.reference();
        int[] prefix = m.tokenizer().encode(LONG_PROMPT, true, false);
        int layers = m.config().nLayers();
        int heads = m.config().nHeads();
        int hs = m.config().headSize();
        int dim = m.config().dim();
        int kvDim = m.config().kvDim();
        int group = heads / m.config().nKvHeads();
        DiffusionParams p = new DiffusionParams(64, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        for (SparseDPolicy policy : List.of(new SparseDPolicy(0.2, 0.3, 16), new SparseDPolicy(0.2, 0.5, 8))) {
            LladaGeneration s = LladaGeneration.start(m, prefix, p.withSparseD(policy));
            float[][] logits = {new float[s.logitsLength()]};
            while (s.forwards() < policy.switchStep(p.steps())) {
                m.forward(List.of(s.nextInput()), logits);
                s.apply(logits[0]);
            }
            DenoiseInput in = s.nextInput();
            int tokens = in.length();
            float[][] q = new float[layers][];
            float[][] k = new float[layers][];
            m.forwardProbed(new DenoiseInput(in.tokens(), in.logitsStart(), in.logitsLength()),
                    new float[s.logitsLength()], (l, qa, qStride, ka, kStride) -> {
                        assertEquals(dim, qStride);
                        assertEquals(kvDim, kStride);
                        q[l] = Arrays.copyOf(qa, tokens * dim);
                        k[l] = Arrays.copyOf(ka, tokens * kvDim);
                    });
            m.forward(List.of(in), logits); // the switch step: dense, and builds the pattern
            SparsePattern pattern = m.patternCache().lookup(s.patternHandle());
            assertNotNull(pattern);
            double[] worst = new double[2];
            ref.logits(in.tokens(), in.logitsStart(), in.logitsStart() + 1, (l, h, i, j) -> true, (l, rq, rk) -> {
                for (int i = 0; i < tokens; i++) {
                    for (int d = 0; d < dim; d++) {
                        worst[0] = Math.max(worst[0], Math.abs(rq[i][d] - q[l][i * dim + d]));
                        worst[1] = Math.max(worst[1], Math.abs(rq[i][d]));
                    }
                    for (int d = 0; d < kvDim; d++) {
                        worst[0] = Math.max(worst[0], Math.abs(rk[i][d] - k[l][i * kvDim + d]));
                    }
                }
            });
            assertTrue(worst[0] / worst[1] < 1e-4, "probed q/k against the reference: " + worst[0] / worst[1]);
            int sparseRows = 0;
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < heads; h++) {
                    for (int qb = 0; qb < pattern.blocks(); qb++) {
                        int[] expected = SparseDBuilderTest.referenceRow(q[l], k[l], tokens, hs, dim, h * hs, kvDim,
                                (h / group) * hs, prefix.length, policy.select(), policy.blockSize(), qb);
                        assertArrayEquals(expected, pattern.keyBlocks(l, h, qb), policy + " layer " + l + " head "
                                + h + " query block " + qb);
                        sparseRows += expected.length < pattern.blocks() ? 1 : 0;
                    }
                }
            }
            assertTrue(sparseRows > layers * heads, "really sparse rows: " + sparseRows);
            m.releasePattern(s.patternHandle());
        }
    }

    @Test
    void evictedPatternIsRebuiltAndARefusedOneRunsDense() {
        DiffusionModel shipped = DlmTestSupport.model();
        int[] prefix = shipped.tokenizer().encode(LONG_PROMPT, true, false);
        DiffusionParams p = new DiffusionParams(32, 32, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        SparseDPolicy policy = new SparseDPolicy(0.2, 0.3, 32);
        // The size of one request's pattern, to set caps around it.
        LladaGeneration probe = DlmTestSupport.run(shipped, LladaGeneration.start(shipped, prefix, p.withSparseD(policy)));
        SparsePattern built = shipped.patternCache().lookup(probe.patternHandle());
        assertNotNull(built);
        assertTrue(built.density() < 1, "select 0.3 drops blocks: " + built);
        shipped.releasePattern(probe.patternHandle());
        long one = built.bytes();

        try (DiffusionModel m = reload(new PatternCache(one + one / 2))) {
            // Two requests in one batch: their patterns do not fit together, so they keep evicting each other.
            LladaGeneration a = LladaGeneration.start(m, prefix, p.withSparseD(policy));
            LladaGeneration b = LladaGeneration.start(m, prefix, p.withSparseD(policy));
            float[][] logits = {new float[a.logitsLength()], new float[b.logitsLength()]};
            while (!a.done()) {
                m.forward(List.of(a.nextInput(), b.nextInput()), logits);
                a.apply(logits[0]);
                b.apply(logits[1]);
                assertTrue(m.patternCache().bytesHeld() <= m.patternCache().capBytes());
            }
            int later = p.steps() - policy.switchStep(p.steps());
            // The switch step builds both (two misses) and storing b evicts a; from then on, each step the one
            // evicted last misses and is rebuilt (evicting the other), while the other hits.
            assertEquals(later + 1, m.patternCache().misses());
            assertEquals(later - 1, m.patternCache().hits());
            assertEquals(later, m.patternCache().evictions());
            assertEquals(1, m.patternCache().patterns());
            assertTrue(a.done() && b.done());
            m.releasePattern(a.patternHandle());
            m.releasePattern(b.patternHandle());
            assertEquals(0, m.patternCache().bytesHeld());
        }
        try (DiffusionModel m = reload(new PatternCache(one - 1))) {
            LladaGeneration dense = DlmTestSupport.run(m, LladaGeneration.start(m, prefix, p));
            LladaGeneration refused = DlmTestSupport.run(m, LladaGeneration.start(m, prefix, p.withSparseD(policy)));
            assertEquals(1, m.patternCache().refusals());
            assertTrue(m.patternCache().isRefused(refused.patternHandle()));
            assertArrayEquals(dense.canvas(), refused.canvas(), "a refused request runs dense");
            assertEquals(0, m.patternCache().bytesHeld());
        }
    }

    private static DiffusionModel reload(PatternCache cache) {
        try (var ckpt = io.stepstream.engine.format.safetensors.SafetensorsCheckpoint.open(DlmTestSupport.resourceDir())) {
            DiffusionModel shipped = DlmTestSupport.model();
            return new DiffusionModel("tinystories-dlm", shipped.hfConfig(), ckpt, shipped.tokenizer(),
                    io.stepstream.engine.ModelOptions.defaults(), cache);
        }
    }

    @Test
    void sparseDOnTheShippedModelRunsAndReportsItsAgreementWithDense() {
        DiffusionModel m = DlmTestSupport.model();
        SparseDPolicy policy = new SparseDPolicy(0.2, 0.3, 32);
        String[] prompts = {LONG_PROMPT, "One day, a little boy named Tim went to the park with his mom. They saw a"
                + " big dog. The dog was brown and it liked to run. Tim wanted to play with the dog, so he threw a"
                + " stick. The dog ran fast and got the stick. Tim laughed and clapped his hands."};
        int same = 0;
        int total = 0;
        for (String prompt : prompts) {
            int[] prefix = m.tokenizer().encode(prompt, true, false);
            DiffusionParams p = new DiffusionParams(64, 32, 32, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
            LladaGeneration dense = DlmTestSupport.run(m, LladaGeneration.start(m, prefix, p));
            LladaGeneration sparse = DlmTestSupport.run(m, LladaGeneration.start(m, prefix, p.withSparseD(policy)));
            SparsePattern pattern = m.patternCache().lookup(sparse.patternHandle());
            assertNotNull(pattern);
            assertTrue(pattern.density() < 0.9, "really sparse: " + pattern);
            m.releasePattern(sparse.patternHandle());
            int[] a = dense.generated();
            int[] b = sparse.generated();
            int agree = 0;
            for (int i = 0; i < a.length; i++) {
                if (a[i] == b[i]) {
                    agree++;
                }
            }
            same += agree;
            total += a.length;
            System.out.printf("[SparseDGenerationTest] prompt %d tokens + 64, %s: %d/%d generated tokens as dense%n"
                            + "  dense:  %s%n  sparse: %s%n", prefix.length, pattern, agree, a.length,
                    DlmTestSupport.decode(m.tokenizer(), a), DlmTestSupport.decode(m.tokenizer(), b));
        }
        System.out.printf("[SparseDGenerationTest] skip 0.2 select 0.3 block 32: %d/%d tokens agree (%.1f%%)%n", same,
                total, 100.0 * same / total);
        assertTrue(total > 0);
    }
}
