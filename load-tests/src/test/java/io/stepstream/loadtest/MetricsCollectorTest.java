package io.stepstream.loadtest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The aggregate math against a plain recomputation from the raw outcomes; single-threaded, no clock. */
class MetricsCollectorTest {

    private static final long MS = 1_000_000;

    private static LoadTestConfig config(SloTargets slo) {
        return new LoadTestConfig("localhost:1", "", 4, null, 1.0, 100, 64, 0f, 1L, 0, 60_000, slo);
    }

    private static RequestOutcome success(long ttftMs, long[] gapsMs, long e2eMs, int prompt, int output) {
        long[] gaps = new long[gapsMs.length];
        for (int i = 0; i < gaps.length; i++) {
            gaps[i] = gapsMs[i] * MS;
        }
        return new RequestOutcome(null, null, "length", e2eMs * MS, ttftMs * MS, gaps, prompt, output);
    }

    @Test
    void percentilesMeansCountsAndThroughputMatchAPlainRecomputation() {
        long seed = System.nanoTime();
        SplittableRandom random = new SplittableRandom(seed);
        SloTargets slo = new SloTargets(150.0, 12.0, null);
        MetricsCollector collector = new MetricsCollector(slo);
        List<Double> ttft = new ArrayList<>();
        List<Double> itl = new ArrayList<>();
        List<Double> tpot = new ArrayList<>();
        List<Double> e2e = new ArrayList<>();
        Map<String, Long> failures = new TreeMap<>();
        long completed = 0;
        long good = 0;
        long in = 0;
        long out = 0;
        for (int r = 0; r < 700; r++) {
            if (random.nextInt(10) == 0) {
                String code = random.nextBoolean() ? "INVALID_ARGUMENT" : "UNAVAILABLE";
                collector.record(RequestOutcome.failed(code, "scripted", null, random.nextLong(1, 100 * MS)));
                failures.merge(code, 1L, Long::sum);
                continue;
            }
            int tokens = 1 + random.nextInt(30);
            long ttftNanos = random.nextLong(MS / 2, 400 * MS);
            long[] gaps = new long[tokens - 1];
            long at = ttftNanos;
            for (int i = 0; i < gaps.length; i++) {
                gaps[i] = random.nextLong(MS / 10, 30 * MS);
                at += gaps[i];
                itl.add(gaps[i] / 1e6);
            }
            long e2eNanos = at + random.nextLong(0, 2 * MS);
            int prompt = random.nextInt(200);
            RequestOutcome o = new RequestOutcome(null, null, "length", e2eNanos, ttftNanos, gaps, prompt, tokens);
            collector.record(o);
            completed++;
            in += prompt;
            out += tokens;
            ttft.add(ttftNanos / 1e6);
            e2e.add(e2eNanos / 1e6);
            double tpotMs = tokens >= 2 ? (e2eNanos - ttftNanos) / 1e6 / (tokens - 1) : Double.NaN;
            if (tokens >= 2) {
                tpot.add(tpotMs);
            }
            if (ttftNanos / 1e6 <= 150.0 && (tokens < 2 || tpotMs <= 12.0)) {
                good++;
            }
        }
        long duration = 12_345 * MS;
        LoadReport report = collector.report(config(slo), duration);
        String why = "seed " + seed;

        assertEquals(completed + failures.values().stream().mapToLong(Long::longValue).sum(), report.requested(), why);
        assertEquals(completed, report.completed(), why);
        assertEquals(failures, report.failures(), why);
        assertEquals(Map.of("length", completed), report.finishReasons(), why);
        assertEquals(in, report.totalInputTokens(), why);
        assertEquals(out, report.totalOutputTokens(), why);
        assertEquals(12.345, report.durationSeconds(), 1e-12, why);
        assertEquals(completed / 12.345, report.requestThroughput(), 1e-9, why);
        assertEquals(out / 12.345, report.outputTokenThroughput(), 1e-9, why);
        assertEquals((in + out) / 12.345, report.totalTokenThroughput(), 1e-9, why);
        assertEquals(good, report.goodRequests(), why);
        assertEquals(good / 12.345, report.goodput(), 1e-9, why);

        assertMatches(ttft, report.latenciesMs().get(LoadReport.TTFT), why + " ttft");
        assertMatches(itl, report.latenciesMs().get(LoadReport.ITL), why + " itl");
        assertMatches(tpot, report.latenciesMs().get(LoadReport.TPOT), why + " tpot");
        assertMatches(e2e, report.latenciesMs().get(LoadReport.E2E), why + " e2e");
    }

    /** Nearest-rank percentiles and the mean, within HdrHistogram's 3 significant digits plus 1 us rounding. */
    private static void assertMatches(List<Double> valuesMs, LatencySummary summary, String why) {
        assertNotNull(summary, why);
        double[] sorted = valuesMs.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        assertEquals(sorted.length, summary.count(), why);
        double mean = valuesMs.stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertClose(mean, summary.mean(), why + " mean");
        assertClose(nearestRank(sorted, 50), summary.p50(), why + " p50");
        assertClose(nearestRank(sorted, 90), summary.p90(), why + " p90");
        assertClose(nearestRank(sorted, 95), summary.p95(), why + " p95");
        assertClose(nearestRank(sorted, 99), summary.p99(), why + " p99");
        assertClose(sorted[sorted.length - 1], summary.max(), why + " max");
    }

