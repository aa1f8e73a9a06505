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
 * @param stopStrings    generation stops before the first occurrence of any of these in the output text
 */
public record GenerateRequest(String model, String prompt, int[] promptTokenIds, int maxTokens,
                              SamplingParams sampling, List<String> stopStrings) {
    public GenerateRequest {
        model = model == null ? "" : model;
        prompt = prompt == null ? "" : prompt;
        stopStrings = stopStrings == null ? List.of() : List.copyOf(stopStrings);
        sampling = sampling == null ? SamplingParams.GREEDY : sampling;
    }
}
