package io.stepstream.scheduler;

import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.DreamParams;
import java.util.List;

/**
 * One sequence to generate, already tokenized and validated by the caller.
 *
 * @param promptTokens the prompt as given to the model (BOS included when wanted); at least one token
 * @param maxTokens    most tokens to generate, >= 1 (a diffusion request generates at most gen_length)
 * @param stopStrings  generation stops before the first occurrence of any of these in the output text
 * @param diffusion    the LLaDA settings of a diffusion-LM request; null for an autoregressive one (and for Dream)
 * @param progress     a diffusion request that also streams a {@link TokenEvent.DenoiseProgress} per step
 * @param dream        the settings of a request to a Dream model; null otherwise (at most one of diffusion and
 *                     dream is set)
 */
public record SequenceRequest(String requestId, int[] promptTokens, int maxTokens, SamplingParams sampling,
                              List<String> stopStrings, DiffusionParams diffusion, boolean progress,
                              DreamParams dream) {
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
        if (diffusion != null && dream != null) {
            throw new IllegalArgumentException("diffusion: a request has LLaDA or Dream settings, not both");
        }
        if (progress && diffusion == null && dream == null) {
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

    /** An autoregressive request (dream null) or a LLaDA-style diffusion request. */
    public SequenceRequest(String requestId, int[] promptTokens, int maxTokens, SamplingParams sampling,
                           List<String> stopStrings, DiffusionParams diffusion, boolean progress) {
        this(requestId, promptTokens, maxTokens, sampling, stopStrings, diffusion, progress, null);
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

    /** A request to a Dream model: gen_length tokens at most, sampling settings inside {@code dream}. */
    public static SequenceRequest dream(String requestId, int[] promptTokens, DreamParams dream,
                                        List<String> stopStrings, boolean progress) {
        if (dream == null) {
            throw new IllegalArgumentException("dream: the settings of a Dream request must not be null");
        }
        return new SequenceRequest(requestId, promptTokens, dream.genLength(), SamplingParams.GREEDY, stopStrings,
                null, progress, dream);
    }

    /** A diffusion-LM request of either kind (LLaDA settings or Dream settings). */
    public boolean isDiffusion() {
        return diffusion != null || dream != null;
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }
}