    private static double nearestRank(double[] sorted, double percentile) {
        int rank = (int) Math.ceil(percentile / 100.0 * sorted.length);
        return sorted[Math.max(rank, 1) - 1];
    }

    private static void assertClose(double expected, double actual, String why) {
        assertEquals(expected, actual, expected * 2e-3 + 2e-3, why);
    }

    @Test
    void goodputCountsOnlySuccessesMeetingEverySetTarget() {
        SloTargets slo = new SloTargets(100.0, 10.0, 500.0);
        MetricsCollector collector = new MetricsCollector(slo);
        // ttft 50, tpot (230-50)/9 = 20: misses TPOT
        collector.record(success(50, new long[] {20, 20, 20, 20, 20, 20, 20, 20, 20}, 230, 5, 10));
        // ttft 50, tpot (140-50)/9 = 10: meets all
        collector.record(success(50, new long[] {10, 10, 10, 10, 10, 10, 10, 10, 10}, 140, 5, 10));
        // ttft 120: misses TTFT
        collector.record(success(120, new long[] {5}, 125, 5, 2));
        // a single token: no TPOT, meets the others
        collector.record(success(60, new long[0], 61, 5, 1));
        // misses E2E only
        collector.record(success(60, new long[] {1}, 600, 5, 2 /* tpot 540: also misses TPOT */));
        collector.record(success(60, new long[] {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 501, 5, 50));
        // a failure never counts, however fast
        collector.record(RequestOutcome.failed("INVALID_ARGUMENT", "bad", null, MS));
        LoadReport report = collector.report(config(slo), 2_000 * MS);
        assertEquals(2, report.goodRequests());
        assertEquals(1.0, report.goodput(), 1e-12);
        assertEquals(6, report.completed());
        assertEquals(1, report.failed());
    }

    @Test
    void withoutSlosThereIsNoGoodputAndEmptyMetricsAreAbsent() {
        MetricsCollector collector = new MetricsCollector(SloTargets.NONE);
        collector.record(RequestOutcome.failed("UNAVAILABLE", "down", null, 3 * MS));
        LoadReport report = collector.report(config(null), 10 * MS);
        assertNull(report.goodput());
        assertNull(report.goodRequests());
        assertTrue(report.latenciesMs().isEmpty());
        assertEquals(0.0, report.requestThroughput());
        assertEquals(Map.of("UNAVAILABLE", 1L), report.failures());
        assertFalse(ReportTable.render(report).contains("Goodput"));
        assertTrue(ReportTable.render(report).contains("UNAVAILABLE: 1"));
    }

    @Test
    void reportingTwiceKeepsEverySample() {
        MetricsCollector collector = new MetricsCollector(SloTargets.NONE);
        collector.record(success(10, new long[] {1, 2}, 20, 3, 3));
        LoadReport first = collector.report(config(null), 100 * MS);
        collector.record(success(30, new long[] {4}, 40, 3, 2));
        LoadReport second = collector.report(config(null), 100 * MS);
        assertEquals(1, first.latenciesMs().get(LoadReport.TTFT).count());
        assertEquals(2, second.latenciesMs().get(LoadReport.TTFT).count());
        assertEquals(3, second.latenciesMs().get(LoadReport.ITL).count());
        assertEquals(30.0, second.latenciesMs().get(LoadReport.TTFT).max(), 0.05);
    }

    @Test
    void jsonUsesSnakeCaseAndReadsBackToTheSameReport() throws Exception {
        SloTargets slo = new SloTargets(200.0, null, null);
        MetricsCollector collector = new MetricsCollector(slo);
        collector.record(success(10, new long[] {1, 2, 3}, 20, 3, 4));
        collector.record(success(15, new long[] {2, 2}, 22, 4, 3));
        collector.record(RequestOutcome.failed("INVALID_ARGUMENT", "bad", null, MS));
        LoadTestConfig rateConfig = new LoadTestConfig("h:1", "m", null, Double.POSITIVE_INFINITY, 0.5, 3, 8, 0.7f,
                null, 2, 1000, slo);
        LoadReport report = collector.report(rateConfig, 50 * MS);

        String json = ReportJson.toJson(report);
        assertEquals(report, ReportJson.fromJson(json));
        JsonNode tree = new ObjectMapper().readTree(json);
        assertEquals(2, tree.path("completed").asLong());
        assertEquals(1, tree.path("failures").path("INVALID_ARGUMENT").asLong());
        assertTrue(tree.path("latencies_ms").path("ttft").path("p99").isNumber(), json);
        assertTrue(tree.path("output_token_throughput").isNumber(), json);
        assertEquals(200.0, tree.path("config").path("slo").path("ttft_ms").asDouble());
        String table = ReportTable.render(report);
        assertTrue(table.contains("rate inf req/s"), table);
        assertTrue(table.contains("Goodput"), table);
    }
}
