package io.stepstream.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.engine.sparse.SparseDPolicy;
import io.stepstream.scheduler.FakeModel;
import io.stepstream.scheduler.FinishReason;
import io.stepstream.scheduler.PatternCacheStats;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;

/** SparseD switched on from requests through the embedded API, on the real tinystories-dlm. */
class SparseDStepStreamTest extends TinyDlmFixture {
    @Test
    void sparseAndDenseRequestsRunTogetherAndTheCacheEndsEmpty() throws Exception {
        long cap = 3L << 20;
        try (StepStream ss = StepStream.attach(testKit.system(), StepStreamConfig.defaults()
                .withPatternCacheBytes(cap))) {
            ss.load(FakeModel.hashed(96));
            ModelInfo loaded = ss.load("tinystories-dlm");
            assertEquals(new PatternCacheStats(0, 0, 0, cap, 0, 0, 0), loaded.patternCache(),
                    "the configured cap, nothing held yet");
            assertNull(ss.models().getFirst().patternCache(), "an autoregressive model has no pattern cache");

            record Run(String prompt, DiffusionOptions options, DiffusionParams params) {
            }
            List<Run> runs = List.of(
                    new Run("Once upon a time", new DiffusionOptions(32, 8, 16, null, null, false,
                            new SparseDOptions(0.2, 0.3, 4)),
                            new DiffusionParams(32, 8, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L)
                                    .withSparseD(new SparseDPolicy(0.2, 0.3, 4))),
                    new Run("One day, a little", new DiffusionOptions(16, 16, 16, null, null, false, null),
                            new DiffusionParams(16, 16, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L)),
                    new Run("Tom had a red ball and", new DiffusionOptions(24, 24, 24, null, null, false,
                            new SparseDOptions(0.1, null, 8)),
                            new DiffusionParams(24, 24, 24, 0.0, Remasking.LOW_CONFIDENCE, null, 0L)
                                    .withSparseD(new SparseDPolicy(0.1, 0.3, 8))),
                    new Run("The sun", new DiffusionOptions(16, 8, 8, null, null, false, SparseDOptions.DEFAULTS),
                            new DiffusionParams(16, 8, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L)
                                    .withSparseD(new SparseDPolicy(0.2, 0.3, 20))));
            List<CompletionStage<GenerationResult>> results = new ArrayList<>();
            for (Run r : runs) {
                results.add(ss.generateAll(dlmRequest(r.prompt(), r.options())));
            }
            for (int i = 0; i < runs.size(); i++) {
                Run r = runs.get(i);
                GenerationResult got = await(results.get(i));
                assertArrayEquals(streamedTokens(alone(r.prompt(), r.params())), got.tokenIds(), r.prompt());
                assertEquals(FinishReason.LENGTH, got.finishReason(), r.prompt());
            }
            PatternCacheStats stats = ss.models().get(1).patternCache();
            assertTrue(stats.hits() > 0 && stats.misses() > 0, stats.toString());
            assertEquals(0, stats.bytesInUse(), "every finished request freed its pattern: " + stats);
            assertEquals(0, stats.entries(), stats.toString());
            assertEquals(stats, ss.snapshot("tinystories-dlm").patternCache(), "the snapshot reads the same cache");
        }
    }

