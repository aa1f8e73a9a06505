package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.stepstream.actors.ModelInfo;
import io.stepstream.actors.StepStream;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.ModelCard;
import io.stepstream.protocol.v1.TokenIds;
import io.stepstream.scheduler.StepBatch;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;

/** End to end: the gRPC server over the real StepStream with the embedded stories260K model. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RealEngineServerTest {
    /** llama2.c's published greedy output of stories260K from BOS alone. */
    static final String KNOWN_STORY = "Once upon a time, there was a little girl named Lily. She loved to play "
            + "outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high";

    @RegisterExtension
    static final LoopbackServer loopback =
            LoopbackServer.real("real-engine-server-test", StepStreamConfig.defaults(), "stories260K");
    private static ModelInfo model;
    private static final BlockingQueue<StepBatch> steps = new LinkedBlockingQueue<>();

    @BeforeAll
    static void observeSteps() {
        model = loopback.stepStream().models().getFirst();
        loopback.stepStream().observeSteps(model.name(), steps::add);
    }

    private static GenerateRequest.Builder greedy(String prompt) {
        return GenerateRequest.newBuilder().setPrompt(prompt).setTemperature(0f);
    }

    @Test
    void listModelsShowsTheEmbeddedModelAsDefault() {
        List<ModelCard> models = loopback.client().listModels();
        ModelCard card = models.stream().filter(m -> m.getName().equals(model.name())).findFirst().orElseThrow();
        assertTrue(card.getIsDefault());
        assertEquals(512, card.getContextLength());
        assertEquals(512, card.getVocabSize());
    }

    @Test
    void emptyPromptGreedyGivesTheKnownStory() {
        List<GenerateEvent> events = loopback.collect(greedy("").setMaxTokens(100).build());
        String story = LoopbackServer.text(events);
        assertTrue(story.startsWith(KNOWN_STORY), story);
        var last = events.getLast().getFinal();
        assertEquals(1, last.getUsage().getPromptTokens());
        assertEquals("length", last.getFinishReason());
        assertEquals(100, last.getUsage().getCompletionTokens());
    }

    @Test
    void sixteenConcurrentStreamsFinishWithTheRightReasons() throws Exception {
        try (var threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<CompletableFuture<List<GenerateEvent>>> results = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                // Even: greedy from BOS, stopped at "Lily"; odd: sampled, cut by max_tokens.
                GenerateRequest request = i % 2 == 0
                        ? greedy("").setMaxTokens(200).addStop("Lily").build()
                        : GenerateRequest.newBuilder().setPrompt("Once upon a time").setSeed(i)
                                .setTemperature(0.8f).setMaxTokens(8 + i).build();
                results.add(CompletableFuture.supplyAsync(() -> loopback.collect(request), threads));
            }
            for (int i = 0; i < 16; i++) {
                List<GenerateEvent> events = results.get(i).get();
                var last = events.getLast();
                assertTrue(last.hasFinal(), "stream " + i);
                if (i % 2 == 0) {
                    assertEquals("stop", last.getFinal().getFinishReason(), "stream " + i);
                    assertEquals("Once upon a time, there was a little girl named ", LoopbackServer.text(events),
                            "stream " + i);
                } else {
                    assertEquals("length", last.getFinal().getFinishReason(), "stream " + i);
                    assertEquals(8 + i, last.getFinal().getUsage().getCompletionTokens(), "stream " + i);
                    assertEquals(8 + i, events.stream().filter(GenerateEvent::hasToken).count(), "stream " + i);
                }
            }
        }
    }

    /** Takes planned steps until one holds a request id other than {@code known}; returns that id. */
    private static String nextNewRequestId(Set<String> known) throws InterruptedException {
        while (true) {
            StepBatch step = steps.take();
            for (String id : ids(step)) {
                if (!known.contains(id)) {
                    return id;
                }
            }
        }
    }

    private static Set<String> ids(StepBatch step) {
        Set<String> ids = new HashSet<>();
        step.prefills().forEach(p -> ids.add(p.requestId()));
        step.decodes().forEach(d -> ids.add(d.requestId()));
        step.denoises().forEach(d -> ids.add(d.requestId()));
        return ids;
    }

    private static Set<String> drainSteps() {
        Set<String> seen = new HashSet<>();
        StepBatch pending;
        while ((pending = steps.poll()) != null) {
            seen.addAll(ids(pending));
        }
        return seen;
    }

    /**
     * A cancelled stream's sequence leaves the planned steps long before it would have ended by itself: the
     * same greedy request, run to its end first, takes {@code natural} steps; after the cancel the sequence
     * shows up in only a few more, while another sequence keeps the steps coming.
     */
    @Test
    void clientCancelRemovesTheSequenceFromTheNextSteps() throws Exception {
        GenerateRequest fromBos = greedy("").setMaxTokens(500).build();
        int natural = loopback.collect(fromBos).getLast().getFinal().getUsage().getCompletionTokens();
        assertTrue(natural >= 100, "the uncancelled run is long enough to tell: " + natural);

        Set<String> before = drainSteps();
        var cancelled = loopback.client().generate(fromBos);
        assertTrue(cancelled.next().hasToken());
        String cancelledId = nextNewRequestId(before);
        before.add(cancelledId);
        // A second stream, drained in the background, keeps steps coming after the cancel.
        var keeper = loopback.client().generate(fromBos);
        var drained = CompletableFuture.runAsync(() -> keeper.forEachRemaining(e -> { }));
        String keeperId = nextNewRequestId(before);

        for (int i = 0; i < 2; i++) {
            assertTrue(cancelled.next().hasToken());
        }
        drainSteps();
        cancelled.cancel();
        int stepsAfterCancel = 0;
        while (true) {
            Set<String> planned = ids(steps.take());
            if (planned.contains(cancelledId)) {
                stepsAfterCancel++;
            } else if (planned.contains(keeperId)) {
                break; // a step planned after the cancel without the cancelled sequence
            }
        }
        assertTrue(stepsAfterCancel < natural / 2, "steps with the cancelled sequence after the cancel: "
                + stepsAfterCancel + " (it would have run " + natural + ")");
        var failure = assertThrows(StatusRuntimeException.class, () -> cancelled.forEachRemaining(e -> { }));
        assertEquals(Status.Code.CANCELLED, failure.getStatus().getCode());
        keeper.cancel();
        assertThrows(Exception.class, drained::join);
    }

    private static Status statusOf(UnaryOperator<GenerateRequest.Builder> edit) {
        var events = loopback.client().generate(edit.apply(greedy("Once")).build());
        return assertThrows(StatusRuntimeException.class, () -> events.forEachRemaining(e -> { })).getStatus();
    }

    private static void assertInvalid(String field, UnaryOperator<GenerateRequest.Builder> edit) {
        Status status = statusOf(edit);
        assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode(), field + ": " + status);
        assertNotNull(status.getDescription());
        assertTrue(status.getDescription().startsWith(field), field + ": " + status.getDescription());
    }

    @Test
    void badRequestsAreInvalidArgumentNamingTheField() {
        assertInvalid("temperature", r -> r.setTemperature(-1f));
        assertInvalid("top_p", r -> r.setTopP(0f));
        assertInvalid("top_p", r -> r.setTopP(1.5f));
        assertInvalid("top_k", r -> r.setTopK(-2));
        assertInvalid("max_tokens", r -> r.setMaxTokens(-1));
        assertInvalid("max_tokens", r -> r.setMaxTokens(513));
        assertInvalid("prompt", r -> r.setPrompt("Once upon a time ".repeat(200)));
        assertInvalid("prompt_token_ids", r -> r.setPromptTokenIds(TokenIds.newBuilder().addIds(1).addIds(512)));
        assertInvalid("prompt_token_ids", r -> r.setPromptTokenIds(TokenIds.newBuilder().addIds(-1)));
    }

    @Test
    void unsetMaxTokensFillsTheRestOfTheContextForALongPrompt() {
        String prompt = "Once upon a time there was a big dog. ".repeat(40);
        int promptTokens = loopback.stepStream().promptTokenCount(
                new io.stepstream.actors.GenerateRequest("", prompt, null, 1, null, null)).orElseThrow();
        assertTrue(promptTokens > 256 && promptTokens < 500, "prompt tokens: " + promptTokens);
        List<GenerateEvent> events = loopback.collect(greedy(prompt).build());
        var last = events.getLast().getFinal();
        assertEquals(promptTokens, last.getUsage().getPromptTokens());
        if (last.getFinishReason().equals("length")) {
            assertEquals(512 - promptTokens, last.getUsage().getCompletionTokens());
        } else {
            assertEquals("stop", last.getFinishReason());
            assertTrue(last.getUsage().getCompletionTokens() <= 512 - promptTokens);
        }
    }

    @Test
    void unknownModelIsNotFoundNamingTheModel() {
        Status status = statusOf(r -> r.setModel("no-such-model"));
        assertEquals(Status.Code.NOT_FOUND, status.getCode());
        assertTrue(status.getDescription().contains("no-such-model"), status.getDescription());
    }

    @Test
    void aStreamNobodyReadsDoesNotHoldUpOthers() throws Exception {
        var idle = loopback.client().generate(greedy("").setMaxTokens(400).build());
        assertTrue(idle.next().hasToken());
        // While that stream is not read, other requests run to the end.
        for (int i = 0; i < 3; i++) {
            var events = loopback.collect(greedy("Lily").setMaxTokens(30).build());
            assertEquals("length", events.getLast().getFinal().getFinishReason());
        }
        // And the idle one still completes, in full, once read.
        var rest = new ArrayList<GenerateEvent>();
        idle.forEachRemaining(rest::add);
        assertTrue(rest.getLast().hasFinal());
        var last = rest.getLast().getFinal();
        assertTrue(Set.of("length", "stop").contains(last.getFinishReason()), last.toString());
        long streamed = 1 + rest.stream().filter(GenerateEvent::hasToken).count();
        // EOS counts in usage but is not streamed.
        assertEquals(last.getUsage().getCompletionTokens(), last.getFinishReason().equals("length") ? streamed
                : streamed + 1, last.toString());
        assertFalse(rest.stream().limit(rest.size() - 1).anyMatch(GenerateEvent::hasFinal));
    }
}
