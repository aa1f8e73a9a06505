package io.stepstream.scheduler;

import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.DiffusionParams;
import java.util.List;

/**
 * One sequence to generate, already tokenized and validated by the caller.
 *
 * @param promptTokens the prompt as given to the model (BOS included when wanted); at least one token
 * @param maxTokens    most tokens to generate, >= 1 (a diffusion request generates at most gen_length)
 * @param stopStrings  generation stops before the first occurrence of any of these in the output text
 * @param diffusion    the LLaDA settings of a diffusion-LM request; null for an autoregressive one
 * @param progress     a diffusion request that also streams a {@link TokenEvent.DenoiseProgress} per step
 */
public record SequenceRequest(String requestId, int[] promptTokens, int maxTokens, SamplingParams sampling,
                              List<String> stopStrings, DiffusionParams diffusion, boolean progress) {
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
        if (progress && diffusion == null) {
            throw new IllegalArgumentException("progress: only diffusion requests report denoising progress");
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

    /** An autoregressive request. */
    public SequenceRequest(String requestId, int[] promptTokens, int maxTokens, SamplingParams sampling,
                           List<String> stopStrings) {
        this(requestId, promptTokens, maxTokens, sampling, stopStrings, null, false);
    }

    /** A diffusion-LM request: gen_length tokens at most, sampling settings inside {@code diffusion}. */
    public static SequenceRequest diffusion(String requestId, int[] promptTokens, DiffusionParams diffusion,
                                            List<String> stopStrings, boolean progress) {
        if (diffusion == null) {
            throw new IllegalArgumentException("diffusion: the settings of a diffusion request must not be null");
        }
        return new SequenceRequest(requestId, promptTokens, diffusion.genLength(), SamplingParams.GREEDY,
                stopStrings, diffusion, progress);
    }

    public boolean isDiffusion() {
        return diffusion != null;
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }
}
