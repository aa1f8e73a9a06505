package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.SparseDPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fast-dLLM's prefix and dual KV cache on the shipped model: production generation (float32 batched forward over the
 * request's kept keys and values + LladaGeneration) against the float64 reference of the cached algorithm
 * ({@link ReferenceFastDllm}, its own forward over past keys and values), token for token; batch invariance with
 * cached and uncached requests in one forward; the byte accounting; and the cap's fallback.
 */
class FastDllmCacheTest {
    static Stream<Arguments> settings() {
        List<Arguments> out = new ArrayList<>();
        for (DlmCacheMode mode : List.of(DlmCacheMode.PREFIX, DlmCacheMode.DUAL)) {
            // prompt, gen, block, steps, temperature, remasking, threshold, seed, mode
            out.add(Arguments.of("Once upon a time", 32, 16, 32, 0.0, Remasking.LOW_CONFIDENCE, null, 0L, mode));
            out.add(Arguments.of("The cat", 32, 8, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L, mode));
            out.add(Arguments.of("Lily and Tom", 32, 16, 16, 0.0, Remasking.RANDOM, null, 7L, mode));
            out.add(Arguments.of("One day, a little", 32, 16, 16, 0.8, Remasking.LOW_CONFIDENCE, null, 42L, mode));
            out.add(Arguments.of("The sun was", 32, 16, 32, 0.0, Remasking.LOW_CONFIDENCE, 0.9, 0L, mode));
            out.add(Arguments.of("Tim had a ball", 32, 8, 32, 0.7, Remasking.RANDOM, 0.9, 11L, mode));
        }
        return out.stream();
    }

    @ParameterizedTest
    @MethodSource("settings")
    void productionMatchesCachedReference(String prompt, int gen, int block, int steps, double temperature,
                                          Remasking remasking, Double threshold, long seed, DlmCacheMode mode) {
        DiffusionModel m = DlmTestSupport.model();
        DiffusionParams p = new DiffusionParams(gen, block, steps, temperature, remasking, threshold, seed)
                .withCache(mode);
        int[] prefix = m.tokenizer().encode(prompt, true, false);
        LladaGeneration production = LladaGeneration.start(m, prefix, p);
        DlmTestSupport.run(m, production);
        m.releaseKvCache(production.kvHandle());
        ReferenceLlada.Result expected = new ReferenceFastDllm(DlmTestSupport.reference()).generate(prefix, gen,
                block, steps, temperature, remasking == Remasking.RANDOM, threshold, seed,
                mode == DlmCacheMode.DUAL);
        int[] canvas = production.canvas();
        LladaGeneration uncached = DlmTestSupport.run(m, LladaGeneration.start(m, prefix, p.withCache(DlmCacheMode.NONE)));
        System.out.println("[FastDllmCacheTest] " + p + " forwards=" + production.forwards() + " agreement with no"
                + " cache " + agreement(uncached.generated(), production.generated()) + "/" + gen + ": "
                + DlmTestSupport.decode(m.tokenizer(), Arrays.copyOfRange(canvas, 1, canvas.length)));
        assertArrayEquals(expected.canvas(), canvas, "canvas for " + p);
        assertEquals(expected.forwards(), production.forwards(), "forward passes");
    }

    /** The block's first step runs the whole canvas, so its logits are bitwise those of the uncached step. */
    @Test
    void refreshStepEqualsUncachedStepAndReuseStepsDiffer() {
        DiffusionModel m = DlmTestSupport.model();
        for (DlmCacheMode mode : List.of(DlmCacheMode.PREFIX, DlmCacheMode.DUAL)) {
            DiffusionParams p = new DiffusionParams(32, 16, 32, 0, Remasking.LOW_CONFIDENCE, null, 0).withCache(mode);
            LladaGeneration cached = LladaGeneration.start(m, "Once upon a time", p);
            LladaGeneration plain = LladaGeneration.start(m, "Once upon a time", p.withCache(DlmCacheMode.NONE));
            float[][] a = {new float[cached.logitsLength()]};
            float[][] b = {new float[plain.logitsLength()]};
            int reuseStepsDiffering = 0;
            while (!cached.done()) {
                DenoiseInput in = cached.nextInput();
                assertEquals(mode, in.cache().mode());
                m.forward(List.of(in), a);
                m.forward(List.of(plain.nextInput()), b);
                if (in.cache().refresh()) {
                    assertArrayEquals(b[0], a[0], "refresh step " + cached.forwards());
                } else if (!Arrays.equals(a[0], b[0])) {
                    reuseStepsDiffering++;
                }
                // Drive both canvases the same way (the cached one's decisions), so each step compares like inputs.
                cached.apply(a[0]);
                plain.apply(a[0]);
            }
            assertArrayEquals(plain.canvas(), cached.canvas());
            assertTrue(reuseStepsDiffering > 0, "the kept keys are stale, so reuse logits differ from exact ones");
            m.releaseKvCache(cached.kvHandle());
        }
    }

