package io.stepstream.engine.bench;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama.LlamaModel;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tokenizer.TestVocabularies;
import io.stepstream.engine.tools.SynthModel;
import io.stepstream.engine.tools.SynthShape;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bench's arithmetic without timing: bytes per step, bandwidth fraction, tokens/s, ratios. */
class BenchAccountingTest {
    @TempDir
    Path dir;

    @Test
    void weightBytesPerStepOfAnF32ModelFollowFromItsShape() {
        Path models = TestVocabularies.sharedModels().resolve("stories260K");
        try (var model = (LlamaModel) Models.load(models.resolve("stories260K.bin"), models.resolve("tok512.bin"),
                ModelOptions.defaults().withComputeThreads(1))) {
            ModelConfig c = model.config();
            long dim = c.dim();
            long kvDim = c.kvDim();
            long hidden = c.hiddenDim();
            long perLayer = 4 * (2 * dim * dim + 2 * kvDim * dim + 3 * hidden * dim);
            long matrices = c.nLayers() * perLayer + 4 * c.vocabSize() * dim;
            long vectors = 4 * (c.nLayers() * 2 * dim + dim);
            WeightTraffic t = WeightTraffic.perStep(model.weights(), 7);
            assertEquals(matrices, t.matrices());
            assertEquals(vectors, t.vectors());
            assertEquals(7 * 4 * dim, t.embeddingRows());
            assertEquals(matrices + vectors + 7 * 4 * dim, t.total());
            // one pass over the matrices serves any batch: only the embedding rows grow with it
            assertEquals(t.total() - 6 * 4 * dim, WeightTraffic.perStep(model.weights(), 1).total());
            assertThrows(IllegalArgumentException.class, () -> WeightTraffic.perStep(model.weights(), 0));
            // a multiply and an add per weight of every matrix, per token
            assertEquals(2 * (matrices / 4), MatmulFlops.perToken(model.weights()));
        }
    }

    @Test
    void q8WeightsCount34BytesPer32Weights() throws IOException {
        Path file = dir.resolve("15m-q8.gguf");
        SynthModel.writeGguf(file, SynthShape.byId("llama2-15m"), TensorType.Q8_0, 512, 3);
        try (var model = (LlamaModel) Models.load(file.toString(), ModelOptions.defaults().withComputeThreads(1))) {
            ModelConfig c = model.config();
            long dim = c.dim();
            long perLayer = (2 * dim * dim + 2 * (long) c.kvDim() * dim + 3 * (long) c.hiddenDim() * dim) / 32 * 34;
            long output = model.weights().output().rows() * model.weights().output().rowBytes();
            WeightTraffic t = WeightTraffic.perStep(model.weights(), 1);
            assertEquals(c.nLayers() * perLayer + output, t.matrices());
            assertEquals(model.weights().tokenEmbedding().rowBytes(), t.embeddingRows());
            // quantized or not, one multiply-add per weight per token
            long weights = c.nLayers() * (2 * dim * dim + 2 * (long) c.kvDim() * dim + 3 * (long) c.hiddenDim() * dim)
                    + (long) model.weights().output().rows() * dim;
            assertEquals(2 * weights, MatmulFlops.perToken(model.weights()));
        }
    }

