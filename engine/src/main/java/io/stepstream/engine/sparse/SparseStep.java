package io.stepstream.engine.sparse;

/**
 * What a forward needs to know to attend sparsely for one request's step.
 *
 * @param handle       the request's pattern in the model's {@link PatternCache}
 * @param policy       when to build and use the pattern, and how
 * @param step         this forward pass of the request, counting from 0
 * @param totalSteps   forward passes the request plans (LLaDA's steps)
 * @param promptLength canvas positions before the generated region (BOS and prompt); SparseD selects key blocks
 *                     of the prompt and of the generated region separately
 */
public record SparseStep(PatternHandle handle, SparseDPolicy policy, int step, int totalSteps, int promptLength) {
    public SparseStep {
        if (handle == null || policy == null) {
            throw new IllegalArgumentException("sparse step needs a pattern handle and a policy");
        }
        if (step < 0 || totalSteps < 1 || promptLength < 1) {
            throw new IllegalArgumentException("sparse step needs step >= 0, totalSteps >= 1, promptLength >= 1, got "
                    + step + ", " + totalSteps + ", " + promptLength);
        }
    }

    /** True from the switch step on: attention goes through the cached pattern (built first on a miss). */
    public boolean usesPattern() {
        return policy.usesPattern(step, totalSteps);
    }
}
