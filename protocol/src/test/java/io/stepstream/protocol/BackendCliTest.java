package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.protocol.RealEngineCliTest.Run;
import io.stepstream.protocol.cli.ServeHook;
import io.stepstream.protocol.cli.StepStreamCli;
import io.stepstream.protocol.client.StepStreamClient;
import io.stepstream.protocol.server.StepStreamServer;
import io.stepstream.protocol.v1.ModelCard;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --backend/--device/--dtype} on the command line, over the real engine: the OpenCL backend (PoCL in CI)
 * generates what the CPU generates, and placements that mean nothing are one-line errors.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class BackendCliTest {
    @Test
    void openClGenerationEqualsTheCpuOne() {
        Run cpu = RealEngineCliTest.cli("generate", "--temperature", "0", "--max-tokens", "48", "");
        assertEquals(0, cpu.exitCode(), cpu.err());
        Run gpu = RealEngineCliTest.cli("generate", "--backend", "opencl", "--device", "auto", "--temperature", "0",
                "--max-tokens", "48", "");
        assertEquals(0, gpu.exitCode(), gpu.err());
        assertTrue(cpu.out().startsWith("Once upon a time"), cpu.out());
        assertEquals(cpu.out(), gpu.out());
    }

    @Test
    void openClWithAnF16KvCacheGeneratesTheCpuStory() {
        Run cpu = RealEngineCliTest.cli("generate", "--temperature", "0", "--max-tokens", "48", "");
        assertEquals(0, cpu.exitCode(), cpu.err());
        Run half = RealEngineCliTest.cli("generate", "--backend", "opencl", "--device", "auto", "--kv-cache", "f16",
                "--temperature", "0", "--max-tokens", "48", "");
        assertEquals(0, half.exitCode(), half.err());
        assertEquals(cpu.out(), half.out());
    }

    @Test
    void openClBenchWritesItsReport(@TempDir Path dir) throws IOException {
        Path json = dir.resolve("gpu.json");
        Run run = RealEngineCliTest.cli("bench", "--backend", "opencl", "--shape", "stories260k", "--batch", "1,2",
                "--tokens", "3", "--prompt-tokens", "2", "--json", json.toString());
        assertEquals(0, run.exitCode(), run.err() + run.out());
        JsonNode report = new ObjectMapper().readTree(Files.readString(json));
        // GpuBench runs every batch size once per dispatch (aparapi and direct by default): 2 x 2 rows.
        JsonNode rows = report.get("rows");
        assertEquals(4, rows.size(), report.toString());
        for (int i = 0; i < rows.size(); i++) {
            JsonNode row = rows.get(i);
            assertEquals(i < 2 ? "aparapi" : "direct", row.get("dispatch").asText(), report.toString());
            assertEquals(i % 2 == 0 ? 1 : 2, row.get("batch").asInt(), report.toString());
            assertEquals(3, row.get("steps").asInt());
            assertTrue(row.get("tokensPerSecond").asDouble() > 0, report.toString());
        }
    }

    @Test
    void serveOnOpenClListsEachModelWhereItRuns() throws Exception {
        var out = new PipedOutputStream();
        var lines = new BufferedReader(new InputStreamReader(new PipedInputStream(out), StandardCharsets.UTF_8));
        var err = new ByteArrayOutputStream();
        var commandLine = StepStreamCli.commandLine(StepStreamCli.embeddedEngine(),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        var started = new CompletableFuture<StepStreamServer>();
        ServeHook.install(commandLine, started::complete);
        var exit = CompletableFuture.supplyAsync(() -> commandLine.execute("serve", "--host", "127.0.0.1",
                "--port", "0", "--backend", "opencl"));
        String banner = lines.readLine();
        assertTrue(banner != null && banner.startsWith("stepstream: serving stories260K, tinystories-dlm on 127.0.0.1:"),
                banner + " / " + err);
        int port = Integer.parseInt(banner.substring(banner.lastIndexOf(':') + 1));
        try (var client = StepStreamClient.connect("127.0.0.1", port)) {
            Map<String, ModelCard> cards = new HashMap<>();
            for (ModelCard card : client.listModels()) {
                cards.put(card.getName(), card);
            }
            assertEquals("opencl", cards.get("stories260K").getBackend(), cards.toString());
            assertFalse(cards.get("stories260K").getDevice().isBlank(), cards.toString());
            assertEquals("opencl", cards.get("tinystories-dlm").getBackend(), cards.toString());
            assertEquals(cards.get("stories260K").getDevice(), cards.get("tinystories-dlm").getDevice(),
                    cards.toString());
        } finally {
            started.get().close();
        }
        assertEquals(0, exit.get(60, TimeUnit.SECONDS), err.toString());
    }

    @Test
    void openClDiffusionGenerationEqualsTheCpuOne() {
        String[] settings = {"--model", "tinystories-dlm", "--gen-length", "32", "--block-length", "16", "--steps",
                "16", "Once upon a time"};
        Run cpu = RealEngineCliTest.cli(concat(new String[] {"generate"}, settings));
        assertEquals(0, cpu.exitCode(), cpu.err());
        // --kv-cache f16 is for autoregressive models; a diffusion model keeps its f32 pool
        Run gpu = RealEngineCliTest.cli(concat(new String[] {"generate", "--backend", "opencl", "--device", "auto",
                "--kv-cache", "f16"}, settings));
        assertEquals(0, gpu.exitCode(), gpu.err());
        assertTrue(cpu.out().length() > "Once upon a time".length(), cpu.out());
        assertEquals(cpu.out(), gpu.out());
    }

    @Test
    void dreamOnOpenClIsAOneLineErrorSayingItRunsOnTheCpu(@TempDir Path dir) throws IOException {
        io.stepstream.engine.tools.DreamSynth.write(dir, io.stepstream.engine.tools.DreamSynth.Shape.byId("dream-tiny"),
                1L);
        Run run = RealEngineCliTest.cli("generate", "--backend", "opencl", "--model", dir.toString(), "--gen-length",
                "8", "--block-length", "8", "--steps", "8", "x");
        assertEquals(2, run.exitCode(), run.toString());
        assertEquals(1, run.err().lines().count(), run.toString());
        assertTrue(run.err().contains("Dream") && run.err().contains("CPU backend only"), run.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void meaninglessPlacementsAreOneLineErrors() {
        for (String[] args : List.of(
                new String[] {"generate", "--device", "0", "x"},
                new String[] {"generate", "--dtype", "q8_0", "x"},
                new String[] {"generate", "--backend", "opencl", "--dtype", "q4_k", "x"},
                new String[] {"generate", "--backend", "vulkan", "x"},
                new String[] {"generate", "--kv-cache", "f16", "x"},
                new String[] {"generate", "--backend", "opencl", "--kv-cache", "f8", "x"},
                new String[] {"generate", "--kv-cache", "f16", "--server", "localhost:1", "x"},
                new String[] {"generate", "--backend", "opencl", "--server", "localhost:1", "x"},
                new String[] {"bench", "--backend", "opencl", "--model", "stories260K.bin"},
                new String[] {"bench", "--backend", "opencl", "--repeat", "3"},
                new String[] {"bench", "--backend", "tpu", "--model", "stories260K.bin"},
                new String[] {"bench", "--shape", "llama-1.1b", "--model", "stories260K.bin"},
                new String[] {"bench"})) {
            Run run = RealEngineCliTest.cli(args);
            String what = String.join(" ", args) + ": " + run;
            assertEquals(2, run.exitCode(), what);
            assertEquals(1, run.err().lines().count(), what);
            assertFalse(run.err().contains("\tat "), what);
            if (String.join(" ", args).contains("--kv-cache")) {
                assertTrue(run.err().contains("--kv-cache"), what);
            }
        }
    }
}
