package io.stepstream.scheduler;

/** One event of one request, as the scheduler emits them after a step. */
public record SequenceOutput(String requestId, TokenEvent event) {
}
