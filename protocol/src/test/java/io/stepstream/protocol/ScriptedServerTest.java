package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.ModelCard;
import io.stepstream.protocol.v1.TokenIds;
import io.stepstream.protocol.v1.StepStreamGrpc;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;

/** The server over a real loopback port, against the scripted service. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ScriptedServerTest {
    private static final long INJECTED_SEED = 4242L;
    private static final ScriptedGenerationService service = new ScriptedGenerationService();
    @RegisterExtension
    static final LoopbackServer loopback = LoopbackServer.over("scripted-server-test", () -> service,
            b -> b.seeds(() -> INJECTED_SEED));

    private static GenerateRequest.Builder request(String prompt) {
        return GenerateRequest.newBuilder().setPrompt(prompt);
    }

    @Test
    void listModelsMarksTheDefault() {
        List<ModelCard> models = loopback.client().listModels();
        assertEquals(List.of("scripted", "long", "busy", "broken"), models.stream().map(ModelCard::getName).toList());
        ModelCard first = models.getFirst();
        assertTrue(first.getIsDefault());
        assertEquals(64, first.getContextLength());
        assertEquals(ScriptedGenerationService.VOCAB, first.getVocabSize());
        assertEquals("autoregressive", first.getKind());
        assertEquals(1, models.stream().filter(ModelCard::getIsDefault).count());
    }

    @Test
    void healthIsServingAndReflectionListsTheService() throws Exception {
        ManagedChannel channel = NettyChannelBuilder.forTarget(loopback.target()).usePlaintext().build();
        try {
            var health = HealthGrpc.newBlockingStub(channel);
            assertEquals(HealthCheckResponse.ServingStatus.SERVING,
                    health.check(HealthCheckRequest.getDefaultInstance()).getStatus());
            assertEquals(HealthCheckResponse.ServingStatus.SERVING,
                    health.check(HealthCheckRequest.newBuilder().setService(StepStreamGrpc.SERVICE_NAME).build())
                            .getStatus());
            // Reflection lists the service, so grpcurl and friends can call it without the .proto file.
            var listed = new CompletableFuture<List<String>>();
            var reflection = ServerReflectionGrpc.newStub(channel).serverReflectionInfo(
                    new io.grpc.stub.StreamObserver<ServerReflectionResponse>() {
                        @Override
                        public void onNext(ServerReflectionResponse response) {
                            listed.complete(response.getListServicesResponse().getServiceList().stream()
                                    .map(ServiceResponse::getName).toList());
                        }

                        @Override
                        public void onError(Throwable t) {
                            listed.completeExceptionally(t);
                        }

                        @Override
                        public void onCompleted() {
                        }
                    });
            reflection.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
            assertTrue(listed.get(30, TimeUnit.SECONDS).contains(StepStreamGrpc.SERVICE_NAME));
            reflection.onCompleted();
        } finally {
            channel.shutdownNow();
        }
    }

    @Test
    void unsetFieldsGetTheWireDefaults() throws Exception {
        service.started.clear();
        List<GenerateEvent> events = loopback.collect(request("hello").build());
        var got = service.started.take().request();
        assertEquals(1.0f, got.sampling().temperature());
        assertEquals(1.0f, got.sampling().topP());
        assertEquals(INJECTED_SEED, got.sampling().seed());
        assertEquals(0, got.sampling().topK());
        // Context 64, prompt BOS + 5 characters: the default leaves exactly the rest of the context.
        assertEquals(64 - 6, got.maxTokens());
        assertEquals("length", events.getLast().getFinal().getFinishReason());
        assertEquals(58, events.getLast().getFinal().getUsage().getCompletionTokens());
        assertEquals(6, events.getLast().getFinal().getUsage().getPromptTokens());

        // max_tokens 0 means the default too; a big context caps it at 256.
        service.started.clear();
        loopback.collect(request("x").setModel("long").setMaxTokens(0).setSeed(7).setTemperature(0f).setTopP(0.5f)
                .build());
        got = service.started.take().request();
        assertEquals(256, got.maxTokens());
        assertEquals(7L, got.sampling().seed());
        assertEquals(0f, got.sampling().temperature());
        assertEquals(0.5f, got.sampling().topP());
    }

    @Test
    void sixteenConcurrentStreamsFinishWithTheRightReasons() throws Exception {
        int streams = 16;
        try (var threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<CompletableFuture<List<GenerateEvent>>> results = new ArrayList<>();
            List<GenerateRequest> requests = new ArrayList<>();
            for (int i = 0; i < streams; i++) {
                var r = request("stream " + i).setSeed(1000 + i).setMaxTokens(20 + i);
                if (i % 2 == 1) {
                    // The third scripted token of this seed: the stop string hits mid-stream.
                    int third = ScriptedGenerationService.scriptedToken(1000 + i, 2);
                    r.addStop("t" + third + " ");
                }
                GenerateRequest request = r.build();
                requests.add(request);
                results.add(CompletableFuture.supplyAsync(() -> loopback.collect(request), threads));
            }
            for (int i = 0; i < streams; i++) {
                List<GenerateEvent> events = results.get(i).get();
                GenerateRequest wire = requests.get(i);
                var asService = new io.stepstream.actors.GenerateRequest("", wire.getPrompt(), null,
                        wire.getMaxTokens(), new io.stepstream.engine.SamplingParams(1f, 0, 1f, wire.getSeed(), 0),
                        wire.getStopList());
                var last = events.getLast();
                assertTrue(last.hasFinal(), "stream " + i + " ends with the final event");
                assertEquals(1, events.stream().filter(GenerateEvent::hasFinal).count());
                assertEquals(ScriptedGenerationService.expectedText(asService, false), LoopbackServer.text(events),
                        "stream " + i);
                if (i % 2 == 1) {
                    assertEquals("stop", last.getFinal().getFinishReason(), "stream " + i);
                    assertFalse(LoopbackServer.text(events).contains(wire.getStop(0)));
                } else {
                    assertEquals("length", last.getFinal().getFinishReason(), "stream " + i);
                    assertEquals(20 + i, last.getFinal().getUsage().getCompletionTokens());
                    assertEquals(20 + i, events.size() - 1);
                }
            }
        }
    }

    @Test
    void logprobsGoOnTheWireOnlyWhenAsked() {
        List<GenerateEvent> plain = loopback.collect(request("a").setMaxTokens(3).build());
        for (GenerateEvent e : plain.subList(0, 3)) {
            assertFalse(e.getToken().hasLogprob());
            assertEquals(0, e.getToken().getTopLogprobsCount());
        }
        List<GenerateEvent> asked = loopback.collect(request("a").setMaxTokens(3).setLogprobs(4).build());
        for (GenerateEvent e : asked.subList(0, 3)) {
            assertTrue(e.getToken().hasLogprob());
            assertEquals(-0.5f, e.getToken().getLogprob());
            assertEquals(4, e.getToken().getTopLogprobsCount());
            assertEquals(e.getToken().getTokenId(), e.getToken().getTopLogprobs(0).getTokenId());
        }
    }

    @Test
    void clientCancelCancelsTheRequestInTheService() throws Exception {
        service.started.clear();
        var events = loopback.client().generate(request("cancel me").setModel("long").setMaxTokens(100_000).build());
        for (int i = 0; i < 3; i++) {
            assertTrue(events.next().hasToken());
        }
        String id = service.started.take().id();
        events.cancel();
        assertEquals(id, service.cancelled.poll(30, TimeUnit.SECONDS));
        var failure = assertThrows(StatusRuntimeException.class, () -> {
            while (events.hasNext()) {
                events.next();
            }
        });
        assertEquals(Status.Code.CANCELLED, failure.getStatus().getCode());
    }

    @Test
    void deadlineCancelsTheRequestInTheService() throws Exception {
        service.started.clear();
        var events = loopback.client().withDeadline(Duration.ofMillis(300))
                .generate(request("slow reader").setModel("long").setMaxTokens(100_000).build());
        assertTrue(events.next().hasToken());
        String id = service.started.take().id();
        // The reader stops reading; the deadline ends the call on both sides.
        assertEquals(id, service.cancelled.poll(30, TimeUnit.SECONDS));
        var failure = assertThrows(StatusRuntimeException.class, () -> {
            while (events.hasNext()) {
                events.next();
            }
        });
        assertEquals(Status.Code.DEADLINE_EXCEEDED, failure.getStatus().getCode());
    }

    private static Status statusOf(UnaryOperator<GenerateRequest.Builder> edit) {
        var events = loopback.client().generate(edit.apply(request("hi")).build());
        var failure = assertThrows(StatusRuntimeException.class, events::hasNext);
        return failure.getStatus();
    }

    private static void assertInvalid(String field, UnaryOperator<GenerateRequest.Builder> edit) {
        Status status = statusOf(edit);
        assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode(), field + ": " + status);
        assertNotNull(status.getDescription());
        assertTrue(status.getDescription().startsWith(field + ": "), status.getDescription());
    }

    @Test
    void badRequestsNameTheProtoField() {
        assertInvalid("temperature", r -> r.setTemperature(-0.5f));
        assertInvalid("top_p", r -> r.setTopP(0f));
        assertInvalid("top_p", r -> r.setTopP(1.5f));
        assertInvalid("top_k", r -> r.setTopK(-1));
        assertInvalid("max_tokens", r -> r.setMaxTokens(-1));
        assertInvalid("max_tokens", r -> r.setMaxTokens(64));
        assertInvalid("prompt", r -> r.setPrompt("x".repeat(100)));
        assertInvalid("prompt_token_ids", r -> r.setPromptTokenIds(TokenIds.newBuilder().addIds(1).addIds(64)));
        assertInvalid("prompt_token_ids", r -> r.setPromptTokenIds(TokenIds.newBuilder().addIds(-3)));
        assertInvalid("logprobs", r -> r.setLogprobs(21));
        assertInvalid("stop", r -> r.addStop(""));
        assertTrue(statusOf(r -> r.setTopP(1.5f)).getDescription().contains("1.5"));
    }

    @Test
    void unknownModelIsNotFoundNamingTheModel() {
        Status status = statusOf(r -> r.setModel("no-such-model"));
        assertEquals(Status.Code.NOT_FOUND, status.getCode());
        assertTrue(status.getDescription().contains("no-such-model"), status.getDescription());
    }

    @Test
    void fullQueueIsResourceExhaustedAndSurprisesAreInternalWithoutDetail() {
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, statusOf(r -> r.setModel("busy")).getCode());
        Status internal = statusOf(r -> r.setModel("broken"));
        assertEquals(Status.Code.INTERNAL, internal.getCode());
        assertFalse(internal.getDescription().contains(ScriptedGenerationService.SECRET));
        assertFalse(internal.getDescription().contains("at io."));
    }

    @Test
    void emptyPromptGeneratesFromBos() throws Exception {
        service.started.clear();
        List<GenerateEvent> events = loopback.collect(request("").setMaxTokens(4).build());
        assertEquals("", service.started.take().request().prompt());
        assertEquals(1, events.getLast().getFinal().getUsage().getPromptTokens());
        assertEquals(4, events.getLast().getFinal().getUsage().getCompletionTokens());
    }

    /**
     * A client that reads nothing: the server stops pulling its events once the transport is full (so the
     * service produces a bounded number of them, far fewer than asked), other clients are served meanwhile,
     * and when the slow client reads again its stream resumes and completes, in order.
     */
    @Test
    void slowReaderIsHeldBackWithoutBlockingOthers() throws Exception {
        int planned = 20_000;
        ManagedChannel slowChannel = NettyChannelBuilder.forTarget(loopback.target()).usePlaintext()
                .flowControlWindow(16 * 1024).build();
        try {
            service.started.clear();
            var received = new AtomicInteger();
            var done = new CompletableFuture<GenerateEvent>();
            var callHolder = new CompletableFuture<ClientCallStreamObserver<GenerateRequest>>();
            StepStreamGrpc.newStub(slowChannel).generate(
                    request("slow").setModel("long").setMaxTokens(planned).setSeed(5).build(),
                    new ClientResponseObserver<GenerateRequest, GenerateEvent>() {
                        @Override
                        public void beforeStart(ClientCallStreamObserver<GenerateRequest> call) {
                            call.disableAutoRequestWithInitial(0);
                            callHolder.complete(call);
                        }

                        @Override
                        public void onNext(GenerateEvent event) {
                            received.incrementAndGet();
                            if (event.hasFinal()) {
                                done.complete(event);
                            }
                        }

                        @Override
                        public void onError(Throwable t) {
                            done.completeExceptionally(t);
                        }

                        @Override
                        public void onCompleted() {
                        }
                    });
            var slow = service.started.take();
            // The server has filled the windows (each event carries ~400 bytes)...
            slow.awaitProduced(40);
            // ...and other clients are served in full meanwhile.
            for (int i = 0; i < 4; i++) {
                var events = loopback.collect(request("other " + i).setModel("long").setMaxTokens(200).build());
                assertEquals("length", events.getLast().getFinal().getFinishReason());
                assertEquals(201, events.size());
            }
            int producedWhileBlocked = slow.produced().get();
            assertEquals(0, received.get());
            // 16 KiB client window + 32 KiB server send threshold hold ~120 events of ~400 bytes; without flow
            // control the server would have drained all 20,000 into its buffers by now.
            assertTrue(producedWhileBlocked < 400, "produced while the client read nothing: " + producedWhileBlocked);

            callHolder.get().request(Integer.MAX_VALUE);
            GenerateEvent last = done.get(60, TimeUnit.SECONDS);
            assertEquals("length", last.getFinal().getFinishReason());
            assertEquals(planned, last.getFinal().getUsage().getCompletionTokens());
            assertEquals(planned + 1, received.get());
            assertEquals(planned + 1, slow.produced().get());
        } finally {
            slowChannel.shutdownNow();
        }
    }
}
