package io.stepstream.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.scheduler.FakeModel;
import io.stepstream.scheduler.FinishReason;
import io.stepstream.scheduler.TokenEvent;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.stream.javadsl.Sink;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Diffusion LMs through the embedded API, on the real tinystories-dlm beside an autoregressive model. */
class DiffusionStepStreamTest extends TinyDlmFixture {
    @Test
    void diffusionAndAutoregressiveRequestsStreamSideBySide() throws Exception {
        try (StepStream ss = StepStream.attach(testKit.system(), StepStreamConfig.defaults())) {
            ModelInfo ar = ss.load(FakeModel.hashed(96));
            ModelInfo info = ss.load(dlm);
            assertEquals("autoregressive", ar.kind());
            assertEquals(new ModelInfo("tinystories-dlm", "diffusion", 256, 513, "cpu", "cpu",
                    io.stepstream.scheduler.PatternCacheStats.of(dlm.patternCache())), info);
            assertEquals(ar.name(), ss.defaultModel(), "the first model loaded stays the default");

            var options = new DiffusionOptions(16, 8, 8, null, null, true);
            List<CompletionStage<List<TokenEvent>>> dlmRuns = new ArrayList<>();
            for (String prompt : List.of("Once upon a time", "The sun was", "Tom had a red ball")) {
                dlmRuns.add(ss.generate(dlmRequest(prompt, options)).runWith(Sink.seq(), testKit.system()));
            }
            var arRun = ss.generateAll(new GenerateRequest("", "abc", null, 20, SamplingParams.GREEDY, List.of()));
            // Every stream ends before any solo reference runs: the model is not thread-safe, and the server's
            // compute thread would otherwise still be stepping the later requests on it.
            List<List<TokenEvent>> finished = new ArrayList<>();
            for (CompletionStage<List<TokenEvent>> run : dlmRuns) {
                finished.add(await(run));
            }
            int i = 0;
            for (String prompt : List.of("Once upon a time", "The sun was", "Tom had a red ball")) {
                List<TokenEvent> events = finished.get(i++);
                List<Integer> ids = new ArrayList<>();
                int progress = 0;
                for (TokenEvent e : events) {
                    if (e instanceof TokenEvent.Token t) {
                        ids.add(t.tokenId());
                    } else if (e instanceof TokenEvent.DenoiseProgress) {
                        progress++;
                    }
                }
                // The generated tokens as they are (no EOS in these short greedy stories).
                int[] want = alone(prompt, new DiffusionParams(16, 8, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L))
                        .generated();
                assertEquals(Arrays.toString(want), ids.toString(), prompt);
                assertEquals(8, progress, "one progress event per step when asked");
                var end = (TokenEvent.Finished) events.getLast();
                assertEquals(FinishReason.LENGTH, end.reason());
                assertEquals(16, end.completionTokens());
            }
            GenerationResult arResult = await(arRun);
            assertTrue(arResult.tokenIds().length > 0);
            assertEquals(2, ss.models().size());
        }
    }

    @Test
    void defaultsAreLladaLikeAndCappedByTheContext() {
        var model = new LoadedModel.Diffusion(dlm);
        int[] prompt = dlm.tokenizer().encode("Once upon a time", true, false);
        var v = StepStream.validate(dlmRequest("Once upon a time", null), model, 2048);
        assertArrayEquals(prompt, v.prompt());
        assertEquals(new DiffusionParams(128, 128, 128, 0.0, Remasking.LOW_CONFIDENCE, null, 0L), v.diffusion());
        var onlyBlock = StepStream.validate(dlmRequest("Once upon a time",
                new DiffusionOptions(null, 48, null, "random", 0.9, false)), model, 2048);
        assertEquals(new DiffusionParams(96, 48, 96, 0.0, Remasking.RANDOM, 0.9, 0L), onlyBlock.diffusion());
        var dual = StepStream.validate(dlmRequest("Once upon a time",
                new DiffusionOptions(64, 32, 64, null, 0.9, false).withCache("dual")), model, 2048);
        assertEquals(new DiffusionParams(64, 32, 64, 0.0, Remasking.LOW_CONFIDENCE, 0.9, 0L)
                .withCache(io.stepstream.engine.dlm.DlmCacheMode.DUAL), dual.diffusion());
        String longPrompt = "Once upon a time ".repeat(40);
        int longLength = dlm.tokenizer().encode(longPrompt, true, false).length;
        assertTrue(longLength > 128 && longLength < 250, "prompt of " + longLength);
        var capped = StepStream.validate(dlmRequest(longPrompt, null), model, 2048);
        assertEquals(256 - longLength, capped.diffusion().genLength(), "gen_length fills what the context leaves");
    }

