package io.stepstream.loadtest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.stepstream.actors.StepStream;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.protocol.server.StepStreamServer;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The harness against the real gRPC server and engine (embedded stories260K and tinystories-dlm), short runs. */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class RealServerLoadTest {
    private static ActorSystem<Void> system;
    private static StepStream engine;
    private static StepStreamServer server;
    private static ManagedChannel channel;

    @BeforeAll
    static void start() {
        system = ActorSystem.create(Behaviors.empty(), "real-server-load-test");
        engine = StepStream.attach(system, StepStreamConfig.defaults());
        engine.load("stories260K");
        engine.load("tinystories-dlm");
        server = StepStreamServer.builder(engine, system).host("127.0.0.1").port(0)
                .grace(Duration.ofSeconds(2)).start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    }

    @AfterAll
    static void stop() throws InterruptedException {
        if (channel != null) {
            channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        }
        if (server != null) {
            server.close();
        }
        if (engine != null) {
            engine.close();
        }
        if (system != null) {
            system.terminate();
        }
    }

    private static LoadReport run(Integer concurrency, Double rate, int requests, int maxTokens)
            throws InterruptedException {
        LoadTestConfig config = new LoadTestConfig("127.0.0.1:" + server.port(), "", concurrency, rate, 1.0,
                requests, maxTokens, 0f, 11L, 2, 60_000, new SloTargets(60_000.0, 60_000.0, null));
        return new LoadRunner(channel, config, Prompts.builtIn(), System::nanoTime, new SplittableRandom(5)).run();
    }

    @Test
    void diffusionRequestsAgainstTheRealServer() throws Exception {
        var diffusion = new LoadTestConfig.Diffusion(16, 8, 8, null, null);
        LoadTestConfig config = new LoadTestConfig("127.0.0.1:" + server.port(), "tinystories-dlm", 3, null, 1.0, 6,
                64, 0f, 11L, 1, 120_000, new SloTargets(120_000.0, null, null), diffusion);
        LoadRunner runner = new LoadRunner(channel, config, Prompts.builtIn(), System::nanoTime,
                new SplittableRandom(5));
        assertEquals(16, runner.request(0).getDiffusion().getGenLength());
        assertTrue(!runner.request(0).hasMaxTokens(), "a diffusion model refuses max_tokens");
        LoadReport report = runner.run();
        assertCompleteReport(report, 6);
        // The stories of this model do not end within 16 tokens: every request fills its whole canvas.
        assertEquals(Map.of("length", 6L), report.finishReasons());
        assertEquals(6L * 16, report.totalOutputTokens());
        assertEquals(diffusion, ReportJson.fromJson(ReportJson.toJson(report)).config().diffusion());
        assertTrue(ReportTable.render(report).contains("diffusion gen_length 16, block_length 8, steps 8"));
    }

    @Test
    void sparseDRequestsAgainstTheRealServer() throws Exception {
        var diffusion = new LoadTestConfig.Diffusion(16, 8, 8, null, null, new LoadTestConfig.SparseD(0.25, 0.3, 4));
        LoadTestConfig config = new LoadTestConfig("127.0.0.1:" + server.port(), "tinystories-dlm", 3, null, 1.0, 6,
                64, 0f, 11L, 1, 120_000, new SloTargets(120_000.0, null, null), diffusion);
        LoadRunner runner = new LoadRunner(channel, config, Prompts.builtIn(), System::nanoTime,
                new SplittableRandom(5));
        var sparsed = runner.request(0).getDiffusion().getSparsed();
        assertEquals(0.25, sparsed.getSkip());
        assertEquals(0.3, sparsed.getSelect());
        assertEquals(4, sparsed.getBlockSize());
        var defaults = new LoadRunner(channel, new LoadTestConfig("h:1", "tinystories-dlm", 1, null, 1.0, 1, 64, 0f,
                null, 0, 1_000, new SloTargets(null, null, null), new LoadTestConfig.Diffusion(null, null, null, null,
                null, new LoadTestConfig.SparseD(null, null, null))), Prompts.builtIn(), System::nanoTime,
                new SplittableRandom(5)).request(0).getDiffusion();
        assertTrue(defaults.hasSparsed() && !defaults.getSparsed().hasSkip() && !defaults.getSparsed().hasBlockSize(),
                "--sparsed alone sends an empty SparseDOptions: the server's defaults");
        LoadReport report = runner.run();
        assertCompleteReport(report, 6);
        assertEquals(Map.of("length", 6L), report.finishReasons());
        assertEquals(6L * 16, report.totalOutputTokens(), "SparseD requests fill their whole canvas too");
        assertEquals(diffusion, ReportJson.fromJson(ReportJson.toJson(report)).config().diffusion());
        assertTrue(ReportTable.render(report).contains("sparsed skip 0.25 select 0.3 block 4"),
                ReportTable.render(report));
    }

    private static void assertCompleteReport(LoadReport report, int requests) {
        assertEquals(requests, report.requested());
        assertEquals(requests, report.completed(), () -> "failures: " + report.failures());
        assertEquals(0, report.failed());
        long finished = report.finishReasons().values().stream().mapToLong(Long::longValue).sum();
        assertEquals(requests, finished);
        assertTrue(report.totalOutputTokens() >= requests, "every request generated tokens");
        assertTrue(report.outputTokenThroughput() > 0);
        for (String metric : List.of(LoadReport.TTFT, LoadReport.ITL, LoadReport.TPOT, LoadReport.E2E)) {
            LatencySummary s = report.latenciesMs().get(metric);
            assertNotNull(s, metric + " has samples");
            assertTrue(s.count() > 0 && s.p50() > 0, metric + " percentiles are not empty");
            assertTrue(s.p50() <= s.p90() && s.p90() <= s.p99() && s.p99() <= s.max(), metric + " ordered");
        }
        LatencySummary ttft = report.latenciesMs().get(LoadReport.TTFT);
        LatencySummary e2e = report.latenciesMs().get(LoadReport.E2E);
        assertTrue(ttft.max() <= e2e.max(), "no first token after the end of its stream");
    }

    @Test
    void fixedConcurrencyAgainstTheRealServer() throws Exception {
        LoadReport report = run(4, null, 12, 24);
        assertCompleteReport(report, 12);
        Map<String, Long> reasons = report.finishReasons();
        assertTrue(reasons.keySet().stream().allMatch(r -> r.equals("length") || r.equals("stop")), reasons::toString);
        long cappedRequests = reasons.getOrDefault("length", 0L);
        assertTrue(report.totalOutputTokens() >= cappedRequests * report.config().maxTokens(),
                "a request that ended on length produced max_tokens tokens");
        assertTrue(report.totalOutputTokens() <= 12L * 24, "never more than max_tokens per request");
    }

    @Test
    void poissonArrivalsAgainstTheRealServer() throws Exception {
        LoadReport report = run(null, 50.0, 10, 16);
        assertCompleteReport(report, 10);
        assertTrue(report.totalOutputTokens() <= 10L * 16);
    }
}
