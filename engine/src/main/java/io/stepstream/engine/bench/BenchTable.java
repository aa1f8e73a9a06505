package io.stepstream.engine.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** The bench report as a text table (ours beside llama.cpp, and the ratio) and as JSON. */
public final class BenchTable {
    private BenchTable() {
    }

    public static String text(Bench.Report r) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%s (%s), %d thread(s), prompt %d + %d decode tokens per sequence, "
                        + "warm-up %.1f s before each run%s, load average %.2f before, %.2f after%n", r.model(),
                r.weightType(), r.threads(), r.promptTokens(), r.decodeTokens(), r.warmupSeconds(),
                r.repeats() > 1 ? ", median of " + r.repeats() + " alternating runs per engine" : "", r.loadBefore(),
                r.loadAfter()));
        List<String[]> lines = new ArrayList<>();
        lines.add(new String[] {"batch", "ours tok/s", "ours all tok/s", "ours ms/step", "ours BW", "ours FMA",
                "llama.cpp tok/s", "llama.cpp FA(f16 KV) tok/s", "llama.cpp BW", "llama.cpp FMA", "ratio", "triad GB/s",
                "FMA peak GFLOP/s", "MB/step"});
        for (Bench.Row row : r.rows()) {
            RunResult best = row.bestLlamaCpp();
            lines.add(new String[] {
                    Integer.toString(row.batch()),
                    num(row.ours().decodeTokensPerSecond(), 1),
                    num(row.ours().overallTokensPerSecond(), 1),
                    num(row.ours().msPerStep(), 2),
                    percent(row.oursFraction()),
                    percent(row.oursComputeFraction()),
                    row.llamaCpp() == null ? "-" : num(row.llamaCpp().decodeTokensPerSecond(), 1),
                    row.llamaCppFlash() == null ? "-" : num(row.llamaCppFlash().decodeTokensPerSecond(), 1),
                    percent(row.fraction(best)),
                    percent(row.computeFraction(best)),
                    Double.isNaN(row.ratio()) ? "-" : num(row.ratio(), 2) + "x",
                    row.bandwidth() > 0 ? num(row.bandwidth() / 1e9, 1) : "-",
                    row.fmaPeak() > 0 ? num(row.fmaPeak() / 1e9, 1) : "-",
                    num(row.weightBytesPerStep() / 1e6, 1)});
        }
        int[] width = new int[lines.getFirst().length];
        for (String[] line : lines) {
            for (int i = 0; i < line.length; i++) {
                width[i] = Math.max(width[i], line[i].length());
            }
        }
        for (String[] line : lines) {
            for (int i = 0; i < line.length; i++) {
                sb.append(i == 0 ? "" : "  ").append(" ".repeat(width[i] - line[i].length())).append(line[i]);
            }
            sb.append('\n');
        }
        if (r.llamaCppNote() != null) {
            sb.append(r.llamaCppNote()).append('\n');
        }
        return sb.toString();
    }

    public static String json(Bench.Report r) {
        StringBuilder sb = new StringBuilder("{");
        field(sb, "model", quote(r.model())).append(',');
        field(sb, "weightType", quote(r.weightType())).append(',');
        field(sb, "threads", Integer.toString(r.threads())).append(',');
        field(sb, "promptTokens", Integer.toString(r.promptTokens())).append(',');
        field(sb, "decodeTokens", Integer.toString(r.decodeTokens())).append(',');
        field(sb, "warmupSeconds", jsonNumber(r.warmupSeconds())).append(',');
        field(sb, "repeats", Integer.toString(r.repeats())).append(',');
        field(sb, "loadAverageBefore", jsonNumber(r.loadBefore())).append(',');
        field(sb, "loadAverageAfter", jsonNumber(r.loadAfter())).append(',');
        field(sb, "llamaCppNote", r.llamaCppNote() == null ? "null" : quote(r.llamaCppNote())).append(',');
        sb.append("\"rows\":[");
        for (int i = 0; i < r.rows().size(); i++) {
            Bench.Row row = r.rows().get(i);
            sb.append(i == 0 ? "{" : ",{");
            field(sb, "batch", Integer.toString(row.batch())).append(',');
            field(sb, "weightBytesPerStep", Long.toString(row.weightBytesPerStep())).append(',');
            field(sb, "triadBytesPerSecond", jsonNumber(row.bandwidth())).append(',');
            field(sb, "matmulFlopsPerStep", Long.toString(row.matmulFlopsPerStep())).append(',');
            field(sb, "fmaPeakFlopsPerSecond", jsonNumber(row.fmaPeak())).append(',');
            field(sb, "ours", run(row.ours(), row)).append(',');
            field(sb, "llamaCpp", run(row.llamaCpp(), row)).append(',');
            field(sb, "llamaCppFlashAttention", run(row.llamaCppFlash(), row)).append(',');
            field(sb, "ratio", jsonNumber(row.ratio()));
            sb.append('}');
        }
        return sb.append("]}").toString();
    }

    private static String run(RunResult r, Bench.Row row) {
        if (r == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder("{");
        field(sb, "engine", quote(r.engine())).append(',');
        field(sb, "prefillNanos", Long.toString(r.prefillNanos())).append(',');
        field(sb, "decodeNanos", Long.toString(r.decodeNanos())).append(',');
        field(sb, "decodeSteps", Integer.toString(r.decodeSteps())).append(',');
        field(sb, "decodeTokensPerSecond", jsonNumber(r.decodeTokensPerSecond())).append(',');
        field(sb, "overallTokensPerSecond", jsonNumber(r.overallTokensPerSecond())).append(',');
        field(sb, "msPerStep", jsonNumber(r.msPerStep())).append(',');
        field(sb, "bandwidthFraction", jsonNumber(row.fraction(r))).append(',');
        field(sb, "fmaPeakFraction", jsonNumber(row.computeFraction(r)));
        return sb.append('}').toString();
    }

    private static StringBuilder field(StringBuilder sb, String name, String value) {
        return sb.append('"').append(name).append("\":").append(value);
    }

    private static String jsonNumber(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.6g", v) : "null";
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }

    private static String num(double v, int decimals) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%." + decimals + "f", v) : "-";
    }

    private static String percent(double fraction) {
        return Double.isFinite(fraction) ? String.format(Locale.ROOT, "%.0f%%", fraction * 100) : "-";
    }
}
