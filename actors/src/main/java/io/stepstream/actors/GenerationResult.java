package io.stepstream.actors;

import io.stepstream.scheduler.FinishReason;

/**
 * A whole generation: the streamed text and token ids (a stop token is counted in completionTokens but not listed,
 * as it is not streamed).
 */
public record GenerationResult(String text, int[] tokenIds, FinishReason finishReason, int promptTokens,
                               int completionTokens) {
    public GenerationResult {
        tokenIds = tokenIds.clone();
    }

    @Override
    public int[] tokenIds() {
        return tokenIds.clone();
    }
}
