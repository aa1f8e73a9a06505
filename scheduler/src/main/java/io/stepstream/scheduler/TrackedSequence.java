package io.stepstream.scheduler;

import io.stepstream.engine.StreamingDecoder;

/**
 * What every scheduler keeps of one request between its arrival and its end, whatever kind of model runs it:
 * its id and request, its prompt length, the text decoder and stop-string filter of its stream, its timings, and
 * whether it was cancelled while its step was in flight. {@link Sequence} (autoregressive) and
 * {@link DenoiseSequence} (diffusion) add what their kind of step needs.
 *
 * <p>Owned by the scheduling thread (see the subclasses for what {@code execute} may touch).
 */
abstract class TrackedSequence {
    final String id;
    final SequenceRequest request;
    final int promptLength;

    StreamingDecoder decoder;
    StopStringFilter stopFilter;

    final long queuedAtNanos;
    long admittedAtNanos = -1;
    long firstTokenAtNanos = -1;
    /** Cancelled while its step was in flight: finished when that step completes. */
    boolean cancelRequested;

    TrackedSequence(SequenceRequest request, int promptLength, long queuedAtNanos) {
        this.id = request.requestId();
        this.request = request;
        this.promptLength = promptLength;
        this.queuedAtNanos = queuedAtNanos;
    }

    /** Completion tokens so far, as {@link TokenEvent.Finished#completionTokens()} reports them. */
    abstract int completionTokens();

    /** Prompt tokens the model has taken in so far, as the snapshot reports them. */
    abstract int prefilledTokens();

    boolean admitted() {
        return admittedAtNanos >= 0;
    }
}
