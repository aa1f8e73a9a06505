package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.engine.SamplingParams;
import io.stepstream.protocol.cli.ServeHook;
import io.stepstream.protocol.cli.StepStreamCli;
import io.stepstream.protocol.client.StepStreamClient;
import io.stepstream.protocol.server.StepStreamServer;
import io.stepstream.protocol.v1.ModelCard;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The command line against a scripted server, and in process over the scripted engine. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ScriptedCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @RegisterExtension
    static final LoopbackServer loopback = LoopbackServer.over("scripted-cli-test", ScriptedGenerationService::new,
            b -> b.grace(Duration.ofSeconds(1)));
    private static String target;

    @BeforeAll
    static void rememberTarget() {
        target = loopback.target();
    }

    record Run(int exitCode, String out, String err) {
        List<String> outLines() {
            return out.lines().toList();
        }
    }

    static Run cli(String... args) {
        var out = new ByteArrayOutputStream();
        var err = new ByteArrayOutputStream();
        int code;
        try (var outStream = new PrintStream(out, true, StandardCharsets.UTF_8);
             var errStream = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            code = StepStreamCli.execute(ScriptedLocalEngine::new, outStream, errStream, args);
        }
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static void assertOneLineError(Run run, int exitCode, String... mentions) {
        assertEquals(exitCode, run.exitCode(), run.toString());
        assertEquals(1, run.err().lines().count(), run.err());
        assertFalse(run.err().contains("\tat "), run.err());
        for (String mention : mentions) {
            assertTrue(run.err().contains(mention), "'" + mention + "' in " + run.err());
        }
    }

    private static String expected(String prompt, long seed, int maxTokens, List<String> stops) {
        return ScriptedGenerationService.expectedText(new io.stepstream.actors.GenerateRequest("", prompt, null,
                maxTokens, new SamplingParams(1f, 0, 1f, seed, 0), stops), false);
    }

    @Test
    void generateJsonOverTheServerParsesAndEndsWithTheFinalObject() throws Exception {
        Run run = cli("generate", "--server", target, "--json", "--seed", "3", "--max-tokens", "5",
                "--logprobs", "2", "hi");
        assertEquals(0, run.exitCode(), run.err());
        List<String> lines = run.outLines();
        assertEquals(6, lines.size(), run.out());
        var text = new StringBuilder();
        for (String line : lines.subList(0, 5)) {
            JsonNode token = JSON.readTree(line);
            assertTrue(token.get("token_id").isInt());
            text.append(token.get("text").asText());
            assertEquals(2, token.get("logprobs").size());
            assertTrue(token.get("logprobs").get(0).get("logprob").isNumber());
        }
        assertEquals(expected("hi", 3, 5, List.of()), text.toString());
        JsonNode last = JSON.readTree(lines.getLast());
        assertEquals("length", last.get("finish_reason").asText());
        assertEquals(5, last.get("usage").get("completion_tokens").asInt());
        assertEquals(3, last.get("usage").get("prompt_tokens").asInt());
    }

    @Test
    void generateTextStreamsTheTextThenANewline() {
        int third = ScriptedGenerationService.scriptedToken(9, 2);
        String stop = "t" + third + " ";
        Run run = cli("generate", "--server", target, "--seed", "9", "--max-tokens", "30", "--stop", stop, "abc");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals(expected("abc", 9, 30, List.of(stop)) + System.lineSeparator(), run.out());
    }

    @Test
    void generateInProcessWithoutAServer() throws Exception {
        Run run = cli("generate", "--json", "--seed", "1", "--max-tokens", "4", "--temperature", "0", "");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals(5, run.outLines().size());
        JsonNode last = JSON.readTree(run.outLines().getLast());
        assertEquals("length", last.get("finish_reason").asText());
        assertEquals(1, last.get("usage").get("prompt_tokens").asInt()); // BOS alone
        assertFalse(JSON.readTree(run.outLines().getFirst()).has("logprobs"));
    }

    @Test
    void badInputIsOneLineAndExitCodeTwo() {
        assertOneLineError(cli("generate", "--server", target, "--temperature", "-1", "x"), 2, "temperature");
        assertOneLineError(cli("generate", "--temperature", "-1", "x"), 2, "temperature");
        assertOneLineError(cli("generate", "--server", target, "--top-p", "1.5", "x"), 2, "top_p");
        assertOneLineError(cli("generate", "--server", target, "--max-tokens", "0", "x"), 2, "max_tokens");
        assertOneLineError(cli("generate", "--server", target, "--prompt-token-ids", "1,2,999"), 2,
                "prompt_token_ids", "999");
        assertOneLineError(cli("generate", "--server", target, "--model", "nope", "x"), 2, "nope");
        assertOneLineError(cli("generate", "--top-k", "many", "x"), 2, "--top-k", "many");
        assertOneLineError(cli("generate", "--server", "no-port", "x"), 2, "HOST:PORT");
        assertOneLineError(cli("frobnicate"), 2, "frobnicate");
    }

    @Test
    void badModelPathIsOneLineNamingTheFile(@TempDir Path dir) {
        Path missing = dir.resolve("missing-model.bin");
        assertOneLineError(cli("generate", "--model", missing.toString(), "x"), 2, missing.toString());
    }

    @Test
    void failuresAreOneLineAndExitCodeOne() {
        assertOneLineError(cli("generate", "--server", target, "--model", "broken", "x"), 1);
        assertFalse(cli("generate", "--server", target, "--model", "broken", "x").err()
                .contains(ScriptedGenerationService.SECRET));
        assertOneLineError(cli("generate", "--server", target, "--model", "busy", "x"), 1, "busy");
        // Nothing listens on a port this test just had and released.
        int closedPort;
        try (var socket = new java.net.ServerSocket(0)) {
            closedPort = socket.getLocalPort();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        assertOneLineError(cli("models", "--server", "127.0.0.1:" + closedPort), 1, "127.0.0.1:" + closedPort);
    }

    @Test
    void modelsListsTheServersModels() throws Exception {
        Run run = cli("models", "--server", target);
        assertEquals(0, run.exitCode(), run.err());
        assertTrue(run.out().contains("scripted *"), run.out());
        assertTrue(run.out().contains("long"), run.out());
        Run json = cli("models", "--server", target, "--json");
        JsonNode models = JSON.readTree(json.out());
        assertEquals(4, models.size());
        assertTrue(models.get(0).get("is_default").asBoolean());
        assertEquals(64, models.get(0).get("context_length").asInt());
    }

    @Test
    void serveBindsPrintsTheAddressAndServesUntilStopped() throws Exception {
        var out = new java.io.PipedOutputStream();
        var lines = new java.io.BufferedReader(new java.io.InputStreamReader(new java.io.PipedInputStream(out),
                StandardCharsets.UTF_8));
        var err = new ByteArrayOutputStream();
        var commandLine = StepStreamCli.commandLine(ScriptedLocalEngine::new,
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        var started = new CompletableFuture<StepStreamServer>();
        ServeHook.install(commandLine, started::complete);
        var exit = CompletableFuture.supplyAsync(() -> commandLine.execute("serve", "--host", "127.0.0.1",
                "--port", "0", "--model", "stories260K", "--model", "long"));
        String banner = lines.readLine();
        assertTrue(banner.startsWith("stepstream: serving scripted, long on 127.0.0.1:"), banner);
        int port = Integer.parseInt(banner.substring(banner.lastIndexOf(':') + 1));
        try (var client = StepStreamClient.connect("127.0.0.1", port)) {
            List<String> names = new ArrayList<>();
            for (ModelCard card : client.listModels()) {
                names.add(card.getName());
            }
            assertTrue(names.contains("long"), names.toString());
        }
        started.get().close();
        assertEquals(0, exit.get(30, TimeUnit.SECONDS), err.toString());
    }
}
