package io.stepstream.scheduler;

import java.util.List;

/**
 * The plan of one step: which sequences do what, within the step's sequence and token budgets.
 * A value: built by {@code Scheduler.plan}, executed off the scheduling thread, then handed back.
 */
public record StepBatch(long stepId, List<PrefillChunk> prefills, List<Decode> decodes, List<DenoiseStep> denoises) {
    public StepBatch {
        prefills = List.copyOf(prefills);
        decodes = List.copyOf(decodes);
        denoises = List.copyOf(denoises);
    }

    public boolean isEmpty() {
        return prefills.isEmpty() && decodes.isEmpty() && denoises.isEmpty();
    }

    /** Prompt tokens {@code [start, start+length)} of a sequence; {@code last} when this chunk ends the prompt. */
    public record PrefillChunk(String requestId, int start, int length, boolean last) {
    }

    /** One next-token decode of a sequence whose last token sits at {@code position}. */
    public record Decode(String requestId, int position) {
    }

    /**
     * One denoising step of a diffusion-LM request: a forward pass over its whole canvas.
     *
     * @param step         the request's denoising step (forward pass), counting from 0
     * @param block        the block this step works on, counting from 0
     * @param canvasLength tokens in the canvas (prompt + gen_length): what the step costs in the token budget
     */
    public record DenoiseStep(String requestId, int step, int block, int canvasLength) {
    }
}
