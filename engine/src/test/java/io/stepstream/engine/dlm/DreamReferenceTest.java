package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama.RopeLayout;
import io.stepstream.engine.tools.DreamSynth;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Dream on a synthetic model (random weights, Dream's architecture): the float32 forward against the float64
 * reference, and DreamGeneration (production forward + sampler) against the reference forward + the transcription
 * of Dream's _sample, token for token, for every algorithm and sampling setting.
 */
class DreamReferenceTest {
    @TempDir
    static Path dir;
    static DiffusionModel model;
    static ReferenceDream reference;

    @BeforeAll
    static void writeModel() throws IOException {
        DreamSynth.write(dir.resolve("dream"), DreamSynth.Shape.DREAM_TINY, 7);
        model = Models.loadDiffusion(dir.resolve("dream").toString(),
                ModelOptions.defaults().withComputeThreads(2).withParallelThreshold(0));
        reference = new ReferenceDream(dir.resolve("dream"));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void loaderReadsTheDreamFolder() {
        assertEquals(DiffusionFamily.DREAM, model.family());
        assertEquals(RopeLayout.NEOX, model.ropeLayout());
        assertEquals(DreamSynth.MASK_ID, model.maskId());
        assertEquals(513, model.vocabSize());
        assertEquals(2, model.config().nKvHeads());
        assertEquals(2, model.tokenizer().eosId());
    }

    @Test
    void forwardMatchesTheReferenceOnRandomCanvases() {
        SplittableRandom r = new SplittableRandom(3);
        for (int round = 0; round < 3; round++) {
            List<DenoiseInput> batch = new ArrayList<>();
            int n = 1 + r.nextInt(3);
            for (int i = 0; i < n; i++) {
                int len = 2 + r.nextInt(40);
                int[] tokens = new int[len];
                for (int p = 0; p < len; p++) {
                    tokens[p] = r.nextInt(3) == 0 ? model.maskId() : r.nextInt(model.vocabSize());
                }
                int start = r.nextInt(len);
                batch.add(new DenoiseInput(tokens, start, 1 + r.nextInt(len - start)));
            }
            compare(model, reference, batch);
        }
    }

    @Test
    void tiedClassifierMatchesTheReference(@TempDir Path tiedDir) throws IOException {
        DreamSynth.write(tiedDir, DreamSynth.Shape.DREAM_TINY_TIED, 11);
        try (DiffusionModel tied = Models.loadDiffusion(tiedDir.toString(), ModelOptions.defaults()
                .withComputeThreads(1))) {
            assertTrue(tied.config().sharedClassifier());
            int[] canvas = {1, 300, 40, 512, 512, 77, 512, 9};
            compare(tied, new ReferenceDream(tiedDir), List.of(new DenoiseInput(canvas, 0, canvas.length)));
            DreamParams p = DreamParams.greedy(12, 6, DreamAlgorithm.ENTROPY);
            // Tied, the classifier is the embedding, so a masked position's best guess is the mask id itself (kept
            // masked, as Dream does): a check of the plumbing, not of varied text.
            assertGenerationMatches(tied, new ReferenceDream(tiedDir), new int[] {1, 300, 40}, p, false);
        }
    }

    private static void compare(DiffusionModel m, ReferenceDream ref, List<DenoiseInput> batch) {
        int vocab = m.vocabSize();
        float[][] logits = new float[batch.size()][];
        for (int i = 0; i < batch.size(); i++) {
            logits[i] = new float[batch.get(i).logitsLength() * vocab];
        }
        m.forward(batch, logits);
        for (int i = 0; i < batch.size(); i++) {
            DenoiseInput in = batch.get(i);
            double[][] expected = ref.outputs(in.tokens());
            double maxDiff = 0;
            double maxRef = 0;
            for (int p = 0; p < in.logitsLength(); p++) {
                for (int v = 0; v < vocab; v++) {
                    double e = expected[in.logitsStart() + p][v];
                    maxDiff = Math.max(maxDiff, Math.abs(logits[i][p * vocab + v] - e));
                    maxRef = Math.max(maxRef, Math.abs(e));
                }
            }
            assertTrue(maxRef > 0.5, "reference logits are not trivially small: " + maxRef);
            assertTrue(maxDiff / maxRef < 1e-4, "input " + i + ": relative error " + maxDiff / maxRef);
        }
    }

    static Stream<Arguments> settings() {
        // prompt, gen, steps, alg, alg_temp, temperature, top_p, top_k, eps, seed
        return Stream.of(
                Arguments.of("Once upon a time", 24, 12, "origin", null, 0.0, null, null, 1e-3, 0L),
                Arguments.of("The cat sat", 24, 8, "origin", null, 0.8, 0.9, null, 1e-3, 5L),
                Arguments.of("One day, a little", 24, 12, "maskgit_plus", null, 0.0, null, null, 1e-3, 0L),
                Arguments.of("Lily and Tom", 32, 8, "maskgit_plus", 0.5, 0.7, null, 20, 1e-3, 9L),
                Arguments.of("The dog ran", 24, 24, "topk_margin", null, 0.0, null, null, 1e-3, 0L),
                Arguments.of("Tim had a ball", 24, 10, "topk_margin", 0.0, 1.0, 0.95, 50, 1e-3, 13L),
                Arguments.of("The sun was", 24, 24, "entropy", null, 0.0, null, null, 1e-3, 0L),
                Arguments.of("Once upon a time", 32, 16, "entropy", 0.2, 0.5, null, null, 1e-3, 21L),
                Arguments.of("A big red", 32, 12, "entropy", 0.0, 0.2, 0.95, null, 1e-3, 4L),
                Arguments.of("She said", 32, 5, "maskgit_plus", null, 0.0, null, 3, 0.05, 0L));
    }

    @ParameterizedTest
    @MethodSource("settings")
    void generationMatchesDreamsSampler(String prompt, int gen, int steps, String alg, Double algTemp,
                                        double temperature, Double topP, Integer topK, double eps, long seed) {
        DreamParams p = new DreamParams(gen, steps, temperature, topP, topK, DreamAlgorithm.of(alg), algTemp, eps,
                seed);
        assertGenerationMatches(model, reference, model.tokenizer().encode(prompt, false, false), p, true);
    }

    private static void assertGenerationMatches(DiffusionModel m, ReferenceDream ref, int[] prompt, DreamParams p,
                                                boolean varied) {
        DreamGeneration gen = DreamGeneration.start(m, prompt, p);
        List<Integer> streamed = new ArrayList<>();
        float[][] logits = {new float[gen.logitsLength()]};
        int lastStreamedEnd = prompt.length;
        while (!gen.done()) {
            m.forward(List.of(gen.nextInput()), logits);
            DenoiseOutcome o = gen.apply(logits[0]);
            if (o.blockCompleted()) {
                assertEquals(lastStreamedEnd, o.blockStart(), "stream chunks follow each other in position order");
                lastStreamedEnd += o.blockTokens().length;
                for (int t : o.blockTokens()) {
                    streamed.add(t);
                }
            }
        }
        ReferenceDreamSample.Result expected = ReferenceDreamSample.generate(ref::shiftedLogits, prompt, ref.vocab,
                ref.maskId, p);
        int[] canvas = gen.canvas();
        System.out.println("[DreamReferenceTest] " + p + " forwards=" + gen.forwards() + " canvas="
                + Arrays.toString(Arrays.copyOfRange(canvas, prompt.length, canvas.length)));
        assertArrayEquals(expected.canvas(), canvas, "canvas for " + p);
        assertEquals(expected.forwards(), gen.forwards(), "forward passes");
        assertTrue(gen.forwards() <= p.steps());
        assertEquals(canvas.length, lastStreamedEnd, "the stream covers the whole generated canvas");
        assertArrayEquals(gen.generated(), streamed.stream().mapToInt(Integer::intValue).toArray());
        int distinct = (int) Arrays.stream(gen.generated()).distinct().count();
        if (varied) {
            assertTrue(distinct > 3, "generation is not a near-constant canvas: " + distinct + " distinct ids");
            assertTrue(Arrays.stream(gen.generated()).noneMatch(t -> t == m.maskId()), "no position kept the mask");
        }
    }
}