    @Test
    void unsetSparseDSettingsTakeSparseDsDefaults() {
        var model = new LoadedModel.Diffusion(dlm);
        int canvas = dlm.tokenizer().encode("Once upon a time", true, false).length + 64;
        var all = StepStream.validate(dlmRequest("Once upon a time",
                new DiffusionOptions(64, 32, 64, null, null, false, SparseDOptions.DEFAULTS)), model, 2048);
        assertEquals(new SparseDPolicy(0.2, 0.3, 32), all.diffusion().sparseD(), "canvas " + canvas);
        var some = StepStream.validate(dlmRequest("Once upon a time",
                new DiffusionOptions(64, 32, 64, null, null, false, new SparseDOptions(null, 1.0, 16))), model, 2048);
        assertEquals(new SparseDPolicy(0.2, 1.0, 16), some.diffusion().sparseD());
        var dense = StepStream.validate(dlmRequest("Once upon a time", new DiffusionOptions(64, 32, 64, null, null,
                false)), model, 2048);
        assertNull(dense.diffusion().sparseD(), "no SparseD settings: dense");

        assertEquals(32, StepStream.defaultSparseDBlockSize(100));
        assertEquals(20, StepStream.defaultSparseDBlockSize(20), "never more than the canvas");
        assertEquals(32, StepStream.defaultSparseDBlockSize(2047));
        assertEquals(128, StepStream.defaultSparseDBlockSize(2048));
        assertEquals(128, StepStream.defaultSparseDBlockSize(32768));
        assertEquals(PatternCache.DEFAULT_CAP_BYTES, StepStreamConfig.defaults().patternCacheBytes());
        assertThrows(IllegalArgumentException.class, () -> StepStreamConfig.defaults().withPatternCacheBytes(-1));
    }

    @Test
    void badSparseDSettingsNameTheField() {
        var model = new LoadedModel.Diffusion(dlm);
        record Case(String field, SparseDOptions sparsed) {
        }
        // Canvas: "a" is BOS + 1 token, + gen_length 64 = 66 tokens.
        List<Case> cases = List.of(
                new Case("diffusion.sparsed.skip", new SparseDOptions(-0.1, null, null)),
                new Case("diffusion.sparsed.skip", new SparseDOptions(1.5, null, null)),
                new Case("diffusion.sparsed.skip", new SparseDOptions(Double.NaN, null, null)),
                new Case("diffusion.sparsed.select", new SparseDOptions(null, 0.0, null)),
                new Case("diffusion.sparsed.select", new SparseDOptions(null, 1.01, null)),
                new Case("diffusion.sparsed.select", new SparseDOptions(null, Double.NaN, null)),
                new Case("diffusion.sparsed.block_size", new SparseDOptions(null, null, 0)),
                new Case("diffusion.sparsed.block_size", new SparseDOptions(null, null, -4)),
                new Case("diffusion.sparsed.block_size", new SparseDOptions(null, null, 67)));
        for (Case c : cases) {
            InvalidRequestException e = assertThrows(InvalidRequestException.class, () -> StepStream.validate(
                    dlmRequest("a", new DiffusionOptions(64, 32, 64, null, null, false, c.sparsed())), model, 2048),
                    c.toString());
            assertEquals(c.field(), e.field(), e.getMessage());
        }
        // The edges are accepted: skip 0 and 1, select 1, a block as long as the canvas.
        var edges = StepStream.validate(dlmRequest("a", new DiffusionOptions(64, 32, 64, null, null, false,
                new SparseDOptions(1.0, 1.0, 66))), model, 2048);
        assertEquals(new SparseDPolicy(1.0, 1.0, 66), edges.diffusion().sparseD());
        assertEquals(0.0, StepStream.validate(dlmRequest("a", new DiffusionOptions(64, 32, 64, null, null, false,
                new SparseDOptions(0.0, null, 1))), model, 2048).diffusion().sparseD().skip());
        // The Fast-dLLM cache is refused with SparseD (its patterns are built over the whole canvas every step).
        InvalidRequestException both = assertThrows(InvalidRequestException.class, () -> StepStream.validate(
                dlmRequest("a", new DiffusionOptions(64, 32, 64, null, null, false, SparseDOptions.DEFAULTS)
                        .withCache("dual")), model, 2048));
        assertEquals("diffusion.cache", both.field(), both.getMessage());
        assertTrue(both.getMessage().contains("diffusion.sparsed"), both.getMessage());
        // "none" with SparseD is just SparseD.
        assertEquals(io.stepstream.engine.dlm.DlmCacheMode.NONE, StepStream.validate(dlmRequest("a",
                new DiffusionOptions(64, 32, 64, null, null, false, SparseDOptions.DEFAULTS).withCache("none")),
                model, 2048).diffusion().cache());
    }
}
