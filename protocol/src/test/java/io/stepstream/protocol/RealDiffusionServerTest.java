package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.protocol.v1.DiffusionOptions;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.ModelCard;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;

/**
 * End to end over gRPC on a loopback port: one server with both embedded models (stories260K, the default, and
 * the diffusion LM tinystories-dlm), and the command line's diffusion options.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class RealDiffusionServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @RegisterExtension
    static final LoopbackServer loopback = LoopbackServer.real("real-diffusion-server-test",
            StepStreamConfig.defaults(), "stories260K", "tinystories-dlm");

    private static GenerateRequest.Builder dlm(String prompt, int gen, int block, int steps) {
        return GenerateRequest.newBuilder().setModel("tinystories-dlm").setPrompt(prompt)
                .setDiffusion(DiffusionOptions.newBuilder().setGenLength(gen).setBlockLength(block).setSteps(steps));
    }

    /** A finished stream: token ids, text (with the final's), finish reason, completion tokens, progress events. */
    record Stream(List<Integer> tokens, String text, String reason, int completionTokens, int progress) {
    }

    private static Stream collect(GenerateRequest request) {
        List<Integer> tokens = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        int progress = 0;
        try (var events = loopback.client().generate(request)) {
            while (events.hasNext()) {
                GenerateEvent e = events.next();
                switch (e.getEventCase()) {
                    case TOKEN -> {
                        tokens.add(e.getToken().getTokenId());
                        text.append(e.getToken().getText());
                        assertTrue(!e.getToken().hasLogprob(), "no logprobs from a diffusion model");
                    }
                    case PROGRESS -> progress++;
                    case FINAL -> {
                        text.append(e.getFinal().getText());
                        return new Stream(tokens, text.toString(), e.getFinal().getFinishReason(),
                                e.getFinal().getUsage().getCompletionTokens(), progress);
                    }
                    case EVENT_NOT_SET -> throw new AssertionError("empty event");
                }
            }
        }
        throw new AssertionError("no final event");
    }

    @Test
    void listModelsShowsBothKindsWithTheAutoregressiveDefault() {
        List<ModelCard> models = loopback.client().listModels();
        assertEquals(2, models.size());
        assertEquals("stories260K", models.get(0).getName());
        assertEquals("autoregressive", models.get(0).getKind());
        assertTrue(models.get(0).getIsDefault());
        assertEquals("tinystories-dlm", models.get(1).getName());
        assertEquals("diffusion", models.get(1).getKind());
        assertEquals(256, models.get(1).getContextLength());
        assertEquals(513, models.get(1).getVocabSize());
    }

    @Test
    void eightDiffusionStreamsAndFourAutoregressiveOnesOnOneServerAllFinishRight() throws Exception {
        List<String> prompts = List.of("Once upon a time", "One day, a little", "The sun was", "Tom had a red ball",
                "Lily saw a cat", "The dog ran", "Once upon a time", "A big bird");
        ExecutorService clients = Executors.newFixedThreadPool(12);
        try {
            List<CompletableFuture<Stream>> dlmStreams = new ArrayList<>();
            List<DiffusionParams> params = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) {
                GenerateRequest.Builder r = i % 2 == 0 ? dlm(prompts.get(i), 16, 8, 8) : dlm(prompts.get(i), 16, 16, 8);
                Double threshold = i == 6 ? 0.9 : null;
                if (threshold != null) {
                    r.getDiffusionBuilder().setThreshold(threshold);
                }
                params.add(new DiffusionParams(16, i % 2 == 0 ? 8 : 16, 8, 0.0, Remasking.LOW_CONFIDENCE, threshold,
                        0L));
                GenerateRequest request = r.setSeed(0).build();
                dlmStreams.add(CompletableFuture.supplyAsync(() -> collect(request), clients));
            }
            List<CompletableFuture<Stream>> arStreams = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                GenerateRequest request = GenerateRequest.newBuilder().setPrompt("").setTemperature(0f)
                        .setMaxTokens(20 + i).build();
                arStreams.add(CompletableFuture.supplyAsync(() -> collect(request), clients));
            }
            for (int i = 0; i < prompts.size(); i++) {
                Stream got = dlmStreams.get(i).get(240, TimeUnit.SECONDS);
                DiffusionReference.Expected want = DiffusionReference.of(prompts.get(i), params.get(i));
                assertEquals(want.tokens(), got.tokens(), prompts.get(i));
                assertEquals(want.text(), got.text(), prompts.get(i));
                assertEquals(want.finishReason(), got.reason(), prompts.get(i));
                assertEquals(0, got.progress(), "no progress events unless asked");
            }
            for (int i = 0; i < 4; i++) {
                Stream got = arStreams.get(i).get(240, TimeUnit.SECONDS);
                assertEquals("length", got.reason());
                assertEquals(20 + i, got.tokens().size());
                assertTrue(RealEngineServerTest.KNOWN_STORY.startsWith(got.text()), got.text());
            }
        } finally {
            clients.shutdownNow();
        }
    }

    @Test
    void progressEventsComeWhenAskedAndTheDefaultsAreLlada() {
        Stream got = collect(GenerateRequest.newBuilder().setModel("tinystories-dlm").setPrompt("The sun was")
                .setDiffusion(DiffusionOptions.newBuilder().setGenLength(16).setProgress(true)).build());
        // Defaults: one block of 16, 16 steps, greedy (temperature unset means 0 for a diffusion model).
        assertEquals(16, got.progress());
        DiffusionReference.Expected want = DiffusionReference.of("The sun was",
                new DiffusionParams(16, 16, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L));
        assertEquals(want.tokens(), got.tokens());
        assertEquals(want.text(), got.text());
    }

    @Test
    void badDiffusionSettingsAreInvalidArgumentNamingTheField() {
        loopback.assertInvalidArgument("diffusion.gen_length", dlm("Once", 60, 32, 60).build());
        loopback.assertInvalidArgument("diffusion.gen_length", dlm("Once", 300, 300, 300).build());
        loopback.assertInvalidArgument("diffusion.steps", dlm("Once", 64, 16, 30).build());
        loopback.assertInvalidArgument("diffusion.steps", dlm("Once", 64, 32, 128).build());
        UnaryOperator<GenerateRequest.Builder> threshold = r -> {
            r.getDiffusionBuilder().setThreshold(1.5);
            return r;
        };
        loopback.assertInvalidArgument("diffusion.threshold", threshold.apply(dlm("Once", 64, 32, 64)).build());
        UnaryOperator<GenerateRequest.Builder> remasking = r -> {
            r.getDiffusionBuilder().setRemasking("lowest");
            return r;
        };
        loopback.assertInvalidArgument("diffusion.remasking", remasking.apply(dlm("Once", 64, 32, 64)).build());
        loopback.assertInvalidArgument("max_tokens", dlm("Once", 64, 32, 64).setMaxTokens(10).build());
        loopback.assertInvalidArgument("top_k", dlm("Once", 64, 32, 64).setTopK(5).build());
        loopback.assertInvalidArgument("top_p", dlm("Once", 64, 32, 64).setTopP(0.9f).build());
        loopback.assertInvalidArgument("logprobs", dlm("Once", 64, 32, 64).setLogprobs(2).build());
        loopback.assertInvalidArgument("diffusion", GenerateRequest.newBuilder().setPrompt("Once").setMaxTokens(5)
                .setDiffusion(DiffusionOptions.newBuilder().setGenLength(16)).build());
    }

    @Test
    void theCliExampleStreamsTheStoryAndJsonGivesOneLinePerTokenInPositionOrder() throws Exception {
        // The command of the issue, in this process.
        var run = RealEngineCliTest.cli("generate", "--model", "tinystories-dlm", "--gen-length", "64",
                "--block-length", "32", "--steps", "64", "Once upon a time");
        assertEquals(0, run.exitCode(), run.err());
        DiffusionReference.Expected story = DiffusionReference.of("Once upon a time",
                new DiffusionParams(64, 32, 64, 0.0, Remasking.LOW_CONFIDENCE, null, 0L));
        assertEquals(story.text() + "\n", run.out());
        assertTrue(story.text().startsWith(", there was a little"), story.text());

        var json = RealEngineCliTest.cli("generate", "--server", loopback.target(), "--model",
                "tinystories-dlm", "--gen-length", "16", "--block-length", "8", "--steps", "8", "--progress", "--json",
                "Tom had a red ball");
        assertEquals(0, json.exitCode(), json.err());
        DiffusionReference.Expected want = DiffusionReference.of("Tom had a red ball",
                new DiffusionParams(16, 8, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L));
        List<Integer> ids = new ArrayList<>();
        List<Integer> steps = new ArrayList<>();
        List<String> lines = json.out().lines().toList();
        for (String line : lines.subList(0, lines.size() - 1)) {
            JsonNode node = JSON.readTree(line);
            if (node.has("progress")) {
                steps.add(node.get("progress").get("step").asInt());
            } else {
                ids.add(node.get("token_id").asInt());
            }
        }
        assertEquals(want.tokens(), ids);
        assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7), steps);
        JsonNode last = JSON.readTree(lines.getLast());
        assertEquals(want.finishReason(), last.get("finish_reason").asText());

        var bad = RealEngineCliTest.cli("generate", "--server", loopback.target(), "--model",
                "tinystories-dlm", "--gen-length", "64", "--block-length", "16", "--steps", "30", "x");
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().startsWith("stepstream: diffusion.steps: 30 is not divisible by the number of blocks 4"),
                bad.err());
        var badRemasking = RealEngineCliTest.cli("generate", "--server", loopback.target(), "--model",
                "tinystories-dlm", "--remasking", "sideways", "x");
        assertEquals(2, badRemasking.exitCode());
        assertTrue(badRemasking.err().contains("diffusion.remasking: unknown 'sideways'"), badRemasking.err());
    }
}
