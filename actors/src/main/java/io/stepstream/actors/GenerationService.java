package io.stepstream.actors;

import io.stepstream.scheduler.TokenEvent;
import java.util.List;
import java.util.OptionalInt;
import org.apache.pekko.NotUsed;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The engine as a service: what the gRPC layer and embedding applications call.
 */
public interface GenerationService {
    /**
     * Starts a request. Bad input is rejected here, synchronously, with {@link InvalidRequestException} or
     * {@link ModelNotFoundException}. The request runs when the returned source is materialized; it streams
     * {@link TokenEvent.Token}s and ends with one {@link TokenEvent.Finished}, with backpressure: a slow
     * consumer holds back its own events only. Cancelling the stream cancels the request. The stream fails
     * with {@link QueueFullException} when the model's queue is full.
     */
    Source<TokenEvent, NotUsed> generate(GenerateRequest request);

    List<ModelInfo> models();

    /** The model used when a request names none. */
    String defaultModel();

    /**
     * How many tokens the model will see as the prompt of {@code request} (BOS included for a text prompt),
     * so that a front end can size a default max_tokens to the context before submitting. Empty when this
     * service cannot tell without a tokenizer; the default knows only token-id prompts, a service that holds
     * the tokenizers should override it.
     */
    default OptionalInt promptTokenCount(GenerateRequest request) {
        return request.promptTokenIds() != null
                ? OptionalInt.of(request.promptTokenIds().length)
                : OptionalInt.empty();
    }
}
