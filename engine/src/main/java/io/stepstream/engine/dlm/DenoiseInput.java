package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.SparseStep;

/**
 * One request's part of a batched bidirectional forward: its whole canvas (prompt and masks, positions
 * {@code 0 .. tokens.length-1}) and the positions whose logits it needs, {@code [logitsStart,
 * logitsStart + logitsLength)}. The array is read, not copied: it must not change during the forward.
 *
 * @param sparse null for dense attention; else the request's SparseD state for this step (its pattern handle, the
 *               policy, the step index), see {@link DiffusionModel#forward}
 */
public record DenoiseInput(int[] tokens, int logitsStart, int logitsLength, SparseStep sparse) {
    public DenoiseInput {
        if (tokens == null || tokens.length == 0) {
            throw new IllegalArgumentException("tokens: the canvas must hold at least one token");
        }
        if (logitsStart < 0 || logitsLength < 1 || logitsStart > tokens.length - logitsLength) {
            throw new IllegalArgumentException("logits range [" + logitsStart + ", " + logitsStart + "+"
                    + logitsLength + ") is not a non-empty range inside the canvas of " + tokens.length + " tokens");
        }
        if (sparse != null && sparse.promptLength() > tokens.length) {
            throw new IllegalArgumentException("sparse promptLength " + sparse.promptLength()
                    + " is longer than the canvas of " + tokens.length + " tokens");
        }
    }

    /** A dense step. */
    public DenoiseInput(int[] tokens, int logitsStart, int logitsLength) {
        this(tokens, logitsStart, logitsLength, null);
    }

    public int length() {
        return tokens.length;
    }
}