    @Test
    void badDiffusionSettingsNameTheField() {
        var model = new LoadedModel.Diffusion(dlm);
        record Case(String field, GenerateRequest request) {
        }
        SamplingParams greedy = SamplingParams.GREEDY;
        List<Case> cases = List.of(
                new Case("diffusion.gen_length", dlmRequest("a", new DiffusionOptions(60, 32, 60, null, null, false))),
                new Case("diffusion.steps", dlmRequest("a", new DiffusionOptions(64, 16, 30, null, null, false))),
                new Case("diffusion.steps", dlmRequest("a", new DiffusionOptions(64, 32, 0, null, null, false))),
                new Case("diffusion.gen_length", dlmRequest("a", new DiffusionOptions(255, 255, 255, null, null,
                        false))),
                new Case("diffusion.gen_length", dlmRequest("a", new DiffusionOptions(0, null, null, null, null,
                        false))),
                new Case("diffusion.block_length", dlmRequest("a", new DiffusionOptions(64, 0, 64, null, null,
                        false))),
                new Case("diffusion.threshold", dlmRequest("a", new DiffusionOptions(64, 32, 64, null, 0.0, false))),
                new Case("diffusion.threshold", dlmRequest("a", new DiffusionOptions(64, 32, 64, null, 1.5, false))),
                new Case("diffusion.remasking", dlmRequest("a", new DiffusionOptions(64, 32, 64, "top_k", null,
                        false))),
                new Case("diffusion.cache", dlmRequest("a", new DiffusionOptions(64, 32, 64, null, null, false)
                        .withCache("both"))),
                new Case("top_k", GenerateRequest.diffusion("", "a", new SamplingParams(0f, 5, 1f, 0L, 0), List.of(),
                        null)),
                new Case("top_p", GenerateRequest.diffusion("", "a", new SamplingParams(0f, 0, 0.9f, 0L, 0),
                        List.of(), null)),
                new Case("logprobs", GenerateRequest.diffusion("", "a", new SamplingParams(0f, 0, 1f, 0L, 2),
                        List.of(), null)),
                new Case("max_tokens", new GenerateRequest("", "a", null, 32, greedy, List.of(), null)),
                new Case("prompt_token_ids", new GenerateRequest("", "", new int[] {1, 512}, 0, greedy, List.of(),
                        null)),
                new Case("temperature", GenerateRequest.diffusion("", "a", new SamplingParams(-1f, 0, 1f, 0L, 0),
                        List.of(), null)));
        for (Case c : cases) {
            InvalidRequestException e = assertThrows(InvalidRequestException.class,
                    () -> StepStream.validate(c.request(), model, 2048), c.field());
            assertEquals(c.field(), e.field(), e.getMessage());
        }
        InvalidRequestException budget = assertThrows(InvalidRequestException.class,
                () -> StepStream.validate(dlmRequest("a", new DiffusionOptions(64, 32, 64, null, null, false)), model,
                        50));
        assertEquals("diffusion.gen_length", budget.field());
        InvalidRequestException toAr = assertThrows(InvalidRequestException.class, () -> StepStream.validate(
                new GenerateRequest("", "a", null, 5, greedy, List.of(), DiffusionOptions.DEFAULTS),
                FakeModel.hashed(96)));
        assertEquals("diffusion", toAr.field());
        assertTrue(toAr.getMessage().contains("autoregressive"), toAr.getMessage());
    }

    @Test
    void loadTellsTheKindsApart(@TempDir Path dir) throws Exception {
        assertTrue(StepStream.isDiffusion("tinystories-dlm"));
        assertFalse(StepStream.isDiffusion("stories260K"));
        assertFalse(StepStream.isDiffusion("/no/such/dir"));
        String config;
        try (var in = Models.class.getResourceAsStream("models/tinystories-dlm/config.json")) {
            config = new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        }
        Path dlmDir = Files.createDirectories(dir.resolve("dlm"));
        Files.writeString(dlmDir.resolve("config.json"), config);
        assertTrue(StepStream.isDiffusion(dlmDir.toString()));
        Path arDir = Files.createDirectories(dir.resolve("llama"));
        String withoutMask = config.replaceAll("\"mask_token_id\": 512,", "");
        assertTrue(!withoutMask.contains("mask_token_id"));
        Files.writeString(arDir.resolve("config.json"), withoutMask);
        assertFalse(StepStream.isDiffusion(arDir.toString()), "no mask token: an autoregressive checkpoint");
        // Loading the diffusion folder goes to the diffusion loader, which names what is missing.
        try (StepStream ss = StepStream.attach(testKit.system(), StepStreamConfig.defaults())) {
            var e = assertThrows(io.stepstream.engine.ModelLoadException.class, () -> ss.load(dlmDir.toString()));
            assertTrue(e.getMessage().contains("tokenizer.bin") || e.getMessage().contains("config"), e.getMessage());
        }
    }
}
