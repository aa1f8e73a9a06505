package io.stepstream.engine.dlm;

/**
 * What one denoising step did to a request's canvas.
 *
 * @param step               the request's forward pass this was, counting from 0
 * @param committedPositions canvas positions given a token this step, ascending
 * @param committedTokens    the token each of them got (LLaDA allows the mask id itself: the position then stays
 *                           masked and may be chosen again)
 * @param completedBlock     index of the block this step finished, or -1
 * @param blockStart         canvas position of that block's first token (-1 when none finished)
 * @param blockTokens        the finished block's tokens, what the request streams (empty when none finished); see
 *                           {@link #textTokens(int)}
 * @param done               true when this was the request's last step
 */
public record DenoiseOutcome(int step, int[] committedPositions, int[] committedTokens, int completedBlock,
                             int blockStart, int[] blockTokens, boolean done) {
    public boolean blockCompleted() {
        return completedBlock >= 0;
    }

    /**
     * The finished block's tokens without any mask id. A block ends with masks left only when the model chose the
     * mask id itself for a position (LLaDA keeps that); those have no text and must not reach a decoder.
     */
    public int[] textTokens(int maskId) {
        int n = 0;
        for (int t : blockTokens) {
            if (t != maskId) {
                n++;
            }
        }
        int[] out = new int[n];
        int i = 0;
        for (int t : blockTokens) {
            if (t != maskId) {
                out[i++] = t;
            }
        }
        return out;
    }
}
