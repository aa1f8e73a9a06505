package io.stepstream.engine.dlm;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Production LLaDA generation (float32 batched forward + LladaGeneration) against the float64 reference (plain
 * forward + transcription of generate) on the shipped model: the whole canvas must be token-identical.
 */
class LladaReferenceTest {
    static Stream<Arguments> settings() {
        return Stream.of(
                // prompt, gen, block, steps, temperature, remasking, threshold, seed
                Arguments.of("Once upon a time", 32, 32, 32, 0.0, Remasking.LOW_CONFIDENCE, null, 0L),
                Arguments.of("One day, a little", 32, 16, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L),
                Arguments.of("The cat", 32, 8, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L),
                Arguments.of("Lily and Tom", 32, 16, 32, 0.0, Remasking.RANDOM, null, 7L),
                Arguments.of("Once upon a time", 32, 16, 16, 0.8, Remasking.LOW_CONFIDENCE, null, 42L),
                Arguments.of("The dog ran", 32, 8, 8, 1.0, Remasking.RANDOM, null, 3L),
                Arguments.of("The sun was", 32, 16, 32, 0.0, Remasking.LOW_CONFIDENCE, 0.9, 0L),
                Arguments.of("Tim had a ball", 32, 32, 32, 0.7, Remasking.LOW_CONFIDENCE, 0.9, 11L));
    }

    @ParameterizedTest
    @MethodSource("settings")
    void productionMatchesReference(String prompt, int gen, int block, int steps, double temperature,
                                    Remasking remasking, Double threshold, long seed) {
        DiffusionModel m = DlmTestSupport.model();
        ReferenceDlm ref = DlmTestSupport.reference();
        DiffusionParams p = new DiffusionParams(gen, block, steps, temperature, remasking, threshold, seed);
        int[] prefix = m.tokenizer().encode(prompt, true, false);
        LladaGeneration production = DlmTestSupport.run(m, LladaGeneration.start(m, prefix, p));
        ReferenceLlada.Result expected = ReferenceLlada.generate(ref::logits, prefix, ref.vocab, ref.maskId, gen,
                block, steps, temperature, remasking == Remasking.RANDOM, threshold, seed);
        int[] canvas = production.canvas();
        System.out.println("[LladaReferenceTest] " + p + " forwards=" + production.forwards() + ": "
                + DlmTestSupport.decode(m.tokenizer(), Arrays.copyOfRange(canvas, 1, canvas.length)));
        assertArrayEquals(expected.canvas(), canvas, "canvas for " + p);
        assertEquals(expected.forwards(), production.forwards(), "forward passes");
    }
}