    /**
     * Cached (prefix, dual), uncached and SparseD requests at different steps in one forward: bitwise the same as
     * alone (cached rows read their entry's keys, sparse ones their pattern's ranges, in the same attention tiles).
     */
    @Test
    void batchedEqualsAlone() {
        DiffusionModel m = DlmTestSupport.model();
        String[] prompts = {"Once upon a time", "The little dog", "Tom and Sue went to the park. They", "One day",
                "Lily saw a bird"};
        DiffusionParams[] params = {
                new DiffusionParams(32, 16, 32, 0, Remasking.LOW_CONFIDENCE, null, 0).withCache(DlmCacheMode.PREFIX),
                new DiffusionParams(24, 8, 12, 0.9, Remasking.LOW_CONFIDENCE, null, 5).withCache(DlmCacheMode.DUAL),
                new DiffusionParams(16, 8, 8, 0, Remasking.RANDOM, null, 9),
                new DiffusionParams(32, 16, 32, 0, Remasking.LOW_CONFIDENCE, 0.9, 0).withCache(DlmCacheMode.DUAL),
                new DiffusionParams(32, 16, 16, 0, Remasking.LOW_CONFIDENCE, null, 3)
                        .withSparseD(new SparseDPolicy(0.25, 0.3, 8))};
        List<LladaGeneration> gens = new ArrayList<>();
        for (int i = 0; i < prompts.length; i++) {
            gens.add(LladaGeneration.start(m, prompts[i], params[i]));
        }
        int[] joinsAt = {0, 2, 3, 5, 1};
        long patternHitsBefore = m.patternCache().hits();
        float[][] batchLogits = new float[gens.size()][];
        int batchedSteps = 0;
        for (int step = 0; gens.stream().anyMatch(g -> !g.done()); step++) {
            List<LladaGeneration> active = new ArrayList<>();
            List<DenoiseInput> inputs = new ArrayList<>();
            for (int i = 0; i < gens.size(); i++) {
                if (step >= joinsAt[i] && !gens.get(i).done()) {
                    active.add(gens.get(i));
                    inputs.add(gens.get(i).nextInput());
                    batchLogits[inputs.size() - 1] = new float[gens.get(i).logitsLength()];
                }
            }
            m.forward(inputs, batchLogits);
            batchedSteps += active.size() > 1 ? 1 : 0;
            for (int i = 0; i < active.size(); i++) {
                active.get(i).apply(batchLogits[i]);
            }
        }
        assertTrue(batchedSteps >= 8, "the requests really shared forwards: " + batchedSteps);
        assertTrue(m.patternCache().hits() > patternHitsBefore, "the SparseD request attended through its pattern");
        for (int i = 0; i < gens.size(); i++) {
            m.releaseKvCache(gens.get(i).kvHandle());
            m.releasePattern(gens.get(i).patternHandle());
            LladaGeneration solo = DlmTestSupport.run(m, LladaGeneration.start(m, prompts[i], params[i]));
            m.releaseKvCache(solo.kvHandle());
            m.releasePattern(solo.patternHandle());
            assertArrayEquals(solo.canvas(), gens.get(i).canvas(), "request " + i + " " + params[i]);
            assertEquals(solo.forwards(), gens.get(i).forwards());
        }
        assertEquals(0, m.kvCache().bytesHeld(), "every entry released");
    }

    /** An entry holds 2 x layers x canvas x kvDim floats from the first step until released. */
    @Test
    void bytesAreAccountedAndFreed() {
        DiffusionModel m = DlmTestSupport.model();
        DlmKvCache store = m.kvCache();
        long before = store.bytesHeld();
        DiffusionParams p = new DiffusionParams(32, 16, 32, 0, Remasking.LOW_CONFIDENCE, null, 0)
                .withCache(DlmCacheMode.DUAL);
        LladaGeneration g = LladaGeneration.start(m, "Once upon a time", p);
        int canvas = g.canvas().length;
        float[][] logits = {new float[g.logitsLength()]};
        m.forward(List.of(g.nextInput()), logits);
        g.apply(logits[0]);
        long expected = 2L * m.config().nLayers() * canvas * m.config().kvDim() * Float.BYTES;
        assertEquals(expected, DlmKvCache.bytesFor(m.config().nLayers(), canvas, m.config().kvDim()));
        assertEquals(before + expected, store.bytesHeld());
        assertTrue(store.holds(g.kvHandle()));
        long hits = store.hits();
        m.forward(List.of(g.nextInput()), logits);
        assertEquals(hits + 1, store.hits(), "a reuse step finds its entry");
        m.releaseKvCache(g.kvHandle());
        assertEquals(before, store.bytesHeld());
        assertFalse(store.holds(g.kvHandle()));
        m.releaseKvCache(null); // an uncached request has no handle
    }

