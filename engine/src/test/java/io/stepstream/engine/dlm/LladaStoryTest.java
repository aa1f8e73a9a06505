package io.stepstream.engine.dlm;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The shipped diffusion model writes stories, and the engine reproduces the reference outputs quoted in its
 * model card (produced by the model's authors with a float64 Python implementation of LLaDA's generate).
 */
class LladaStoryTest {
    static final String ONCE = "Once upon a time, there was a little girl named Lily. She loved to play outside in the"
            + " park. One day, she went to the park to play with her friends. They saw a big box with a big box of"
            + " colors";
    static final String ONE_DAY = "One day, a little boy named Tim went to the park with his mom. They saw a big box"
            + " with a big box. Tim boy was happy to see what was inside. He wanted to play with the box.\nTim want";
    static final String SUN = "The sun was a little boy named Tim. Tim loved to play with his toys. He liked to play"
            + " with his toys and run around the park. One day, Tim saw a big box of toy car. He wanted to play with"
            + " it";

    private static String generate(String prompt, DiffusionParams p, int expectedForwards) {
        DiffusionModel m = DlmTestSupport.model();
        LladaGeneration gen = DlmTestSupport.run(m, LladaGeneration.start(m, prompt, p));
        int[] canvas = gen.canvas();
        String text = DlmTestSupport.decode(m.tokenizer(), Arrays.copyOfRange(canvas, 1, canvas.length));
        System.out.println("[LladaStoryTest] " + p + " (" + gen.forwards() + " forwards):\n" + text);
        assertEquals(expectedForwards, gen.forwards());
        return text;
    }

    @Test
    void greedyStoryAfterOnceUponATimeIsReadableEnglish() {
        String text = generate("Once upon a time",
                new DiffusionParams(64, 64, 64, 0.0, Remasking.LOW_CONFIDENCE, null, 0L), 64);
        for (String word : new String[]{" there ", " was ", " a ", " little ", " She ", " the ", " to ", " play "}) {
            assertTrue(text.contains(word), "'" + word + "' in: " + text);
        }
        assertEquals(ONCE, text);
    }

    @Test
    void semiAutoregressiveBlocksMatchTheModelCard() {
        assertEquals(ONE_DAY, generate("One day, a little",
                new DiffusionParams(64, 16, 32, 0.0, Remasking.LOW_CONFIDENCE, null, 0L), 32));
    }

    @Test
    void thresholdDecodingMatchesTheModelCard() {
        assertEquals(SUN, generate("The sun was",
                new DiffusionParams(64, 32, 64, 0.0, Remasking.LOW_CONFIDENCE, 0.9, 0L), 60));
    }

    @Test
    void theQuotedStoriesAreTheOnesInTheShippedModelCard() throws IOException {
        String card = Files.readString(DlmTestSupport.resourceDir().resolve("MODEL_CARD.md")).replaceAll("\\s+", " ");
        for (String story : new String[]{ONCE, ONE_DAY, SUN}) {
            assertTrue(card.contains("*" + story.replaceAll("\\s+", " ") + "*"), story);
        }
    }
}
