package io.stepstream.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.Tokenizer;
import io.stepstream.scheduler.ForwardingModel;
import io.stepstream.scheduler.FakeModel;
import io.stepstream.scheduler.FinishReason;
import io.stepstream.scheduler.SequenceRequest;
import io.stepstream.scheduler.StepBatch;
import io.stepstream.scheduler.TokenEvent;
import io.stepstream.scheduler.TrackingModel;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.SinkQueueWithCancel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The actor layer end to end through the embedded API, on the deterministic fake model. */
class StepStreamTest {
    private static final int CONTEXT = 96;
    private static ActorTestKit testKit;

    @BeforeAll
    static void startTestKit() {
        testKit = ActorTestKit.create();
    }

    @AfterAll
    static void stopTestKit() {
        testKit.shutdownTestKit();
    }

    private static StepStream attach(StepStreamConfig config) {
        return StepStream.attach(testKit.system(), config);
    }

    private static <T> T await(CompletionStage<T> stage) throws Exception {
        return stage.toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    private static GenerateRequest request(String prompt, int maxTokens, List<String> stops) {
        return new GenerateRequest("", prompt, null, maxTokens, SamplingParams.GREEDY, stops);
    }

    /** The reference: the same request on a fresh fake model, through the scheduler alone. */
    private static GenerationResult direct(GenerateRequest r) {
        return direct(FakeModel.hashed(CONTEXT), r);
    }

    private static GenerationResult direct(Model reference, GenerateRequest r) {
        int[] prompt = StepStream.validate(r, reference);
        return TestModels.direct(reference, new SequenceRequest("ref", prompt, r.maxTokens(), r.sampling(),
                r.stopStrings()));
    }

    private static void assertSame(GenerationResult want, GenerationResult got, String what) {
        assertArrayEquals(want.tokenIds(), got.tokenIds(), what);
        assertEquals(want.text(), got.text(), what);
        assertEquals(want.finishReason(), got.finishReason(), what);
        assertEquals(want.promptTokens(), got.promptTokens(), what);
        assertEquals(want.completionTokens(), got.completionTokens(), what);
    }

    @Test
    void aStreamGivesWhatTheSchedulerGivesDirectly() throws Exception {
        try (StepStream ss = attach(StepStreamConfig.defaults())) {
            ModelInfo info = ss.load(FakeModel.hashed(CONTEXT));
            assertEquals(new ModelInfo("fake", "autoregressive", CONTEXT, FakeModel.hashed(CONTEXT).config().vocabSize(),
                    "cpu", "cpu"), info);
            assertEquals("fake", ss.defaultModel());
            GenerateRequest r = request("once upon a time", 40, List.of());
            List<TokenEvent> events = await(ss.generate(r).runWith(Sink.seq(), testKit.system()));
            GenerationResult want = direct(r);
            assertTrue(want.tokenIds().length > 5, "reference too short to mean much");
            assertEquals(want.tokenIds().length + 1, events.size());
            for (int i = 0; i < want.tokenIds().length; i++) {
                assertEquals(want.tokenIds()[i], ((TokenEvent.Token) events.get(i)).tokenId());
            }
            assertInstanceOf(TokenEvent.Finished.class, events.getLast());
            assertSame(want, await(ss.generateAll(r)), "generateAll");
            // Empty prompt: generation from BOS alone.
            GenerateRequest fromBos = request("", 10, List.of());
            assertEquals(1, await(ss.generateAll(fromBos)).promptTokens());
            assertSame(direct(fromBos), await(ss.generateAll(fromBos)), "from BOS");
        }
    }

    private static Model stories260K() {
        return Models.load(Models.DEFAULT_MODEL, ModelOptions.defaults().withComputeThreads(1));
    }

    @Test
    void stories260KStreamsWhatTheSchedulerGivesDirectly() throws Exception {
        try (StepStream ss = attach(new StepStreamConfig(8, 16, 64))) {
            ModelInfo info = ss.load(Models.DEFAULT_MODEL);
            assertEquals(new ModelInfo("stories260K", "autoregressive", 512, 512, "cpu", "cpu"), info);
            List<GenerateRequest> requests = List.of(
                    request("Once upon a time", 60, List.of()),
                    request("", 200, List.of()),
                    request("The cat", 40, List.of(" the")),
                    new GenerateRequest("", "Tom had a ball", null, 50, new SamplingParams(0.8f, 20, 0.9f, 7L, 3),
                            List.of()),
                    new GenerateRequest("stories260K", "", new int[] {1, 403, 407}, 30,
                            new SamplingParams(1f, 0, 1f, 99L, 0), List.of()));
            List<CompletableFuture<GenerationResult>> running = new ArrayList<>();
            for (GenerateRequest r : requests) {
                running.add(ss.generateAll(r).toCompletableFuture());
            }
            Set<FinishReason> reasons = EnumSet.noneOf(FinishReason.class);
            for (int i = 0; i < requests.size(); i++) {
                GenerationResult got = running.get(i).get(60, TimeUnit.SECONDS);
                assertSame(direct(stories260K(), requests.get(i)), got, "request " + i);
                assertTrue(got.tokenIds().length > 0, "request " + i);
                reasons.add(got.finishReason());
            }
            assertEquals(EnumSet.of(FinishReason.STOP, FinishReason.LENGTH), reasons);
            assertThrows(ModelLoadException.class, () -> ss.load("/no/such/model.bin"));
        }
    }

    @Test
    void sixteenConcurrentRequestsAllFinishWithTheRightReasons() throws Exception {
        List<GenerateRequest> requests = new ArrayList<>();
        String[] prompts = {"the dog", "a cat sat", "once", "we ran far", "big red ball", "sun", "it was a", "hi"};
        for (int i = 0; i < 16; i++) {
            String prompt = prompts[i % prompts.length] + (i >= 8 ? " and" : "");
            GenerateRequest plain = request(prompt, 60, List.of());
            switch (i % 4) {
                case 0 -> requests.add(request(prompt, 3 + i % 5, List.of())); // LENGTH
                case 1 -> { // a stop string from the middle of its own output: STOP
                    String text = direct(plain).text();
                    String stop = text.substring(text.length() / 2, text.length() / 2 + 2);
                    requests.add(request(prompt, 60, List.of(stop)));
                }
                case 2 -> requests.add(plain);
                default -> requests.add(new GenerateRequest("", prompt, null, 20,
                        new SamplingParams(0f, 0, 1f, 0L, 2), List.of()));
            }
        }
        try (StepStream ss = attach(new StepStreamConfig(4, 32, 64))) {
            ss.load(FakeModel.hashed(CONTEXT));
            List<CompletableFuture<GenerationResult>> running = new ArrayList<>();
            for (GenerateRequest r : requests) {
                running.add(ss.generateAll(r).toCompletableFuture());
            }
            Set<FinishReason> reasons = EnumSet.noneOf(FinishReason.class);
            for (int i = 0; i < 16; i++) {
                GenerationResult got = running.get(i).get(60, TimeUnit.SECONDS);
                assertSame(direct(requests.get(i)), got, "request " + i);
                reasons.add(got.finishReason());
                if (i % 4 == 1) {
                    assertEquals(FinishReason.STOP, got.finishReason(), "request " + i);
                }
                if (i % 4 == 0) {
                    assertEquals(FinishReason.LENGTH, got.finishReason(), "request " + i);
                }
            }
            assertEquals(EnumSet.of(FinishReason.STOP, FinishReason.LENGTH), reasons);
        }
    }

    /** Each forward pass takes a permit, so the test decides when each step may run. */
    private static final class SteppedModel extends ForwardingModel {
        final Semaphore permits = new Semaphore(0);
        final TrackingModel tracking;

        SteppedModel() {
            this(new TrackingModel(FakeModel.hashed(CONTEXT)));
        }

        private SteppedModel(TrackingModel tracking) {
            super(tracking);
            this.tracking = tracking;
        }





        @Override
        public void forward(ForwardBatch batch, float[][] logits) {
            try {
                if (!permits.tryAcquire(60, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("the test never let this step run");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            inner.forward(batch, logits);
        }
    }

    private static StepBatch nextStep(BlockingQueue<StepBatch> steps) throws InterruptedException {
        StepBatch b = steps.poll(60, TimeUnit.SECONDS);
        assertNotNull(b, "no step was planned");
        return b;
    }

    private static Set<String> ids(StepBatch b) {
        Set<String> ids = new HashSet<>();
        b.prefills().forEach(p -> ids.add(p.requestId()));
        b.decodes().forEach(d -> ids.add(d.requestId()));
        return ids;
    }

    @Test
    void cancellingTheSourceRemovesTheSequenceFromTheNextSteps() throws Exception {
        SteppedModel model = new SteppedModel();
        GenerateRequest keeperRequest = request("the long story", 70, List.of());
        GenerationResult keeperWant = direct(keeperRequest);
        assertTrue(keeperWant.completionTokens() >= 30, "the keeper must outlive the victim");
        try (StepStream ss = attach(StepStreamConfig.defaults())) {
            ss.load(model);
            BlockingQueue<StepBatch> steps = new LinkedBlockingQueue<>();
            ss.observeSteps("", steps::add);
            CompletableFuture<GenerationResult> keeper = ss.generateAll(keeperRequest).toCompletableFuture();
            String keeperId = ids(nextStep(steps)).iterator().next();

            GenerateRequest victimRequest = request("a victim", 60, List.of());
            CompletableFuture<List<TokenEvent>> victim = ss.generate(victimRequest).take(3)
                    .runWith(Sink.seq(), testKit.system()).toCompletableFuture();
            String victimId = null;
            int stepsWithVictim = 0;
            while (!victim.isDone()) {
                model.permits.release();
                StepBatch b = nextStep(steps);
                for (String id : ids(b)) {
                    if (!id.equals(keeperId)) {
                        victimId = id;
                        stepsWithVictim++;
                    }
                }
            }
            assertNotNull(victimId);
            List<TokenEvent> got = victim.get();
            assertEquals(3, got.size());
            int[] victimWant = direct(victimRequest).tokenIds();
            for (int i = 0; i < 3; i++) {
                assertEquals(victimWant[i], ((TokenEvent.Token) got.get(i)).tokenId());
            }
            assertTrue(victimWant.length > stepsWithVictim + 10, "the victim would have run on");
            // The stream ended; once the scheduler has taken the cancel (the planned step is held on its permit, so
            // no plan happens meanwhile), the very next planned step leaves the victim out, and so do all later.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (ss.snapshot("").running().contains(victimId)) {
                assertTrue(System.nanoTime() < deadline, "the cancel never reached the scheduler");
                Thread.onSpinWait();
            }
            for (int i = 0; i < 12; i++) {
                model.permits.release();
                StepBatch b = nextStep(steps);
                assertFalse(ids(b).contains(victimId), "victim planned " + (i + 1) + " steps after its cancel");
                assertTrue(ids(b).contains(keeperId));
            }
            assertEquals(1, model.tracking.openCaches.size(), "the victim's KV cache is freed");
            model.permits.release(10_000);
            assertSame(keeperWant, keeper.get(60, TimeUnit.SECONDS), "keeper");
        }
    }

    @Test
    void aSlowConsumerDoesNotHoldUpOtherRequests() throws Exception {
        try (StepStream ss = attach(StepStreamConfig.defaults())) {
            ss.load(FakeModel.hashed(CONTEXT));
            GenerateRequest slowRequest = request("slow reader", 60, List.of());
            GenerateRequest fastRequest = request("fast reader", 60, List.of());
            GenerationResult slowWant = direct(slowRequest);
            assertTrue(slowWant.completionTokens() > 20, "more tokens than the stream's own buffers hold");
            // The slow consumer pulls nothing until the other request is completely done.
            SinkQueueWithCancel<TokenEvent> slow = ss.generate(slowRequest).runWith(Sink.queue(), testKit.system());
            GenerationResult fast = await(ss.generateAll(fastRequest));
            assertSame(direct(fastRequest), fast, "fast");
            List<TokenEvent> slowEvents = new ArrayList<>();
            for (Optional<TokenEvent> e = await(slow.pull()); e.isPresent(); e = await(slow.pull())) {
                slowEvents.add(e.get());
            }
            List<Integer> ids = new ArrayList<>();
            for (TokenEvent e : slowEvents.subList(0, slowEvents.size() - 1)) {
                ids.add(((TokenEvent.Token) e).tokenId());
            }
            assertArrayEquals(slowWant.tokenIds(), ids.stream().mapToInt(Integer::intValue).toArray());
            assertEquals(slowWant.finishReason(), ((TokenEvent.Finished) slowEvents.getLast()).reason());
        }
    }

    @Test
    void validationErrorsNameTheField() {
        try (StepStream ss = attach(StepStreamConfig.defaults())) {
            ss.load(FakeModel.hashed(CONTEXT));
            int vocab = FakeModel.hashed(CONTEXT).config().vocabSize();
            record Case(String field, GenerateRequest request) {
            }
            List<Case> cases = List.of(
                    new Case("temperature", new GenerateRequest("", "a", null, 5,
                            new SamplingParams(-0.1f, 0, 1f, 0, 0), List.of())),
                    new Case("temperature", new GenerateRequest("", "a", null, 5,
                            new SamplingParams(Float.NaN, 0, 1f, 0, 0), List.of())),
                    new Case("top_p", new GenerateRequest("", "a", null, 5,
                            new SamplingParams(1f, 0, 0f, 0, 0), List.of())),
                    new Case("top_p", new GenerateRequest("", "a", null, 5,
                            new SamplingParams(1f, 0, 1.5f, 0, 0), List.of())),
                    new Case("top_k", new GenerateRequest("", "a", null, 5,
                            new SamplingParams(1f, -1, 1f, 0, 0), List.of())),
                    new Case("logprobs", new GenerateRequest("", "a", null, 5,
                            new SamplingParams(1f, 0, 1f, 0, 21), List.of())),
                    new Case("max_tokens", request("a", 0, List.of())),
                    new Case("max_tokens", request("ab", CONTEXT - 2, List.of())), // BOS + 2 + 95 > 96
                    new Case("prompt", request("a".repeat(CONTEXT), 1, List.of())),
                    new Case("prompt_token_ids", new GenerateRequest("", "", new int[] {1, vocab}, 5, null, List.of())),
                    new Case("prompt_token_ids", new GenerateRequest("", "", new int[] {-1}, 5, null, List.of())),
                    new Case("prompt_token_ids", new GenerateRequest("", "", new int[CONTEXT], 5, null, List.of())),
                    new Case("stop", request("a", 5, List.of("ok", ""))));
            for (Case c : cases) {
                InvalidRequestException e = assertThrows(InvalidRequestException.class,
                        () -> ss.generate(c.request()), c.field());
                assertEquals(c.field(), e.field(), e.getMessage());
                assertTrue(e.getMessage().startsWith(c.field() + ": "), e.getMessage());
            }
            // The edges that are allowed.
            ss.generate(request("ab", CONTEXT - 3, List.of()));
            ss.generate(new GenerateRequest("", "", new int[0], 5, new SamplingParams(0f, 0, 1f, 0, 20), List.of()));
            ModelNotFoundException missing = assertThrows(ModelNotFoundException.class,
                    () -> ss.generate(new GenerateRequest("nope", "a", null, 5, null, List.of())));
            assertEquals("nope", missing.model());
        }
    }

    @Test
    void aFullQueueFailsTheStreamWithQueueFull() throws Exception {
        TestModels.GatedModel model = new TestModels.GatedModel(FakeModel.hashed(CONTEXT));
        model.hold();
        try (StepStream ss = attach(new StepStreamConfig(1, 64, 1))) {
            ss.load(model);
            CompletableFuture<GenerationResult> first = ss.generateAll(request("one", 5, List.of())).toCompletableFuture();
            assertTrue(model.awaitEntered(), "the first step never started");
            // One sequence runs (held in its step), so one may wait; of two more, one is refused.
            CompletableFuture<GenerationResult> second = ss.generateAll(request("two", 5, List.of())).toCompletableFuture();
            CompletableFuture<GenerationResult> third = ss.generateAll(request("six", 5, List.of())).toCompletableFuture();
            CompletableFuture.anyOf(second, third).handle((r, e) -> null).get(60, TimeUnit.SECONDS);
            CompletableFuture<GenerationResult> refused = second.isDone() ? second : third;
            CompletableFuture<GenerationResult> queued = refused == second ? third : second;
            ExecutionException e = assertThrows(ExecutionException.class, refused::get);
            assertInstanceOf(QueueFullException.class, e.getCause());
            assertFalse(first.isDone());
            model.release();
            assertEquals(FinishReason.LENGTH, first.get(60, TimeUnit.SECONDS).finishReason());
            assertEquals(5, queued.get(60, TimeUnit.SECONDS).completionTokens());
        }
    }

    @Test
    void aFailingStepEndsItsRequestsWithErrorAndTheModelKeepsServing() throws Exception {
        TestModels.GatedModel model = new TestModels.GatedModel(FakeModel.hashed(CONTEXT));
        model.failNext = new IllegalStateException("device lost");
        try (StepStream ss = attach(StepStreamConfig.defaults())) {
            ss.load(model);
            GenerationResult failed = await(ss.generateAll(request("doomed", 10, List.of())));
            assertEquals(FinishReason.ERROR, failed.finishReason());
            assertEquals(0, failed.tokenIds().length);
            GenerateRequest next = request("fine", 10, List.of());
            assertSame(direct(next), await(ss.generateAll(next)), "after a failed step");
        }
    }

    @Test
    void closeLeavesAnAttachedSystemRunningAndStopsAnOwnedOne() throws Exception {
        StepStream attached = attach(StepStreamConfig.defaults());
        attached.load(FakeModel.hashed(CONTEXT));
        attached.close();
        assertThrows(IllegalStateException.class, () -> attached.generate(request("a", 3, List.of())));
        TestProbe<String> probe = testKit.createTestProbe();
        probe.getRef().tell("still alive");
        probe.expectMessage("still alive");

        StepStream owned = StepStream.start(StepStreamConfig.defaults());
        owned.load(FakeModel.hashed(CONTEXT).named("other"));
        assertEquals("other", owned.defaultModel());
        GenerateRequest r = new GenerateRequest("other", "a b", null, 4, null, List.of());
        assertSame(direct(r), await(owned.generateAll(r)), "own system");
        owned.close();
        assertTrue(owned.system().whenTerminated().isCompleted());
    }
}
