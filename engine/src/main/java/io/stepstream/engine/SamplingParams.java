package io.stepstream.engine;

/**
 * How to pick the next token from logits. temperature 0 means greedy (argmax, ties to the lowest id).
 *
 * @param temperature >= 0
 * @param topK        0 disables, else keep the k most likely tokens
 * @param topP        in (0, 1]; 1 disables nucleus sampling
 * @param seed        seeds the sequence's own random stream: same seed and settings give the same tokens
 * @param logprobs    how many top log-probabilities to report per generated token (0 = none)
 */
public record SamplingParams(float temperature, int topK, float topP, long seed, int logprobs) {
    public static final SamplingParams GREEDY = new SamplingParams(0f, 0, 1f, 0L, 0);

    public boolean greedy() {
        return temperature == 0f;
    }
}
