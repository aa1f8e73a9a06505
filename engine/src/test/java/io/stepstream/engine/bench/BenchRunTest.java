package io.stepstream.engine.bench;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama.LlamaModel;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.reference.LlamaCpp;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tokenizer.TestVocabularies;
import io.stepstream.engine.tools.Llama2cConvert;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** A tiny bench on stories260K (as an F32 GGUF): the report's structure, and both engines' batch paths agree. */
class BenchRunTest {
    @TempDir
    static Path dir;
    static Path models;
    static Path gguf;

    @BeforeAll
    static void convert() throws IOException {
        models = TestVocabularies.sharedModels().resolve("stories260K");
        Llama2Weights w = Llama2Checkpoint.read(models.resolve("stories260K.bin"));
        Llama2Tokenizer tok = Llama2Tokenizer.read(models.resolve("tok512.bin"), w.config().vocabSize());
        gguf = dir.resolve("stories260K-f32.gguf");
        Llama2cConvert.toGguf(w, tok, "stories260K", TensorType.F32, gguf);
    }

    @Test
    void tinyBenchReportsEveryBatchSizeForBothEngines() {
        boolean llamaCpp = LlamaCpp.available();
        List<String> progress = new ArrayList<>();
        var options = new Bench.Options(gguf, List.of(1, 3), 6, 5, 2, llamaCpp, 2, 0.05, 3, 1 << 16, 1 << 12, 5);
        Bench.Report r = Bench.run(options, progress::add);
        assertEquals(3, r.repeats());
        // three alternating timed runs a batch size, the row holding each engine's median
        assertTrue(progress.stream().anyMatch(l -> l.startsWith("batch 3 run 3: ours ")), progress.toString());
        assertEquals("stories260K-f32.gguf", r.model());
        assertEquals("F32", r.weightType());
        assertEquals(2, r.threads());
        assertEquals(2, r.rows().size());
        assertNull(r.llamaCppNote(), r.llamaCppNote());
        try (var model = (LlamaModel) Models.load(gguf.toString(), ModelOptions.defaults().withComputeThreads(1))) {
            for (int i = 0; i < 2; i++) {
                Bench.Row row = r.rows().get(i);
                int batch = i == 0 ? 1 : 3;
                assertEquals(batch, row.batch());
                assertEquals(WeightTraffic.perStep(model.weights(), batch).total(), row.weightBytesPerStep());
                assertTrue(row.bandwidth() > 0);
                assertEquals(batch * MatmulFlops.perToken(model.weights()), row.matmulFlopsPerStep());
                assertTrue(row.fmaPeak() > 0 && Double.isFinite(row.oursComputeFraction()), row.toString());
                for (RunResult run : llamaCpp ? List.of(row.ours(), row.llamaCpp(), row.llamaCppFlash())
                        : List.of(row.ours())) {
                    assertNotNull(run);
                    assertEquals(batch, run.batch());
                    assertEquals(5, run.promptTokens());
                    assertEquals(6, run.decodeSteps());
                }
                assertEquals("stepstream", row.ours().engine());
                assertEquals(llamaCpp, Double.isFinite(row.ratio()));
                assertTrue(Double.isFinite(row.oursFraction()));
            }
        }
        assertTrue(progress.stream().anyMatch(p -> p.startsWith("batch 3: triad")), progress.toString());
        String[] lines = BenchTable.text(r).split("\n");
        assertEquals(4, lines.length, String.join("\n", lines));
        assertTrue(lines[1].trim().startsWith("batch") && lines[1].contains("ratio"), lines[1]);
        assertTrue(lines[3].trim().startsWith("3 "), lines[3]);
        String json = BenchTable.json(r);
        assertTrue(json.startsWith("{\"model\":\"stories260K-f32.gguf\"") && json.contains("\"batch\":3"), json);
        assertTrue(json.contains("\"fmaPeakFlopsPerSecond\":") && json.contains("\"fmaPeakFraction\":"), json);
        assertEquals(llamaCpp, json.contains("\"engine\":\"llama.cpp FA\""), json);
    }

    @Test
    void bothEnginesDecodeTheSameGreedyTokensThroughTheBenchBatchPaths() {
        assumeTrue(LlamaCpp.available(), "llama.cpp reference needs linux-x86_64 and the de.kherud:llama jar");
        int steps = 24;
        int[][] prompts = Prompts.random(3, 6, 512, 11);
        int[][] ours = new int[3][steps + 1];
        int[][] theirs = new int[3][steps + 1];
        int[][] alone = new int[1][steps + 1];
        try (var model = Models.load(gguf.toString(), ModelOptions.defaults().withComputeThreads(2));
             LlamaCpp.Model ref = LlamaCpp.get().load(gguf, false)) {
            OursRunner.run(model, prompts, steps, ours);
            LlamaCppRunner.run(ref, 2, false, prompts, steps, 3, 0.0, theirs);
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(theirs[i], ours[i], "sequence " + i + ": ours vs llama.cpp (3 parallel sequences)");
                OursRunner.run(model, new int[][] {prompts[i]}, steps, alone);
                assertArrayEquals(alone[0], ours[i], "sequence " + i + ": alone vs in the batch of 3");
            }
        }
    }

    @Test
    void llamaCppIsSkippedWithAReasonForAFileItCannotRead() {
        var options = new Bench.Options(models.resolve("stories260K.bin"), List.of(2), 2, 3, 1, true, 0, 0.0, 1, 0, 0, 1);
        Bench.Report r = Bench.run(options, line -> { });
        assertNotNull(r.llamaCppNote());
        assertTrue(r.llamaCppNote().startsWith("llama.cpp not run: "), r.llamaCppNote());
        assertNull(r.rows().getFirst().llamaCpp());
        assertEquals(0.0, r.rows().getFirst().bandwidth());
    }

    @Test
    void runsLongerThanTheContextAreRejected() {
        var options = new Bench.Options(gguf, List.of(1), 600, 16, 1, false, 0, 0.0, 1, 0, 0, 1);
        var e = assertThrows(IllegalArgumentException.class, () -> Bench.run(options, line -> { }));
        assertTrue(e.getMessage().contains("context length"), e.getMessage());
        var missing = new Bench.Options(dir.resolve("nope.gguf"), List.of(1), 6, 6, 1, false, 0, 0.0, 1, 0, 0, 1);
        assertTrue(assertThrows(RuntimeException.class, () -> Bench.run(missing, line -> { })).getMessage()
                .contains("nope.gguf"));
    }
}
