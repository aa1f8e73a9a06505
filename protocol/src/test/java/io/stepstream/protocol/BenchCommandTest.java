package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code stepstream bench} through the command line: a tiny run's table and JSON, and its input errors. */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class BenchCommandTest {
    private static Path stories() {
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null; p = p.getParent()) {
            Path models = p.resolve("shared/models/stories260K");
            if (Files.isDirectory(models)) {
                return models.resolve("stories260K.bin");
            }
        }
        throw new IllegalStateException("shared/models/stories260K not found above " + System.getProperty("user.dir"));
    }

    @Test
    void tinyBenchPrintsATableAndWritesJson(@TempDir Path dir) throws IOException {
        Path json = dir.resolve("bench.json");
        var run = RealEngineCliTest.cli("bench", "--model", stories().toString(), "--batch", "1,2", "--tokens", "3",
                "--prompt-tokens", "2", "--threads", "1", "--warmup-seconds", "0.1", "--repeat", "2", "--json", json.toString());
        assertEquals(0, run.exitCode(), run.err());
        List<String> lines = run.out().lines().toList();
        assertEquals(4, lines.size(), run.out());
        assertTrue(lines.get(0).startsWith("stories260K.bin (F32), 1 thread(s)"), lines.get(0));
        assertTrue(lines.get(2).trim().startsWith("1 ") && lines.get(3).trim().startsWith("2 "), run.out());
        JsonNode report = new ObjectMapper().readTree(Files.readString(json));
        assertEquals(2, report.get("rows").size());
        assertEquals(0.1, report.get("warmupSeconds").asDouble());
        assertEquals(2, report.get("repeats").asInt());
        assertTrue(lines.get(0).contains("warm-up 0.1 s"), lines.get(0));
        JsonNode second = report.get("rows").get(1);
        assertEquals(2, second.get("batch").asInt());
        assertEquals(3, second.get("ours").get("decodeSteps").asInt());
        assertTrue(second.get("ours").get("decodeTokensPerSecond").asDouble() > 0);
        assertTrue(second.get("llamaCpp").isNull());
    }

    @Test
    void badInputIsOneLineAndExitTwo(@TempDir Path dir) {
        Path missing = dir.resolve("no-such-model.gguf");
        for (String[] args : List.of(
                new String[] {"bench", "--model", missing.toString()},
                new String[] {"bench", "--model", stories().toString(), "--batch", "1,0"},
                new String[] {"bench", "--model", stories().toString(), "--tokens", "0"},
                new String[] {"bench", "--model", stories().toString(), "--tokens", "600", "--batch", "1"},
                new String[] {"bench", "--model", stories().toString(), "--warmup-seconds", "-1"},
                new String[] {"bench", "--model", stories().toString(), "--repeat", "0"})) {
            var run = RealEngineCliTest.cli(args);
            assertEquals(2, run.exitCode(), String.join(" ", args) + ": " + run);
            assertEquals(1, run.err().lines().count(), run.err());
            assertFalse(run.err().contains("\tat "), run.err());
        }
        assertTrue(RealEngineCliTest.cli("bench", "--model", missing.toString()).err().contains(missing.toString()));
        assertTrue(RealEngineCliTest.cli("bench", "--model", stories().toString(), "--batch", "0").err()
                .contains("--batch"));
        assertTrue(RealEngineCliTest.cli("bench", "--model", stories().toString(), "--warmup-seconds", "-1").err()
                .contains("--warmup-seconds"));
    }
}
