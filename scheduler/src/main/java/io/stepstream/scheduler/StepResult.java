package io.stepstream.scheduler;

import io.stepstream.engine.TokenLogprob;
import io.stepstream.engine.dlm.DenoiseOutcome;
import java.util.List;

/**
 * What {@link StepScheduler#execute} computed for a step: the token sampled for each sequence that ended its
 * prompt or decoded this step, and what each denoising step of a diffusion-LM request committed. A value, handed
 * back to {@link StepScheduler#complete} on the scheduling thread.
 */
public record StepResult(long stepId, List<SampledToken> sampled, List<Denoised> denoised) {
    public StepResult {
        sampled = List.copyOf(sampled);
        denoised = List.copyOf(denoised);
    }

    /** The result of a step with no denoising in it. */
    public StepResult(long stepId, List<SampledToken> sampled) {
        this(stepId, sampled, List.of());
    }

    /** What one denoising step did to a request's canvas (the outcome's arrays are the result's own). */
    public record Denoised(String requestId, DenoiseOutcome outcome) {
    }

    /** The next token of one sequence, with its log-probabilities when they were asked for. */
    public record SampledToken(String requestId, int tokenId, float logprob, List<TokenLogprob> top) {
        public SampledToken {
            top = List.copyOf(top);
        }
    }
}