    /**
     * A store too small for any entry refuses them all; those requests then run every step over the whole canvas,
     * so they produce exactly the uncached tokens. A store with room for one entry serves the first request only.
     */
    @Test
    void refusedEntriesFallBackToTheWholeCanvas() throws Exception {
        try (DiffusionModel none = withKvCap(0)) {
            DiffusionParams p = new DiffusionParams(32, 8, 16, 0, Remasking.LOW_CONFIDENCE, null, 0)
                    .withCache(DlmCacheMode.PREFIX);
            LladaGeneration cached = DlmTestSupport.run(none, LladaGeneration.start(none, "The cat", p));
            LladaGeneration plain = DlmTestSupport.run(none,
                    LladaGeneration.start(none, "The cat", p.withCache(DlmCacheMode.NONE)));
            assertArrayEquals(plain.canvas(), cached.canvas());
            assertEquals(0, none.kvCache().bytesHeld());
            assertEquals(4, none.kvCache().refusals(), "one refusal per block refresh");
            assertEquals(12, none.kvCache().misses(), "every reuse step missed");
        }
        DiffusionModel shared = DlmTestSupport.model();
        int[] prefix = shared.tokenizer().encode("The cat", true, false);
        long one = DlmKvCache.bytesFor(shared.config().nLayers(), prefix.length + 32, shared.config().kvDim());
        try (DiffusionModel room = withKvCap(one + one / 2)) {
            DiffusionParams p = new DiffusionParams(32, 8, 16, 0, Remasking.LOW_CONFIDENCE, null, 0)
                    .withCache(DlmCacheMode.DUAL);
            LladaGeneration first = LladaGeneration.start(room, prefix, p);
            LladaGeneration second = LladaGeneration.start(room, prefix, p);
            float[][] logits = {new float[first.logitsLength()], new float[second.logitsLength()]};
            while (!first.done()) {
                room.forward(List.of(first.nextInput(), second.nextInput()), logits);
                first.apply(logits[0]);
                second.apply(logits[1]);
            }
            assertTrue(room.kvCache().holds(first.kvHandle()));
            assertFalse(room.kvCache().holds(second.kvHandle()));
            assertEquals(one, room.kvCache().bytesHeld());
            LladaGeneration dual = DlmTestSupport.run(shared, LladaGeneration.start(shared, prefix, p));
            shared.releaseKvCache(dual.kvHandle());
            LladaGeneration plain = DlmTestSupport.run(shared,
                    LladaGeneration.start(shared, prefix, p.withCache(DlmCacheMode.NONE)));
            assertArrayEquals(dual.canvas(), first.canvas(), "the served request is the cached generation");
            assertArrayEquals(plain.canvas(), second.canvas(), "the refused one is the uncached generation");
            assertNotEquals(0, room.kvCache().refusals());
        }
    }

    @Test
    void badSettingsAreRefusedWithTheirNames() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new DiffusionParams(32, 16, 32, 0, Remasking.LOW_CONFIDENCE, null, 0, null, null));
        assertTrue(e.getMessage().contains("cache"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new DiffusionParams(32, 16, 32, 0,
                Remasking.LOW_CONFIDENCE, null, 0, io.stepstream.engine.sparse.SparseDPolicy.defaults(),
                DlmCacheMode.PREFIX));
        assertTrue(e.getMessage().contains("sparse_d"), e.getMessage());
        assertEquals(DlmCacheMode.DUAL, DlmCacheMode.parse("Dual"));
        assertEquals(DlmCacheMode.NONE, DlmCacheMode.parse(""));
        e = assertThrows(IllegalArgumentException.class, () -> DlmCacheMode.parse("both"));
        assertTrue(e.getMessage().contains("none, prefix or dual"), e.getMessage());
        assertEquals(DlmCacheMode.NONE, DiffusionParams.defaults().cache());
    }

    private static DiffusionModel withKvCap(long cap) throws Exception {
        DiffusionModel base = DlmTestSupport.model();
        var dir = DlmTestSupport.resourceDir();
        var config = io.stepstream.engine.format.safetensors.HfConfig.read(dir.resolve("config.json"));
        try (var ckpt = io.stepstream.engine.format.safetensors.SafetensorsCheckpoint.open(dir)) {
            return new DiffusionModel("tinystories-dlm-capped", config, ckpt, base.tokenizer(),
                    io.stepstream.engine.ModelOptions.defaults(),
                    io.stepstream.engine.sparse.PatternCache.withDefaultCap(), new DlmKvCache(cap));
        }
    }

    private static int agreement(int[] a, int[] b) {
        int same = 0;
        for (int i = 0; i < a.length; i++) {
            same += a[i] == b[i] ? 1 : 0;
        }
        return same;
    }
}
