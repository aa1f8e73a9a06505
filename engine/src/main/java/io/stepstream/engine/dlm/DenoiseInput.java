package io.stepstream.engine.dlm;

/**
 * One request's part of a batched bidirectional forward: its whole canvas (prompt and masks, positions
 * {@code 0 .. tokens.length-1}) and the positions whose logits it needs, {@code [logitsStart,
 * logitsStart + logitsLength)}. The array is read, not copied: it must not change during the forward.
 */
public record DenoiseInput(int[] tokens, int logitsStart, int logitsLength) {
    public DenoiseInput {
        if (tokens == null || tokens.length == 0) {
            throw new IllegalArgumentException("tokens: the canvas must hold at least one token");
        }
        if (logitsStart < 0 || logitsLength < 1 || logitsStart > tokens.length - logitsLength) {
            throw new IllegalArgumentException("logits range [" + logitsStart + ", " + logitsStart + "+"
                    + logitsLength + ") is not a non-empty range inside the canvas of " + tokens.length + " tokens");
        }
    }

    public int length() {
        return tokens.length;
    }
}
