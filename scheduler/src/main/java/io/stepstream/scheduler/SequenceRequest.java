package io.stepstream.scheduler;

import io.stepstream.engine.SamplingParams;
import java.util.List;

/**
 * One sequence to generate, already tokenized and validated by the caller.
 *
 * @param promptTokens the prompt as given to the model (BOS included when wanted); at least one token
 * @param maxTokens    most tokens to generate, >= 1
 * @param stopStrings  generation stops before the first occurrence of any of these in the output text
 */
public record SequenceRequest(String requestId, int[] promptTokens, int maxTokens, SamplingParams sampling,
                              List<String> stopStrings) {
    public SequenceRequest {
        if (requestId == null) {
            throw new IllegalArgumentException("requestId: must not be null");
        }
        if (promptTokens == null || promptTokens.length == 0) {
            throw new IllegalArgumentException("promptTokens: at least one token is needed");
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("maxTokens: must be >= 1, got " + maxTokens);
        }
        promptTokens = promptTokens.clone();
        sampling = sampling == null ? SamplingParams.GREEDY : sampling;
        stopStrings = stopStrings == null ? List.of() : List.copyOf(stopStrings);
        for (String s : stopStrings) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("stopStrings: empty stop string");
            }
        }
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }
}
