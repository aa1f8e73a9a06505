package io.stepstream.loadtest;

import java.util.Map;

/**
 * The result of one measured run (warm-up excluded), as printed and as written to JSON.
 *
 * @param requested        requests the run sent; always completed + failed
 * @param failures         failed requests by status code
 * @param finishReasons    successful requests by the server's finish reason
 * @param durationSeconds  from the first measured send to the end of the last stream
 * @param goodput          requests/s meeting every SLO; null when no SLO was given
 * @param latenciesMs      "ttft", "itl", "tpot", "e2e"; a metric without samples is absent
 */
public record LoadReport(
        LoadTestConfig config,
        long requested,
        long completed,
        long failed,
        Map<String, Long> failures,
        Map<String, Long> finishReasons,
        double durationSeconds,
        long totalInputTokens,
        long totalOutputTokens,
        double requestThroughput,
        double outputTokenThroughput,
        double totalTokenThroughput,
        Long goodRequests,
        Double goodput,
        Map<String, LatencySummary> latenciesMs) {

    public static final String TTFT = "ttft";
    public static final String ITL = "itl";
    public static final String TPOT = "tpot";
    public static final String E2E = "e2e";
}
