package io.stepstream.loadtest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.stepstream.protocol.v1.GenerateRequest;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The harness against a real loopback gRPC server with a scripted service. Asserts counts, structure and
 * order; the only timing checks are lower bounds the script guarantees (the server sleeps before it sends),
 * plus one generous median bound, so a loaded machine cannot make them fail.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LoadRunnerTest {

    private static final int TOKENS = 6;
    private static final long FIRST_MS = 10;
    private static final long GAP_MS = 20;
    private static final List<String> PROMPTS = List.of("one two three", "four five", "six seven eight nine");

    private ScriptedServer server;
    private ManagedChannel channel;

    @BeforeEach
    void start() throws Exception {
        server = new ScriptedServer(new ScriptedStepStreamService(TOKENS, FIRST_MS, GAP_MS, false));
        channel = server.channel();
    }

    @AfterEach
    void stop() throws Exception {
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        server.close();
    }

    private LoadTestConfig config(Integer concurrency, Double rate, int requests, int warmup, SloTargets slo) {
        return new LoadTestConfig(server.target(), "scripted", concurrency, rate, 1.0, requests, 64, 0f, 1000L,
                warmup, 30_000, slo);
    }

    private LoadReport run(LoadTestConfig config, List<String> prompts) throws InterruptedException {
        return new LoadRunner(channel, config, prompts, System::nanoTime, new SplittableRandom(3)).run();
    }

    @Test
    void fixedConcurrencyCountsEveryRequestAndTokenExactly() throws Exception {
        int requests = 8;
        LoadReport report = run(config(3, null, requests, 2, new SloTargets(60_000.0, 60_000.0, null)), PROMPTS);

        assertEquals(requests, report.requested());
        assertEquals(requests, report.completed());
        assertEquals(0, report.failed());
        assertEquals(Map.of(), report.failures());
        assertEquals(Map.of("stop", (long) requests), report.finishReasons());
        assertEquals((long) requests * TOKENS, report.totalOutputTokens());
        long promptTokens = 0;
        for (int i = 0; i < requests; i++) {
            promptTokens += ScriptedStepStreamService.promptTokens(PROMPTS.get(i % PROMPTS.size()));
        }
        assertEquals(promptTokens, report.totalInputTokens());
        assertStructure(report, requests);
        // SLOs of a minute: every request meets them.
        assertEquals(requests, report.goodRequests());

        // The server saw the warm-up and the measured requests, never more than 3 at once, with the settings
        // asked for and seeds offset by the request index (warm-up indices are negative).
        List<GenerateRequest> seen = server.service.receivedRequests();
        assertEquals(requests + 2, seen.size());
        assertTrue(server.service.maxInFlight.get() <= 3, "in flight: " + server.service.maxInFlight.get());
        Set<Long> seeds = seen.stream().map(GenerateRequest::getSeed).collect(Collectors.toSet());
        assertEquals(Set.of(998L, 999L, 1000L, 1001L, 1002L, 1003L, 1004L, 1005L, 1006L, 1007L), seeds);
        for (GenerateRequest r : seen) {
            assertEquals("scripted", r.getModel());
            assertEquals(64, r.getMaxTokens());
            assertEquals(0f, r.getTemperature());
        }
    }

    @Test
    void poissonArrivalsCountEveryRequest() throws Exception {
        int requests = 6;
        LoadReport report = run(config(null, 40.0, requests, 0, null), PROMPTS);
        assertEquals(requests, report.completed());
        assertEquals(0, report.failed());
        assertEquals((long) requests * TOKENS, report.totalOutputTokens());
        assertStructure(report, requests);
        assertEquals(null, report.goodput());
        assertEquals(requests, server.service.receivedRequests().size());
    }

    @Test
    void refusedRequestsAreCountedWithTheirStatus() throws Exception {
        List<String> prompts = List.of("a fine prompt", "an INVALID prompt", "another fine one");
        LoadReport report = run(config(2, null, 9, 0, new SloTargets(60_000.0, null, null)), prompts);
        assertEquals(9, report.requested());
        assertEquals(6, report.completed());
        assertEquals(3, report.failed());
        assertEquals(Map.of("INVALID_ARGUMENT", 3L), report.failures());
        assertEquals(6L * TOKENS, report.totalOutputTokens());
        assertEquals(6, report.goodRequests());
        assertStructure(report, 6);
    }

    @Test
    void anUnreachableServerFailsEveryRequestWithoutCrashing() throws Exception {
        String target = server.target();
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        server.close();
        channel = io.grpc.netty.NettyChannelBuilder.forTarget(target).usePlaintext().build();
        LoadReport report = new LoadRunner(channel, new LoadTestConfig(target, "", null, Double.POSITIVE_INFINITY,
                1.0, 5, 8, 0f, null, 0, 10_000, null), PROMPTS, System::nanoTime, new SplittableRandom(1)).run();
        assertEquals(5, report.requested());
        assertEquals(0, report.completed());
        assertEquals(Map.of("UNAVAILABLE", 5L), report.failures());
        assertTrue(report.latenciesMs().isEmpty());
    }

    /** Every metric present, counted as the script implies, percentiles ordered, and timing lower bounds. */
    private static void assertStructure(LoadReport report, int completed) {
        Map<String, LatencySummary> m = report.latenciesMs();
        assertEquals(Set.of(LoadReport.TTFT, LoadReport.ITL, LoadReport.TPOT, LoadReport.E2E), m.keySet());
        assertEquals(completed, m.get(LoadReport.TTFT).count());
        assertEquals((long) completed * (TOKENS - 1), m.get(LoadReport.ITL).count());
        assertEquals(completed, m.get(LoadReport.TPOT).count());
        assertEquals(completed, m.get(LoadReport.E2E).count());
        m.forEach((name, s) -> {
            assertNotNull(s, name);
            assertTrue(0 <= s.p50() && s.p50() <= s.p90() && s.p90() <= s.p95() && s.p95() <= s.p99()
                    && s.p99() <= s.max(), name + " percentiles out of order: " + s);
            assertTrue(s.mean() <= s.max() + 1e-9, name + " mean above max: " + s);
        });
        // The server sleeps before each send, so these hold however slow the machine is
        // (minus 1% for HdrHistogram's bucket rounding).
        assertTrue(m.get(LoadReport.TTFT).p50() >= FIRST_MS * 0.99, "TTFT below the scripted first delay: " + m);
        double serverMs = FIRST_MS + (TOKENS - 1) * GAP_MS;
        assertTrue(m.get(LoadReport.E2E).p50() >= serverMs * 0.99, "E2E below the scripted stream length: " + m);
        // TPOT against the scripted gap: a generous window for the median request, which only a stall of
        // most of a stream's length at the client could break.
        double tpot = m.get(LoadReport.TPOT).p50();
        assertTrue(tpot >= GAP_MS * 0.25, "TPOT median " + tpot + " ms far below the scripted " + GAP_MS + " ms gap");
        assertTrue(m.get(LoadReport.TPOT).max() <= m.get(LoadReport.E2E).max(), "TPOT above E2E: " + m);
        assertTrue(m.get(LoadReport.TTFT).max() <= m.get(LoadReport.E2E).max(), "TTFT above E2E: " + m);
        assertTrue(report.durationSeconds() > 0);
        assertEquals(completed / report.durationSeconds(), report.requestThroughput(), 1e-9);
        assertEquals(report.totalOutputTokens() / report.durationSeconds(), report.outputTokenThroughput(), 1e-9);
    }
}
