package io.stepstream.actors;

import io.stepstream.scheduler.SchedulerConfig;

/**
 * Budgets every model's scheduler gets.
 *
 * @param maxNumSeqs          most sequences running at once per model
 * @param maxNumBatchedTokens most tokens in one step per model
 * @param maxWaiting          most requests waiting per model; more fail with {@link QueueFullException}
 */
public record StepStreamConfig(int maxNumSeqs, int maxNumBatchedTokens, int maxWaiting) {
    public StepStreamConfig {
        new SchedulerConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting); // same bounds, same messages
    }

    public static StepStreamConfig defaults() {
        SchedulerConfig d = SchedulerConfig.defaults();
        return new StepStreamConfig(d.maxNumSeqs(), d.maxNumBatchedTokens(), d.maxWaiting());
    }

    SchedulerConfig schedulerConfig() {
        return new SchedulerConfig(maxNumSeqs, maxNumBatchedTokens, maxWaiting);
    }
}
