package io.stepstream.engine.sparse;

/**
 * SparseD (Wang et al., 2025) for masked diffusion LMs: attention patterns of a DLM's heads barely change across
 * denoising steps, so full attention runs for the early steps, then the pattern is built once from the attention
 * probabilities of one dense step and reused for every later step.
 *
 * <p>Steps of a request that plans N forward passes:
 * <ul>
 *   <li>0 .. int(N * skip): dense;</li>
 *   <li>the switch step int(N * skip) + 1: dense too, and while it runs the pattern is built (as SparseD's
 *       {@code end_time}); see {@link SparseDBuilder} for the selection;</li>
 *   <li>every later step: block-sparse attention through that pattern.</li>
 * </ul>
 * A request whose switch step is past its last step never leaves dense attention.
 *
 * @param skip      fraction of the steps that run dense before the switch, in [0, 1]
 * @param select    fraction of key blocks kept per query block and region ({@code int(n * select) + 1} of n), in
 *                  (0, 1]; 1 keeps every block, which is exactly dense attention
 * @param blockSize tokens per query and key block (SparseD uses 128 for long prompts, 32 for short ones)
 */
public record SparseDPolicy(double skip, double select, int blockSize) implements PatternPolicy {
    public SparseDPolicy {
        if (!(skip >= 0 && skip <= 1)) {
            throw new IllegalArgumentException("sparsed skip must be in [0, 1], got " + skip);
        }
        if (!(select > 0 && select <= 1)) {
            throw new IllegalArgumentException("sparsed select must be in (0, 1], got " + select);
        }
        if (blockSize < 1) {
            throw new IllegalArgumentException("sparsed block_size must be >= 1, got " + blockSize);
        }
    }

    /** SparseD's defaults for long prompts: skip 0.2, select 0.3, blocks of 128. */
    public static SparseDPolicy defaults() {
        return new SparseDPolicy(0.2, 0.3, 128);
    }

    public SparseDPolicy withBlockSize(int blockSize) {
        return new SparseDPolicy(skip, select, blockSize);
    }

    /** The step that runs dense and builds the pattern: int(totalSteps * skip) + 1. */
    public int switchStep(int totalSteps) {
        return (int) (totalSteps * skip) + 1;
    }

    @Override
    public boolean usesPattern(int step, int totalSteps) {
        return step >= switchStep(totalSteps);
    }

    /** Key blocks kept out of {@code candidates}: min(candidates, int(candidates * select) + 1). */
    public int keep(int candidates) {
        return Math.min(candidates, (int) (candidates * select) + 1);
    }
}
