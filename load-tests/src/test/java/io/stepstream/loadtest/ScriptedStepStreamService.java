package io.stepstream.loadtest;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.stepstream.protocol.v1.FinalEvent;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.ListModelsRequest;
import io.stepstream.protocol.v1.ListModelsResponse;
import io.stepstream.protocol.v1.ModelCard;
import io.stepstream.protocol.v1.TokenEvent;
import io.stepstream.protocol.v1.Usage;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A StepStream server with a script instead of a model: each request gets {@code min(max_tokens,
 * tokensPerRequest)} token events, the first after {@code firstTokenDelayMs} and each later one
 * {@code gapMs} after the previous, then a final event with exact usage (prompt tokens = the prompt's
 * whitespace-separated words). A prompt containing "INVALID" is refused with INVALID_ARGUMENT, as the real
 * server refuses bad input. With {@code holdBackFirst} the first token event carries empty text, as when a
 * tokenizer holds back a partial character.
 */
final class ScriptedStepStreamService extends io.stepstream.protocol.v1.StepStreamGrpc.StepStreamImplBase {

    final int tokensPerRequest;
    final long firstTokenDelayMs;
    final long gapMs;
    final boolean holdBackFirst;
    final ConcurrentLinkedQueue<GenerateRequest> received = new ConcurrentLinkedQueue<>();
    final AtomicInteger inFlight = new AtomicInteger();
    final AtomicInteger maxInFlight = new AtomicInteger();

    ScriptedStepStreamService(int tokensPerRequest, long firstTokenDelayMs, long gapMs, boolean holdBackFirst) {
        this.tokensPerRequest = tokensPerRequest;
        this.firstTokenDelayMs = firstTokenDelayMs;
        this.gapMs = gapMs;
        this.holdBackFirst = holdBackFirst;
    }

    static int promptTokens(String prompt) {
        String trimmed = prompt.trim();
        return trimmed.isEmpty() ? 0 : trimmed.split("\\s+").length;
    }

    @Override
    public void generate(GenerateRequest request, StreamObserver<GenerateEvent> events) {
        received.add(request);
        if (request.getPrompt().contains("INVALID")) {
            events.onError(Status.INVALID_ARGUMENT.withDescription("prompt: scripted refusal").asRuntimeException());
            return;
        }
        maxInFlight.accumulateAndGet(inFlight.incrementAndGet(), Math::max);
        try {
            int tokens = Math.min(request.getMaxTokens(), tokensPerRequest);
            for (int i = 0; i < tokens; i++) {
                Thread.sleep(i == 0 ? firstTokenDelayMs : gapMs);
                String text = holdBackFirst && i == 0 ? "" : " w" + i;
                events.onNext(GenerateEvent.newBuilder()
                        .setToken(TokenEvent.newBuilder().setTokenId(100 + i).setText(text))
                        .build());
            }
            events.onNext(GenerateEvent.newBuilder()
                    .setFinal(FinalEvent.newBuilder()
                            .setFinishReason(tokens == request.getMaxTokens() ? "length" : "stop")
                            .setUsage(Usage.newBuilder()
                                    .setPromptTokens(promptTokens(request.getPrompt()))
                                    .setCompletionTokens(tokens)))
                    .build());
            events.onCompleted();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            events.onError(Status.CANCELLED.withDescription("server interrupted").asRuntimeException());
        } finally {
            inFlight.decrementAndGet();
        }
    }

    @Override
    public void listModels(ListModelsRequest request, StreamObserver<ListModelsResponse> response) {
        response.onNext(ListModelsResponse.newBuilder()
                .addModels(ModelCard.newBuilder().setName("scripted").setIsDefault(true))
                .build());
        response.onCompleted();
    }

    List<GenerateRequest> receivedRequests() {
        return List.copyOf(received);
    }
}
