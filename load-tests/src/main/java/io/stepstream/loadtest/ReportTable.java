package io.stepstream.loadtest;

import java.util.Locale;
import java.util.Map;

/** Renders a {@link LoadReport} as the terminal table: latencies first, then counts and throughput. */
public final class ReportTable {

    private static final String[][] ROWS = {
            {LoadReport.TTFT, "TTFT"}, {LoadReport.ITL, "ITL"}, {LoadReport.TPOT, "TPOT"}, {LoadReport.E2E, "E2E"}};

    private ReportTable() {
    }

    private static String orDefault(Integer value) {
        return value == null ? "default" : value.toString();
    }

    private static String orDefault(Double value) {
        return value == null ? "default" : number(value);
    }

    public static String render(LoadReport report) {
        StringBuilder out = new StringBuilder();
        LoadTestConfig config = report.config();
        String mode = config.concurrency() != null
                ? "concurrency " + config.concurrency()
                : "rate " + rate(config.ratePerSecond()) + " req/s, burstiness " + number(config.burstiness());
        LoadTestConfig.Diffusion d = config.diffusion();
        String length = d == null ? "max_tokens " + config.maxTokens()
                : "diffusion gen_length " + orDefault(d.genLength()) + ", block_length " + orDefault(d.blockLength())
                        + ", steps " + orDefault(d.steps())
                        + (d.threshold() == null ? "" : ", threshold " + number(d.threshold()))
                        + (d.remasking() == null ? "" : ", " + d.remasking())
                        + (d.sparsed() == null ? "" : ", sparsed skip " + orDefault(d.sparsed().skip()) + " select "
                                + orDefault(d.sparsed().select()) + " block " + orDefault(d.sparsed().blockSize()))
                        + (d.cache() == null ? "" : ", cache " + d.cache());
        line(out, "=== stepstream load test: %s, %s, %s ===", config.server(), mode, length);
        line(out, "%-10s %10s %10s %10s %10s %10s %8s", "ms", "mean", "p50", "p90", "p99", "max", "n");
        for (String[] row : ROWS) {
            LatencySummary s = report.latenciesMs().get(row[0]);
            if (s == null) {
                line(out, "%-10s %10s %10s %10s %10s %10s %8d", row[1], "-", "-", "-", "-", "-", 0);
            } else {
                line(out, "%-10s %10.2f %10.2f %10.2f %10.2f %10.2f %8d",
                        row[1], s.mean(), s.p50(), s.p90(), s.p99(), s.max(), s.count());
            }
        }
        line(out, "%-34s %d", "Successful requests:", report.completed());
        line(out, "%-34s %d%s", "Failed requests:", report.failed(), breakdown(report.failures()));
        line(out, "%-34s %.3f", "Duration (s):", report.durationSeconds());
        line(out, "%-34s %d", "Total input tokens:", report.totalInputTokens());
        line(out, "%-34s %d", "Total output tokens:", report.totalOutputTokens());
        line(out, "%-34s %.3f", "Request throughput (req/s):", report.requestThroughput());
        line(out, "%-34s %.2f", "Output token throughput (tok/s):", report.outputTokenThroughput());
        line(out, "%-34s %.2f", "Total token throughput (tok/s):", report.totalTokenThroughput());
        if (report.goodput() != null) {
            line(out, "%-34s %.3f  (%d requests within %s)", "Goodput (req/s):", report.goodput(),
                    report.goodRequests(), slos(config.slo()));
        }
        return out.toString();
    }

    private static String breakdown(Map<String, Long> failures) {
        if (failures.isEmpty()) {
            return "";
        }
        StringBuilder b = new StringBuilder("  (");
        failures.forEach((code, n) -> b.append(b.length() > 3 ? ", " : "").append(code).append(": ").append(n));
        return b.append(')').toString();
    }

    private static String slos(SloTargets slo) {
        StringBuilder b = new StringBuilder();
        if (slo.ttftMs() != null) {
            b.append("TTFT <= ").append(number(slo.ttftMs())).append(" ms");
        }
        if (slo.tpotMs() != null) {
            b.append(b.isEmpty() ? "" : ", ").append("TPOT <= ").append(number(slo.tpotMs())).append(" ms");
        }
        if (slo.e2eMs() != null) {
            b.append(b.isEmpty() ? "" : ", ").append("E2E <= ").append(number(slo.e2eMs())).append(" ms");
        }
        return b.toString();
    }

    private static String rate(double perSecond) {
        return Double.isInfinite(perSecond) ? "inf" : number(perSecond);
    }

    private static String number(double value) {
        return value == Math.rint(value) ? Long.toString((long) value) : Double.toString(value);
    }

    private static void line(StringBuilder out, String format, Object... args) {
        out.append(String.format(Locale.ROOT, format, args)).append(System.lineSeparator());
    }
}
