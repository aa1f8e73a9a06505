package io.stepstream.engine;

/** A token id with its log-probability under the (temperature 1) model distribution. */
public record TokenLogprob(int tokenId, float logprob) {
}
