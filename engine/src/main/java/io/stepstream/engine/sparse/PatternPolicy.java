package io.stepstream.engine.sparse;

/**
 * Decides, for one request's forward pass, whether attention runs dense or through a cached block pattern.
 * {@link SparseDPolicy} is the diffusion-model policy; a request without a policy always runs dense.
 */
public interface PatternPolicy {
    /**
     * True when forward pass {@code step} (counting the request's forward passes from 0) of a request that plans
     * {@code totalSteps} passes should attend through a pattern (building it first if none is cached).
     */
    boolean usesPattern(int step, int totalSteps);
}