    @Test
    void bandwidthMath() {
        assertEquals(12L * 1000, Bandwidth.triadBytes(1000));
        assertEquals(2e9, Bandwidth.bytesPerSecond(3_000_000_000L, 1_500_000_000L), 1e-3);
        // 50 MB per step in 10 ms is 5 GB/s; against 20 GB/s that is a quarter of the limit
        assertEquals(0.25, Bandwidth.fractionOfLimit(50_000_000L, 0.010, 20e9), 1e-12);
        assertThrows(IllegalArgumentException.class, () -> Bandwidth.fractionOfLimit(1, 0, 1e9));
        assertThrows(IllegalArgumentException.class, () -> Bandwidth.fractionOfLimit(1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> Bandwidth.bytesPerSecond(1, 0));
        assertThrows(IllegalArgumentException.class, () -> Bandwidth.triadBytes(-1));
    }

    @Test
    void triadMeasuresSomethingPositiveAndChecksItsResult() {
        double bw = Bandwidth.measureTriad(2, 1 << 16, 2);
        assertTrue(bw > 0 && Double.isFinite(bw), "bandwidth " + bw);
        assertThrows(IllegalArgumentException.class, () -> Bandwidth.measureTriad(0, 100, 1));
    }

    @Test
    void fmaPeakMeasuresSomethingPositiveAndChecksItsResult() {
        // a = a * 0.5 + 1 converges to 2 in every lane of every chain, whatever the start
        float lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        assertEquals(2f * FmaPeak.CHAINS * lanes, FmaPeak.chains(200), 1e-3f);
        assertEquals(2.0 * FmaPeak.CHAINS * lanes * 1000, FmaPeak.flops(1000), 0);
        double peak = FmaPeak.measure(2, 1 << 12, 2);
        assertTrue(peak > 0 && Double.isFinite(peak), "peak " + peak);
        assertThrows(IllegalArgumentException.class, () -> FmaPeak.measure(0, 1 << 12, 1));
        assertThrows(IllegalArgumentException.class, () -> FmaPeak.measure(1, 10, 1));
    }

    @Test
    void runRatesAndRowRatios() {
        // 8 sequences x 32 steps in 2 s of decode after 2 s of prefill
        RunResult ours = new RunResult("stepstream", 8, 16, 32, 2_000_000_000L, 2_000_000_000L);
        assertEquals(128.0, ours.decodeTokensPerSecond(), 1e-9);
        assertEquals(64.0, ours.overallTokensPerSecond(), 1e-9);
        assertEquals(62.5, ours.msPerStep(), 1e-9);
        RunResult plain = new RunResult("llama.cpp", 8, 16, 32, 1_000_000_000L, 4_000_000_000L);
        RunResult flash = new RunResult("llama.cpp FA", 8, 16, 32, 1_000_000_000L, 3_200_000_000L);
        // 125 MB per step at 62.5 ms = 2 GB/s, against 8 GB/s
        // 5 GFLOP per step at 62.5 ms = 80 GFLOP/s, against a 160 GFLOP/s peak
        Bench.Row row = new Bench.Row(8, 125_000_000L, 8e9, 5_000_000_000L, 160e9, ours, plain, flash);
        assertSame(flash, row.bestLlamaCpp());
        assertEquals(128.0 / 80.0, row.ratio(), 1e-12);
        assertEquals(0.25, row.oursFraction(), 1e-12);
        assertEquals(125e6 / 0.1 / 8e9, row.fraction(flash), 1e-12);
        assertEquals(0.5, row.oursComputeFraction(), 1e-12);
        assertEquals(5e9 / 0.1 / 160e9, row.computeFraction(flash), 1e-12);
        Bench.Row alone = new Bench.Row(1, 125_000_000L, 0, 625_000_000L, 0, ours, null, null);
        assertNull(alone.bestLlamaCpp());
        assertTrue(Double.isNaN(alone.ratio()));
        assertTrue(Double.isNaN(alone.oursFraction()));
        assertTrue(Double.isNaN(alone.oursComputeFraction()));
        assertThrows(IllegalArgumentException.class, () -> new RunResult("x", 0, 1, 1, 1, 1));
    }

    @Test
    void badOptionsNameTheOption() {
        Path m = dir.resolve("m.gguf");
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Bench.Options.of(m, java.util.List.of(1, 0), 8, 4, 1, false)).getMessage().contains("--batch"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Bench.Options.of(m, java.util.List.of(), 8, 4, 1, false)).getMessage().contains("--batch"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Bench.Options.of(m, java.util.List.of(1), 0, 4, 1, false)).getMessage().contains("--tokens"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Bench.Options.of(m, java.util.List.of(1), 8, 0, 1, false)).getMessage().contains("--prompt-tokens"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Bench.Options.of(m, java.util.List.of(1), 8, 4, 0, false)).getMessage().contains("--threads"));
        for (double bad : new double[] {-1, Double.NaN, 1e9}) {
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> Bench.Options.of(m, java.util.List.of(1), 8, 4, 1, false, bad, 1)).getMessage()
                    .contains("--warmup-seconds"));
        }
        assertEquals(Bench.DEFAULT_WARMUP_SECONDS, Bench.Options.of(m, java.util.List.of(1), 8, 4, 1, false)
                .warmupSeconds());
        for (int bad : new int[] {0, 100}) {
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> Bench.Options.of(m, java.util.List.of(1), 8, 4, 1, false, 1, bad)).getMessage()
                    .contains("--repeat"));
        }
    }

    @Test
    void medianIsTheMiddleRunByDecodeRate() {
        RunResult slow = new RunResult("x", 1, 1, 10, 1, 4_000_000_000L);
        RunResult mid = new RunResult("x", 1, 1, 10, 1, 2_000_000_000L);
        RunResult fast = new RunResult("x", 1, 1, 10, 1, 1_000_000_000L);
        assertEquals(null, Bench.median(java.util.List.of()));
        assertEquals(fast, Bench.median(java.util.List.of(fast)));
        assertEquals(mid, Bench.median(java.util.List.of(fast, slow, mid)));
        assertEquals(slow, Bench.median(java.util.List.of(fast, slow))); // the lower middle: a run that happened
    }

    @Test
    void jsonStringsAreEscaped() {
        assertEquals("\"a\\\"b\\\\c\\nd\\u0001\"", BenchTable.quote("a\"b\\c\nd\u0001"));
    }
}
