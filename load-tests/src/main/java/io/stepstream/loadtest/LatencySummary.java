package io.stepstream.loadtest;

import org.HdrHistogram.Histogram;

/**
 * One latency metric over a run, in milliseconds. Percentiles are nearest-rank on the HdrHistogram
 * (3 significant digits), so each is a value that was (to that precision) actually observed.
 */
public record LatencySummary(long count, double mean, double p50, double p90, double p95, double p99, double max) {

    /** Summarises a histogram of microsecond values; null when it holds no values. */
    static LatencySummary ofMicros(Histogram micros) {
        if (micros.getTotalCount() == 0) {
            return null;
        }
        return new LatencySummary(
                micros.getTotalCount(),
                micros.getMean() / 1e3,
                micros.getValueAtPercentile(50) / 1e3,
                micros.getValueAtPercentile(90) / 1e3,
                micros.getValueAtPercentile(95) / 1e3,
                micros.getValueAtPercentile(99) / 1e3,
                micros.getMaxValue() / 1e3);
    }
}
