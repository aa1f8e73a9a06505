package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.SparseStep;

/**
 * One request's part of a batched bidirectional forward: its whole canvas (prompt and masks, positions
 * {@code 0 .. tokens.length-1}) and the positions whose logits it needs, {@code [logitsStart,
 * logitsStart + logitsLength)}. The array is read, not copied: it must not change during the forward.
 *
 * @param sparse null for dense attention; else the request's SparseD state for this step (its pattern handle, the
 *               policy, the step index), see {@link DiffusionModel#forward}
 * @param cache  null to run the whole canvas with nothing kept; else the request's Fast-dLLM cache step (the
 *               model then runs only the rows that step recomputes, see {@link DlmCacheStep}); the logits range
 *               must lie inside its block. Not combined with {@code sparse}.
 */
public record DenoiseInput(int[] tokens, int logitsStart, int logitsLength, SparseStep sparse, DlmCacheStep cache) {
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
        if (cache != null) {
            if (sparse != null) {
                throw new IllegalArgumentException("an input cannot use both SparseD and the Fast-dLLM cache");
            }
            if (cache.blockEnd() > tokens.length) {
                throw new IllegalArgumentException("cache block [" + cache.blockStart() + ", " + cache.blockEnd()
                        + ") reaches past the canvas of " + tokens.length + " tokens");
            }
            if (logitsStart < cache.blockStart() || logitsStart + logitsLength > cache.blockEnd()) {
                throw new IllegalArgumentException("logits range [" + logitsStart + ", " + logitsStart + "+"
                        + logitsLength + ") must lie inside the cached block [" + cache.blockStart() + ", "
                        + cache.blockEnd() + ")");
            }
        }
    }

    /** A step without the Fast-dLLM cache (dense, or SparseD when {@code sparse} is set). */
    public DenoiseInput(int[] tokens, int logitsStart, int logitsLength, SparseStep sparse) {
        this(tokens, logitsStart, logitsLength, sparse, null);
    }

    /** A dense step. */
    public DenoiseInput(int[] tokens, int logitsStart, int logitsLength) {
        this(tokens, logitsStart, logitsLength, null, null);
    }

    public int length() {
        return tokens.length;
    }
}
