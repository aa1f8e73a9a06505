package io.stepstream.scheduler;

import java.util.List;

/**
 * The scheduler's state at one moment, for tests and metrics.
 *
 * @param waiting   ids waiting for admission, oldest first
 * @param running   ids admitted (prefilling or decoding) and not cancelled, in admission order
 * @param stepsRun  steps completed or failed so far
 * @param kvBytes   bytes held by the KV caches of running sequences
 * @param sequences timings and progress of the waiting and running sequences
 * @param patternCache the model's SparseD pattern cache counters; null for a model without one (autoregressive)
 */
public record SchedulerSnapshot(List<String> waiting, List<String> running, long stepsRun, long kvBytes,
                                List<SequenceStats> sequences, PatternCacheStats patternCache) {
    public SchedulerSnapshot {
        waiting = List.copyOf(waiting);
        running = List.copyOf(running);
        sequences = List.copyOf(sequences);
    }

    /** A snapshot of a model without a pattern cache. */
    public SchedulerSnapshot(List<String> waiting, List<String> running, long stepsRun, long kvBytes,
                             List<SequenceStats> sequences) {
        this(waiting, running, stepsRun, kvBytes, sequences, null);
    }

    /**
     * Times are readings of the scheduler's injected nano clock; -1 when the event has not happened yet.
     */
    public record SequenceStats(String requestId, long queuedAtNanos, long admittedAtNanos, long firstTokenAtNanos,
                                int promptTokens, int prefilledTokens, int completionTokens) {
    }
}
