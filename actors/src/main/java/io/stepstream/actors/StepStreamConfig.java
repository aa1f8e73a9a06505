package io.stepstream.actors;

import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.scheduler.SchedulerConfig;

/**
 * Budgets every model's scheduler gets.
 *
 * @param maxNumSeqs          most sequences running at once per model
 * @param maxNumBatchedTokens most tokens in one step per model
 * @param maxWaiting          most requests waiting per model; more fail with {@link QueueFullException}
 * @param patternCacheBytes   most SparseD pattern bytes each diffusion model loaded by name holds at once, >= 0;
 *                            past it idle patterns are evicted, and a pattern larger than all of it is refused (its
 *                            request runs dense): requests never fail for it (0: every SparseD request runs dense)
 */
public record StepStreamConfig(int maxNumSeqs, int maxNumBatchedTokens, int maxWaiting, long patternCacheBytes) {
    public StepStreamConfig {
        new SchedulerConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting); // same bounds, same messages
        if (patternCacheBytes < 0) {
            throw new IllegalArgumentException("patternCacheBytes must be >= 0, got " + patternCacheBytes);
        }
    }

    /** With the engine's default pattern cache cap ({@link PatternCache#DEFAULT_CAP_BYTES}). */
    public StepStreamConfig(int maxNumSeqs, int maxNumBatchedTokens, int maxWaiting) {
        this(maxNumSeqs, maxNumBatchedTokens, maxWaiting, PatternCache.DEFAULT_CAP_BYTES);
    }

    public static StepStreamConfig defaults() {
        SchedulerConfig d = SchedulerConfig.defaults();
        return new StepStreamConfig(d.maxNumSeqs(), d.maxNumBatchedTokens(), d.maxWaiting());
    }

    public StepStreamConfig withPatternCacheBytes(long patternCacheBytes) {
        return new StepStreamConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting, patternCacheBytes);
    }

    SchedulerConfig schedulerConfig() {
        return new SchedulerConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting);
    }
}
