package io.stepstream.engine;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The embedded stories260K, decoded greedily from BOS, must tell exactly the story llama2.c publishes. */
class GreedyStoryTest {
    /** The known-good greedy output published with llama2.c for stories260K (also in shared/models README). */
    static final String STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in"
            + " the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high";

    @Test
    void expectedStoryIsTheOnePublishedInTheModelReadme() throws IOException {
        Path models = TestSupport.sharedModels();
        if (models != null && Files.isRegularFile(models.resolve("stories260K/README.md"))) {
            String readme = Files.readString(models.resolve("stories260K/README.md"));
            assertTrue(readme.contains("\"" + STORY + "\""), "README quotes the story");
        }
    }

    @Test
    void greedyFromBosTellsThePublishedStory() {
        try (Model model = Models.load(Models.DEFAULT_MODEL); KvCache cache = model.newKvCache()) {
            Tokenizer tok = model.tokenizer();
            StreamingDecoder decoder = tok.streamingDecoder();
            StringBuilder text = new StringBuilder();
            int token = tok.bosId();
            while (text.length() < STORY.length() && cache.length() < model.config().contextLength()) {
                float[] logits = TestSupport.step(model, cache, new int[]{token}, 0, 1);
                int next = TestSupport.argmax(logits);
                if (next == tok.bosId() || next == tok.eosId()) {
                    break;
                }
                text.append(decoder.push(next));
                token = next;
            }
            text.append(decoder.flush());
            assertTrue(text.length() >= STORY.length(), "generation stopped early: " + text);
            assertEquals(STORY, text.substring(0, STORY.length()));
            assertEquals("stories260K", model.name());
        }
    }
}
