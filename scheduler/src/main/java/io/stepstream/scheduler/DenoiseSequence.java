package io.stepstream.scheduler;

import io.stepstream.engine.dlm.DenoisingGeneration;
import io.stepstream.engine.dlm.RowSummaries;

/**
 * One diffusion-LM request's mutable state inside the {@link DiffusionScheduler}: its generation (LLaDA's or
 * Dream's; the canvas), the logits buffer its steps write, and what it has streamed.
 *
 * <p>Owned by the scheduling thread, except that {@link DiffusionScheduler#execute} drives {@code generation} and
 * writes {@code logits} of the sequences in the step it runs; the scheduling thread leaves those alone while the
 * step is in flight.
 */
final class DenoiseSequence extends TrackedSequence {
    final DenoisingGeneration generation;
    /** Prompt + gen_length: the rows every denoising step of this request puts through the model. */
    final int canvasLength;

    /** Logits of the current block, allocated on admission and dropped when the sequence ends. */
    float[] logits;
    /**
     * Room for the current block's row summaries when the generation accepts them and the model makes them on its
     * device (allocated on admission, dropped when the sequence ends); else null.
     */
    RowSummaries summaries;

    /** Generated positions holding a token (not the mask id) so far. */
    int committed;
    /** Tokens streamed so far (the text tokens of completed blocks, up to a stop). */
    int streamed;
    /** True once the request stopped at EOS, which counts as a completion token but is not streamed. */
    boolean stoppedAtEos;

    DenoiseSequence(SequenceRequest request, DenoisingGeneration generation, long queuedAtNanos) {
        super(request, generation.prefixLength(), queuedAtNanos);
        this.generation = generation;
        this.canvasLength = generation.canvasLength();
    }

    @Override
    int completionTokens() {
        return streamed + (stoppedAtEos ? 1 : 0);
    }

    /** An admitted request's whole prompt is in every step's canvas. */
    @Override
    int prefilledTokens() {
        return admitted() ? promptLength : 0;
    }
}
