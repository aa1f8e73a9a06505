package io.stepstream.loadtest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The command line end to end against the scripted server, and its refusals of bad arguments. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class LoadTestMainTest {

    @TempDir
    Path dir;

    private record Result(int exitCode, String out, String err) {
    }

    private static Result execute(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cli = LoadTestMain.commandLine();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int code = cli.execute(args);
        return new Result(code, out.toString(), err.toString());
    }

    @Test
    void printsTheTableAndWritesJsonThatReadsBack() throws Exception {
        Path prompts = Files.writeString(dir.resolve("prompts.txt"), "alpha beta\n\n  \ngamma delta epsilon\n");
        Path json = dir.resolve("out/report.json");
        try (ScriptedServer server = new ScriptedServer(new ScriptedStepStreamService(5, 2, 3, true))) {
            Result r = execute("--server", server.target(), "--concurrency", "2", "--requests", "6",
                    "--max-tokens", "4", "--seed", "7", "--prompts", prompts.toString(), "--warmup", "1",
                    "--slo-ttft-ms", "60000", "--json-out", json.toString());
            assertEquals(0, r.exitCode(), r.err());
            System.out.print(r.out()); // the table, for whoever reads the test log
            for (String row : List.of("TTFT", "ITL", "TPOT", "E2E", "Request throughput", "Output token throughput",
                    "Goodput")) {
                assertTrue(r.out().contains(row), "no " + row + " in\n" + r.out());
            }
            LoadReport report = ReportJson.read(json);
            assertEquals(6, report.completed());
            // max_tokens 4 caps the scripted 5 tokens; the first of each is held back (empty text), so
            // TTFT is at the second event and ITL has 2 gaps per request.
            assertEquals(24, report.totalOutputTokens());
            assertEquals(3 * 2 + 3 * 3, report.totalInputTokens());
            assertEquals(Map.of("length", 6L), report.finishReasons());
            assertEquals(12, report.latenciesMs().get(LoadReport.ITL).count());
            assertEquals(6, report.goodRequests());
            assertEquals(2, report.config().concurrency());
            assertEquals(7L, report.config().seed());
            assertEquals(7, server.service.receivedRequests().size());
        }
    }

    @Test
    void rateModeWithBurstinessRuns() throws Exception {
        Path json = dir.resolve("rate.json");
        try (ScriptedServer server = new ScriptedServer(new ScriptedStepStreamService(3, 1, 1, false))) {
            Result r = execute("--server", server.target(), "--rate", "100", "--burstiness", "0.5",
                    "--requests", "5", "--seed", "1", "--json-out", json.toString());
            assertEquals(0, r.exitCode(), r.err());
            LoadReport report = ReportJson.read(json);
            assertEquals(5, report.completed());
            assertEquals(100.0, report.config().ratePerSecond());
            assertEquals(0.5, report.config().burstiness());
        }
    }

    @Test
    void noSuccessfulRequestExitsOne() throws Exception {
        Path prompts = Files.writeString(dir.resolve("bad.txt"), "INVALID one\nINVALID two\n");
        Path json = dir.resolve("bad.json");
        try (ScriptedServer server = new ScriptedServer(new ScriptedStepStreamService(3, 1, 1, false))) {
            Result r = execute("--server", server.target(), "--concurrency", "1", "--requests", "3",
                    "--prompts", prompts.toString(), "--json-out", json.toString());
            assertEquals(1, r.exitCode());
            assertTrue(r.out().contains("INVALID_ARGUMENT: 3"), r.out());
            assertEquals(Map.of("INVALID_ARGUMENT", 3L), ReportJson.read(json).failures());
        }
    }

    @Test
    void badArgumentsAreRefusedNamingTheFlag() {
        Result both = execute("--server", "h:1", "--concurrency", "2", "--rate", "3");
        assertEquals(2, both.exitCode());
        assertTrue(both.err().contains("--concurrency") && both.err().contains("--rate"), both.err());

        Result neither = execute("--server", "h:1");
        assertEquals(2, neither.exitCode());

        Result noServer = execute("--concurrency", "1");
        assertEquals(2, noServer.exitCode());
        assertTrue(noServer.err().contains("--server"), noServer.err());

        Result zero = execute("--server", "h:1", "--concurrency", "1", "--requests", "0");
        assertEquals(2, zero.exitCode());
        assertTrue(zero.err().contains("--requests must be >= 1"), zero.err());

        Result rate = execute("--server", "h:1", "--rate", "fast");
        assertEquals(2, rate.exitCode());
        assertTrue(rate.err().contains("'fast' is not a number"), rate.err());

        Result slo = execute("--server", "h:1", "--rate", "inf", "--slo-tpot-ms", "-1");
        assertEquals(2, slo.exitCode());
        assertTrue(slo.err().contains("--slo-tpot-ms"), slo.err());

        Result genLength = execute("--server", "h:1", "--concurrency", "1", "--gen-length", "0");
        assertEquals(2, genLength.exitCode());
        assertTrue(genLength.err().contains("--gen-length must be >= 1"), genLength.err());

        for (String[] bad : List.of(new String[] {"--sparsed-skip", "-0.1", "--sparsed-skip must be in [0, 1]"},
                new String[] {"--sparsed-select", "0", "--sparsed-select must be in (0, 1]"},
                new String[] {"--sparsed-block", "0", "--sparsed-block must be >= 1"})) {
            Result sparsed = execute("--server", "h:1", "--concurrency", "1", bad[0], bad[1]);
            assertEquals(2, sparsed.exitCode(), bad[0]);
            assertTrue(sparsed.err().contains(bad[2]), sparsed.err());
        }

        Result threshold = execute("--server", "h:1", "--concurrency", "1", "--threshold", "1.5");
        assertEquals(2, threshold.exitCode());
        assertTrue(threshold.err().contains("--threshold must be in (0, 1]"), threshold.err());

        Path missing = dir.resolve("nope.txt");
        Result prompts = execute("--server", "h:1", "--concurrency", "1", "--prompts", missing.toString());
        assertEquals(2, prompts.exitCode());
        assertTrue(prompts.err().contains("--prompts") && prompts.err().contains("nope.txt"), prompts.err());
    }
}
