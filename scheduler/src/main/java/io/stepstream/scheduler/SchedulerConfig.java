package io.stepstream.scheduler;

/**
 * Budgets of one model's scheduler.
 *
 * @param maxNumSeqs          most sequences admitted (running) at once, so most sequences in one step
 * @param maxNumBatchedTokens most tokens (prefill chunk lengths + one per decode) in one step
 * @param maxWaiting          most requests waiting for admission; {@code Scheduler.add} refuses beyond it
 */
public record SchedulerConfig(int maxNumSeqs, int maxNumBatchedTokens, int maxWaiting) {
    public SchedulerConfig {
        if (maxNumSeqs < 1) {
            throw new IllegalArgumentException("maxNumSeqs must be >= 1, got " + maxNumSeqs);
        }
        if (maxNumBatchedTokens < 1) {
            throw new IllegalArgumentException("maxNumBatchedTokens must be >= 1, got " + maxNumBatchedTokens);
        }
        if (maxWaiting < 0) {
            throw new IllegalArgumentException("maxWaiting must be >= 0, got " + maxWaiting);
        }
    }

    public static SchedulerConfig defaults() {
        return new SchedulerConfig(64, 2048, 1024);
    }
}
