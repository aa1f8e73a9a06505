package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.sparse.SparseDPolicy;
import io.stepstream.protocol.cli.ServeHook;
import io.stepstream.protocol.cli.StepStreamCli;
import io.stepstream.protocol.server.StepStreamServer;
import io.stepstream.protocol.v1.DiffusionOptions;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.ModelCard;
import io.stepstream.protocol.v1.PatternCacheStats;
import io.stepstream.protocol.v1.SparseDOptions;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.Timeout;

/**
 * SparseD requests over gRPC on a loopback port, on the real tinystories-dlm beside stories260K: each stream equals
 * the engine's generation alone, select 1 equals dense, ListModels shows the pattern cache, bad fields are named,
 * and the command line's --sparsed options and serve's --pattern-cache-bytes reach the engine.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class RealSparseDServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long CAP = 5L << 20;
    @RegisterExtension
    static final LoopbackServer loopback = LoopbackServer.real("real-sparsed-server-test",
            StepStreamConfig.defaults().withPatternCacheBytes(CAP), "stories260K", "tinystories-dlm");

    private static GenerateRequest.Builder dlm(String prompt, int gen, int block, int steps) {
        return GenerateRequest.newBuilder().setModel("tinystories-dlm").setPrompt(prompt).setSeed(0)
                .setDiffusion(DiffusionOptions.newBuilder().setGenLength(gen).setBlockLength(block).setSteps(steps));
    }

    private static GenerateRequest.Builder sparse(GenerateRequest.Builder r, SparseDOptions.Builder s) {
        r.getDiffusionBuilder().setSparsed(s);
        return r;
    }

    private static DiffusionParams params(int gen, int block, int steps, SparseDPolicy policy) {
        return new DiffusionParams(gen, block, steps, 0.0, Remasking.LOW_CONFIDENCE, null, 0L).withSparseD(policy);
    }

    record Stream(List<Integer> tokens, String text, String reason) {
    }

    private static Stream collect(GenerateRequest request) {
        List<Integer> tokens = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        try (var events = loopback.client().generate(request)) {
            while (events.hasNext()) {
                GenerateEvent e = events.next();
                if (e.hasToken()) {
                    tokens.add(e.getToken().getTokenId());
                    text.append(e.getToken().getText());
                } else if (e.hasFinal()) {
                    text.append(e.getFinal().getText());
                    return new Stream(tokens, text.toString(), e.getFinal().getFinishReason());
                }
            }
        }
        throw new AssertionError("no final event");
    }

    private static PatternCacheStats dlmCache() {
        ModelCard card = loopback.client().listModels().stream()
                .filter(m -> m.getName().equals("tinystories-dlm")).findFirst().orElseThrow();
        assertTrue(card.hasPatternCache(), "a diffusion model's card has its pattern cache");
        return card.getPatternCache();
    }

    @Test
    void sparseAndDenseStreamsTogetherEachEqualItsRunAloneAndListModelsShowsTheCache() throws Exception {
        record Case(String prompt, GenerateRequest request, DiffusionParams params) {
        }
        List<Case> cases = List.of(
                new Case("Once upon a time", sparse(dlm("Once upon a time", 32, 8, 16),
                        SparseDOptions.newBuilder().setSkip(0.2).setSelect(0.3).setBlockSize(4)).build(),
                        params(32, 8, 16, new SparseDPolicy(0.2, 0.3, 4))),
                new Case("One day, a little", dlm("One day, a little", 16, 8, 8).build(), params(16, 8, 8, null)),
                new Case("Tom had a red ball and a", sparse(dlm("Tom had a red ball and a", 24, 24, 24),
                        SparseDOptions.newBuilder().setSelect(0.2).setBlockSize(8)).build(),
                        params(24, 24, 24, new SparseDPolicy(0.2, 0.2, 8))),
                new Case("The sun was", sparse(dlm("The sun was", 32, 16, 16),
                        SparseDOptions.newBuilder().setSkip(0.0).setSelect(0.5).setBlockSize(6)).build(),
                        params(32, 16, 16, new SparseDPolicy(0.0, 0.5, 6))),
                new Case("Lily saw a cat", sparse(dlm("Lily saw a cat", 16, 16, 16),
                        SparseDOptions.newBuilder()).build(), // defaults: 0.2, 0.3, block 32 capped by the canvas
                        params(16, 16, 16, new SparseDPolicy(0.2, 0.3, 21))));
        ExecutorService clients = Executors.newFixedThreadPool(cases.size());
        try {
            List<CompletableFuture<Stream>> streams = new ArrayList<>();
            for (Case c : cases) {
                streams.add(CompletableFuture.supplyAsync(() -> collect(c.request()), clients));
            }
            for (int i = 0; i < cases.size(); i++) {
                Case c = cases.get(i);
                Stream got = streams.get(i).get(240, TimeUnit.SECONDS);
                DiffusionReference.Expected want = DiffusionReference.of(c.prompt(), c.params());
                assertEquals(want.tokens(), got.tokens(), c.prompt());
                assertEquals(want.text(), got.text(), c.prompt());
                assertEquals(want.finishReason(), got.reason(), c.prompt());
            }
        } finally {
            clients.shutdownNow();
        }
        PatternCacheStats stats = dlmCache();
        assertTrue(stats.getHits() > 0 && stats.getMisses() > 0, stats.toString());
        assertEquals(0, stats.getBytesInUse(), "every ended request freed its pattern: " + stats);
        assertEquals(0, stats.getEntries(), stats.toString());
        assertEquals(CAP, stats.getCapBytes());
        ModelCard ar = loopback.client().listModels().getFirst();
        assertEquals("stories260K", ar.getName());
        assertFalse(ar.hasPatternCache(), "an autoregressive model has no pattern cache");
    }

    @Test
    void selectOneOverGrpcEqualsDenseExactly() {
        for (int blockSize : new int[] {3, 8}) {
            Stream sparseOne = collect(sparse(dlm("Once upon a time", 32, 8, 16),
                    SparseDOptions.newBuilder().setSelect(1.0).setBlockSize(blockSize)).build());
            Stream dense = collect(dlm("Once upon a time", 32, 8, 16).build());
            assertEquals(DiffusionReference.of("Once upon a time", params(32, 8, 16, null)).tokens(), dense.tokens());
            assertEquals(dense, sparseOne, "block size " + blockSize);
        }
        assertTrue(dlmCache().getHits() > 0, "the select-1 requests ran through patterns");
    }

    @Test
    void badSparseDSettingsAreInvalidArgumentNamingTheField() {
        // Canvas of "Once": BOS + 1 token + 64 = 66 tokens.
        loopback.assertInvalidArgument("diffusion.sparsed.skip", sparse(dlm("Once", 64, 32, 64),
                SparseDOptions.newBuilder().setSkip(-0.5)).build());
        loopback.assertInvalidArgument("diffusion.sparsed.skip", sparse(dlm("Once", 64, 32, 64),
                SparseDOptions.newBuilder().setSkip(1.2)).build());
        loopback.assertInvalidArgument("diffusion.sparsed.select", sparse(dlm("Once", 64, 32, 64),
                SparseDOptions.newBuilder().setSelect(0)).build());
        loopback.assertInvalidArgument("diffusion.sparsed.select", sparse(dlm("Once", 64, 32, 64),
                SparseDOptions.newBuilder().setSelect(2)).build());
        loopback.assertInvalidArgument("diffusion.sparsed.block_size", sparse(dlm("Once", 64, 32, 64),
                SparseDOptions.newBuilder().setBlockSize(0)).build());
        loopback.assertInvalidArgument("diffusion.sparsed.block_size", sparse(dlm("Once", 64, 32, 64),
                SparseDOptions.newBuilder().setBlockSize(67)).build());
        // Field 8, the Fast-dLLM cache: checked by name, and refused together with SparseD.
        var badCache = dlm("Once", 64, 32, 64);
        badCache.getDiffusionBuilder().setCache("both");
        loopback.assertInvalidArgument("diffusion.cache", badCache.build());
        var cacheAndSparse = sparse(dlm("Once", 64, 32, 64), SparseDOptions.newBuilder());
        cacheAndSparse.getDiffusionBuilder().setCache("prefix");
        loopback.assertInvalidArgument("diffusion.cache", cacheAndSparse.build());
    }

    @Test
    void theCliSparsedOptionsReachTheEngineAndNameBadValues() throws Exception {
        DiffusionReference.Expected want = DiffusionReference.of("Once upon a time",
                params(32, 8, 16, new SparseDPolicy(0.25, 0.3, 4)));
        var local = RealEngineCliTest.cli("generate", "--model", "tinystories-dlm", "--gen-length", "32",
                "--block-length", "8", "--steps", "16", "--sparsed", "--sparsed-skip", "0.25", "--sparsed-block", "4",
                "Once upon a time");
        assertEquals(0, local.exitCode(), local.err());
        assertEquals(want.text() + "\n", local.out());
        var remote = RealEngineCliTest.cli("generate", "--server", loopback.target(), "--model",
                "tinystories-dlm", "--gen-length", "32", "--block-length", "8", "--steps", "16", "--sparsed-skip",
                "0.25", "--sparsed-block", "4", "--json", "Once upon a time");
        assertEquals(0, remote.exitCode(), remote.err());
        List<String> lines = remote.out().lines().toList();
        List<Integer> ids = new ArrayList<>();
        for (String line : lines.subList(0, lines.size() - 1)) {
            ids.add(JSON.readTree(line).get("token_id").asInt());
        }
        assertEquals(want.tokens(), ids, "a --sparsed-* option alone implies --sparsed");

        for (String[] bad : List.of(new String[] {"--sparsed-select", "0", "diffusion.sparsed.select"},
                new String[] {"--sparsed-skip", "1.5", "diffusion.sparsed.skip"},
                new String[] {"--sparsed-block", "500", "diffusion.sparsed.block_size"})) {
            var run = RealEngineCliTest.cli("generate", "--server", loopback.target(), "--model",
                    "tinystories-dlm", "--gen-length", "16", bad[0], bad[1], "x");
            assertEquals(2, run.exitCode(), run.toString());
            assertTrue(run.err().startsWith("stepstream: " + bad[2] + ":"), run.err());
        }

        var negative = RealEngineCliTest.cli("serve", "--pattern-cache-bytes", "-1");
        assertEquals(2, negative.exitCode(), negative.toString());
        assertTrue(negative.err().contains("pattern-cache-bytes"), negative.err());
    }

    @Test
    void serveTakesThePatternCacheBudgetAndModelsShowsIt() throws Exception {
        var out = new java.io.PipedOutputStream();
        var lines = new java.io.BufferedReader(new java.io.InputStreamReader(new java.io.PipedInputStream(out),
                StandardCharsets.UTF_8));
        var err = new ByteArrayOutputStream();
        var commandLine = StepStreamCli.commandLine(StepStreamCli.embeddedEngine(),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        var started = new CompletableFuture<StepStreamServer>();
        ServeHook.install(commandLine, started::complete);
        var exit = CompletableFuture.supplyAsync(() -> commandLine.execute("serve", "--host", "127.0.0.1",
                "--port", "0", "--model", "tinystories-dlm", "--pattern-cache-bytes", "0"));
        String banner = lines.readLine();
        assertTrue(banner.startsWith("stepstream: serving tinystories-dlm on 127.0.0.1:"), banner);
        String target = "127.0.0.1:" + banner.substring(banner.lastIndexOf(':') + 1);
        try {
            // No pattern budget at all: the request is refused its pattern, runs dense, and still finishes whole.
            var run = RealEngineCliTest.cli("generate", "--server", target, "--gen-length", "16", "--block-length",
                    "8", "--steps", "8", "--sparsed", "--sparsed-block", "4", "Once upon a time");
            assertEquals(0, run.exitCode(), run.err());
            assertEquals(DiffusionReference.of("Once upon a time", params(16, 8, 8, null)).text() + "\n", run.out());
            var models = RealEngineCliTest.cli("models", "--server", target, "--json");
            assertEquals(0, models.exitCode(), models.err());
            JsonNode cache = JSON.readTree(models.out()).get(0).get("pattern_cache");
            assertEquals(0, cache.get("cap_bytes").asLong(), models.out());
            assertEquals(1, cache.get("refusals").asLong(), models.out());
            assertEquals(0, cache.get("bytes_in_use").asLong(), models.out());
            var table = RealEngineCliTest.cli("models", "--server", target);
            assertTrue(table.out().contains("sparsed pattern cache: 0/0 bytes, 0 patterns"), table.out());
        } finally {
            started.get().close();
        }
        assertEquals(0, exit.get(30, TimeUnit.SECONDS), err.toString());
    }
}
