package io.stepstream.scheduler;

import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.dlm.DenoisingGeneration;

/**
 * One diffusion-LM request's mutable state inside the {@link DiffusionScheduler}: its generation (LLaDA's or
 * Dream's; the canvas), the logits buffer its steps write, and what it has streamed.
 *
 * <p>Owned by the scheduling thread, except that {@link DiffusionScheduler#execute} drives {@code generation} and
 * writes {@code logits} of the sequences in the step it runs; the scheduling thread leaves those alone while the
 * step is in flight.
 */
final class DenoiseSequence {
    final String id;
    final SequenceRequest request;
    final DenoisingGeneration generation;
    final int promptLength;
    /** Prompt + gen_length: the rows every denoising step of this request puts through the model. */
    final int canvasLength;

    /** Logits of the current block, allocated on admission and dropped when the sequence ends. */
    float[] logits;
    StreamingDecoder decoder;
    StopStringFilter stopFilter;

    /** Generated positions holding a token (not the mask id) so far. */
    int committed;
    /** Tokens streamed so far (the text tokens of completed blocks, up to a stop). */
    int streamed;
    /** True once the request stopped at EOS, which counts as a completion token but is not streamed. */
    boolean stoppedAtEos;

    final long queuedAtNanos;
    long admittedAtNanos = -1;
    long firstTokenAtNanos = -1;
    /** Cancelled while its step was in flight: finished when that step completes. */
    boolean cancelRequested;

    DenoiseSequence(SequenceRequest request, DenoisingGeneration generation, long queuedAtNanos) {
        this.id = request.requestId();
        this.request = request;
        this.generation = generation;
        this.promptLength = generation.prefixLength();
        this.canvasLength = generation.canvasLength();
        this.queuedAtNanos = queuedAtNanos;
    }

    int completionTokens() {
        return streamed + (stoppedAtEos ? 1 : 0);
    }

    boolean admitted() {
        return admittedAtNanos >= 0;
    }
}
