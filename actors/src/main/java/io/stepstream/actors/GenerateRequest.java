package io.stepstream.actors;

import io.stepstream.engine.SamplingParams;
import java.util.List;

/**
 * A generation request as the embedded API and the gRPC service take it.
 *
 * @param model          model name; empty means the default model
 * @param prompt         prompt text (empty: generate from BOS alone, as llama2.c does); ignored when
 *                       {@code promptTokenIds} is non-null
 * @param promptTokenIds prompt as token ids (BOS is not added), or null to tokenize {@code prompt}
 * @param maxTokens      most tokens to generate, >= 1
 * @param maxTokens      most tokens to generate, >= 1; for a diffusion model 0 (not supported there: gen_length
 *                       sets the length)
 * @param stopStrings    generation stops before the first occurrence of any of these in the output text
 * @param diffusion      diffusion-LM settings; null for an autoregressive model, and null or
 *                       {@link DiffusionOptions#DEFAULTS} for a diffusion model's defaults. A diffusion model takes
 *                       temperature and seed from {@code sampling}, and no top_k, top_p or logprobs.
 */
public record GenerateRequest(String model, String prompt, int[] promptTokenIds, int maxTokens,
                              SamplingParams sampling, List<String> stopStrings, DiffusionOptions diffusion) {
    public GenerateRequest {
        model = model == null ? "" : model;
        prompt = prompt == null ? "" : prompt;
        stopStrings = stopStrings == null ? List.of() : List.copyOf(stopStrings);
        sampling = sampling == null ? SamplingParams.GREEDY : sampling;
    }

    /** A request without diffusion settings. */
    public GenerateRequest(String model, String prompt, int[] promptTokenIds, int maxTokens, SamplingParams sampling,
                           List<String> stopStrings) {
        this(model, prompt, promptTokenIds, maxTokens, sampling, stopStrings, null);
    }

    /** A diffusion-LM request: no max_tokens, temperature and seed from {@code sampling}. */
    public static GenerateRequest diffusion(String model, String prompt, SamplingParams sampling,
                                            List<String> stopStrings, DiffusionOptions diffusion) {
        return new GenerateRequest(model, prompt, null, 0, sampling, stopStrings,
                diffusion == null ? DiffusionOptions.DEFAULTS : diffusion);
    }

    public GenerateRequest withMaxTokens(int maxTokens) {
        return new GenerateRequest(model, prompt, promptTokenIds, maxTokens, sampling, stopStrings, diffusion);
    }
}
