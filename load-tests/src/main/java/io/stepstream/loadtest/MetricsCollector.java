package io.stepstream.loadtest;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * Accumulates request outcomes from many gRPC callback threads at once. Latencies go into HdrHistogram
 * {@link Recorder}s in whole microseconds (wait-free recording, auto-resizing range, 3 significant
 * digits); counts into adders. {@link #report} drains the recorders into running totals, so it can be
 * called more than once.
 */
public final class MetricsCollector {

    private final SloTargets slo;
    private final Recorder ttft = new Recorder(3);
    private final Recorder itl = new Recorder(3);
    private final Recorder tpot = new Recorder(3);
    private final Recorder e2e = new Recorder(3);
    private final LongAdder completed = new LongAdder();
    private final LongAdder failed = new LongAdder();
    private final LongAdder good = new LongAdder();
    private final LongAdder inputTokens = new LongAdder();
    private final LongAdder outputTokens = new LongAdder();
    private final Map<String, LongAdder> failures = new ConcurrentHashMap<>();
    private final Map<String, LongAdder> finishReasons = new ConcurrentHashMap<>();

    // Totals the recorders have been drained into; touched only under the report lock.
    private final Histogram ttftTotal = new Histogram(3);
    private final Histogram itlTotal = new Histogram(3);
    private final Histogram tpotTotal = new Histogram(3);
    private final Histogram e2eTotal = new Histogram(3);

    public MetricsCollector(SloTargets slo) {
        this.slo = slo == null ? SloTargets.NONE : slo;
    }

    /** Records one finished request; safe to call from any thread. */
    public void record(RequestOutcome outcome) {
        if (!outcome.succeeded()) {
            failed.increment();
            failures.computeIfAbsent(outcome.failure(), k -> new LongAdder()).increment();
            return;
        }
        completed.increment();
        finishReasons.computeIfAbsent(outcome.finishReason(), k -> new LongAdder()).increment();
        inputTokens.add(outcome.promptTokens());
        outputTokens.add(outcome.outputTokens());
        e2e.recordValue(micros(outcome.e2eNanos()));
        if (outcome.hasTtft()) {
            ttft.recordValue(micros(outcome.ttftNanos()));
        }
        for (long gap : outcome.interTokenNanos()) {
            itl.recordValue(micros(gap));
        }
        if (outcome.hasTpot()) {
            tpot.recordValue(micros(outcome.tpotNanos()));
        }
        if (slo.any() && slo.metBy(outcome)) {
            good.increment();
        }
    }

    /** The report over everything recorded so far, for a run that took {@code durationNanos}. */
    public synchronized LoadReport report(LoadTestConfig config, long durationNanos) {
        drain(ttft, ttftTotal);
        drain(itl, itlTotal);
        drain(tpot, tpotTotal);
        drain(e2e, e2eTotal);
        double seconds = durationNanos / 1e9;
        long done = completed.sum();
        long bad = failed.sum();
        long in = inputTokens.sum();
        long out = outputTokens.sum();
        Map<String, LatencySummary> latencies = new LinkedHashMap<>();
        putIfSampled(latencies, LoadReport.TTFT, ttftTotal);
        putIfSampled(latencies, LoadReport.ITL, itlTotal);
        putIfSampled(latencies, LoadReport.TPOT, tpotTotal);
        putIfSampled(latencies, LoadReport.E2E, e2eTotal);
        Long goodCount = slo.any() ? good.sum() : null;
        return new LoadReport(
                config,
                done + bad,
                done,
                bad,
                sums(failures),
                sums(finishReasons),
                seconds,
                in,
                out,
                perSecond(done, seconds),
                perSecond(out, seconds),
                perSecond(in + out, seconds),
                goodCount,
                goodCount == null ? null : perSecond(goodCount, seconds),
                latencies);
    }

    private static long micros(double nanos) {
        // A clock that steps backwards must not crash the run; a negative latency is recorded as 0.
        return Math.max(0, Math.round(nanos / 1e3));
    }

    private static void drain(Recorder recorder, Histogram total) {
        total.add(recorder.getIntervalHistogram());
    }

    private static void putIfSampled(Map<String, LatencySummary> into, String name, Histogram micros) {
        LatencySummary summary = LatencySummary.ofMicros(micros);
        if (summary != null) {
            into.put(name, summary);
        }
    }

    private static Map<String, Long> sums(Map<String, LongAdder> adders) {
        Map<String, Long> sorted = new TreeMap<>();
        adders.forEach((k, v) -> sorted.put(k, v.sum()));
        return sorted;
    }

    private static double perSecond(long count, double seconds) {
        return seconds > 0 ? count / seconds : 0.0;
    }
}
