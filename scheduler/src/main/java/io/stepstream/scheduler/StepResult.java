package io.stepstream.scheduler;

import io.stepstream.engine.TokenLogprob;
import java.util.List;

/**
 * What {@link Scheduler#execute} computed for a step: the token sampled for each sequence that ended its prompt
 * or decoded this step. A value, handed back to {@link Scheduler#complete} on the scheduling thread.
 */
public record StepResult(long stepId, List<SampledToken> sampled) {
    public StepResult {
        sampled = List.copyOf(sampled);
    }

    /** The next token of one sequence, with its log-probabilities when they were asked for. */
    public record SampledToken(String requestId, int tokenId, float logprob, List<TokenLogprob> top) {
        public SampledToken {
            top = List.copyOf(top);
        }
    }
}
