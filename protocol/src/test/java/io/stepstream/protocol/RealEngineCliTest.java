package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.protocol.cli.StepStreamCli;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The command line's in-process path over the real engine (StepStreamCli.main's engine). */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RealEngineCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    record Run(int exitCode, String out, String err) {
    }

    static Run cli(String... args) {
        var out = new ByteArrayOutputStream();
        var err = new ByteArrayOutputStream();
        int code;
        try (var outStream = new PrintStream(out, true, StandardCharsets.UTF_8);
             var errStream = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            code = StepStreamCli.execute(StepStreamCli.embeddedEngine(), outStream, errStream, args);
        }
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void generateJsonFromBosParsesAndEndsWithTheFinalObject() throws IOException {
        Run run = cli("generate", "--json", "--temperature", "0", "--max-tokens", "20", "--logprobs", "3", "");
        assertEquals(0, run.exitCode(), run.err());
        List<String> lines = run.out().lines().toList();
        assertEquals(21, lines.size(), run.out());
        var text = new StringBuilder();
        for (String line : lines.subList(0, 20)) {
            JsonNode token = JSON.readTree(line);
            text.append(token.get("text").asText());
            assertEquals(3, token.get("logprobs").size());
            // Greedy: the chosen token is the most likely one.
            assertEquals(token.get("token_id").asInt(), token.get("logprobs").get(0).get("token_id").asInt());
        }
        assertTrue(text.toString().startsWith("Once upon a time, there was a little girl named Lily"),
                text.toString());
        JsonNode last = JSON.readTree(lines.getLast());
        assertEquals("length", last.get("finish_reason").asText());
        assertEquals(20, last.get("usage").get("completion_tokens").asInt());
        assertEquals(1, last.get("usage").get("prompt_tokens").asInt());
    }

    @Test
    void generateTextStopsAtTheStopString() {
        Run run = cli("generate", "--temperature", "0", "--stop", "Lily", "");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals("Once upon a time, there was a little girl named " + System.lineSeparator(), run.out());
    }

    @Test
    void badModelPathIsOneLineNamingTheFile(@TempDir Path dir) throws IOException {
        Path missing = dir.resolve("no-such-model.bin");
        Path garbage = Files.writeString(dir.resolve("garbage.bin"), "this is not a model");
        for (Path path : List.of(missing, garbage)) {
            Run run = cli("generate", "--model", path.toString(), "x");
            assertEquals(2, run.exitCode(), run.toString());
            assertEquals(1, run.err().lines().count(), run.err());
            assertTrue(run.err().contains(path.toString()), run.err());
            assertFalse(run.err().contains("\tat "), run.err());
        }
    }

    @Test
    void badFieldIsOneLineAndExitTwo() {
        Run run = cli("generate", "--top-p", "1.5", "x");
        assertEquals(2, run.exitCode(), run.toString());
        assertEquals(1, run.err().lines().count(), run.err());
        assertTrue(run.err().contains("top_p"), run.err());
    }

    /** synth --type q4_k writes a model whose matrices are Q4_K, which generate then serves. */
    @Test
    void synthQ4KModelIsServed(@TempDir Path dir) throws IOException {
        Path gguf = dir.resolve("synth-110m-q4k.gguf");
        Run synth = cli("synth", "--shape", "llama2-110m", "--type", "q4_k", "--seed", "3", gguf.toString());
        assertEquals(0, synth.exitCode(), synth.err());
        Run run = cli("generate", "--model", gguf.toString(), "--json", "--temperature", "0", "--max-tokens", "5",
                "");
        assertEquals(0, run.exitCode(), run.err());
        JsonNode last = JSON.readTree(run.out().lines().toList().getLast());
        assertEquals(5, last.get("usage").get("completion_tokens").asInt(), run.out());
        Run bad = cli("synth", "--shape", "llama2-15m", "--type", "q5_k", dir.resolve("x.gguf").toString());
        assertEquals(2, bad.exitCode(), bad.toString());
        assertTrue(bad.err().contains("expected f32, f16, q8_0, q4_0, q4_k or q6_k"), bad.err());
    }
}
