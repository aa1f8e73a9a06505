package io.stepstream.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DreamAlgorithm;
import io.stepstream.engine.dlm.DreamGeneration;
import io.stepstream.engine.dlm.DreamParams;
import io.stepstream.engine.tools.DreamSynth;
import io.stepstream.scheduler.TokenEvent;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.stream.javadsl.Sink;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A Dream model through the embedded API: its settings resolve to DreamParams and its streams equal Dream alone. */
class DreamStepStreamTest {
    @TempDir
    static Path dir;
    private static ActorTestKit testKit;
    private static DiffusionModel dream;

    @BeforeAll
    static void start() throws Exception {
        testKit = ActorTestKit.create();
        DreamSynth.write(dir, DreamSynth.Shape.DREAM_TINY, 5);
        dream = Models.loadDiffusion(dir.toString(), ModelOptions.defaults().withComputeThreads(1));
    }

    @AfterAll
    static void stop() {
        testKit.shutdownTestKit();
        dream.close();
    }

    private GenerateRequest request(String prompt, SamplingParams sampling, DiffusionOptions options) {
        return GenerateRequest.diffusion(dream.name(), prompt, sampling, List.of(), options);
    }

    /** Dream alone: the generated ids up to (not including) the first EOS, without mask ids. */
    private static List<Integer> alone(int[] prompt, DreamParams p) {
        DreamGeneration gen = DreamGeneration.start(dream, prompt, p);
        float[][] logits = {new float[gen.logitsLength()]};
        while (!gen.done()) {
            dream.forward(List.of(gen.nextInput()), logits);
            gen.apply(logits[0]);
        }
        List<Integer> ids = new ArrayList<>();
        for (int t : gen.generated()) {
            if (t == dream.tokenizer().eosId()) {
                break;
            }
            if (t != dream.maskId()) {
                ids.add(t);
            }
        }
        return ids;
    }

    @Test
    void dreamRequestsStreamWhatDreamGivesAlone() throws Exception {
        var model = new LoadedModel.Diffusion(dream);
        SamplingParams sampled = new SamplingParams(0.7f, 30, 0.9f, 12L, 0);
        List<GenerateRequest> requests = List.of(
                request("Once upon a time", SamplingParams.GREEDY, DiffusionOptions.dream(16, 8, "entropy", null,
                        null, false)),
                request("The sun", sampled, DiffusionOptions.dream(20, 10, "maskgit_plus", 0.5, 0.01, false)),
                request("Tom", SamplingParams.GREEDY, null));
        List<StepStream.Validated> valid = new ArrayList<>();
        for (GenerateRequest r : requests) {
            valid.add(StepStream.validate(r, model, 2048));
        }
        StepStream.Validated first = valid.getFirst();
        assertNull(first.diffusion());
        assertEquals(new DreamParams(16, 8, 0.0, null, null, DreamAlgorithm.ENTROPY, null, 1e-3, 0L), first.dream());
        assertEquals(new DreamParams(20, 10, 0.7f, (double) 0.9f, 30, DreamAlgorithm.MASKGIT_PLUS, 0.5, 0.01, 12L),
                valid.get(1).dream());
        int room = dream.contextLength() - valid.get(2).prompt().length;
        assertEquals(DreamParams.greedy(Math.min(128, room), Math.min(128, room), DreamAlgorithm.ORIGIN),
                valid.get(2).dream(), "defaults: gen_length min(128, room), steps = gen_length, Dream's origin");

        try (StepStream ss = StepStream.attach(testKit.system(), StepStreamConfig.defaults())) {
            ModelInfo info = ss.load(dream);
            assertEquals("diffusion", info.kind());
            List<CompletionStage<List<TokenEvent>>> runs = new ArrayList<>();
            for (GenerateRequest r : requests) {
                runs.add(ss.generate(r).runWith(Sink.seq(), testKit.system()));
            }
            List<List<TokenEvent>> finished = new ArrayList<>();
            for (CompletionStage<List<TokenEvent>> run : runs) {
                finished.add(run.toCompletableFuture().get(120, TimeUnit.SECONDS));
            }
            for (int i = 0; i < requests.size(); i++) {
                List<Integer> ids = new ArrayList<>();
                for (TokenEvent e : finished.get(i)) {
                    if (e instanceof TokenEvent.Token t) {
                        ids.add(t.tokenId());
                    }
                }
                assertTrue(finished.get(i).getLast() instanceof TokenEvent.Finished);
                assertEquals(alone(valid.get(i).prompt(), valid.get(i).dream()).toString(), ids.toString(),
                        "request " + i + " " + Arrays.toString(valid.get(i).prompt()));
            }
        }
    }

    @Test
    void badDreamSettingsNameTheirField() {
        var model = new LoadedModel.Diffusion(dream);
        record Case(String field, GenerateRequest request) {
        }
        SamplingParams greedy = SamplingParams.GREEDY;
        List<Case> cases = List.of(
                new Case("diffusion.alg", request("a", greedy, DiffusionOptions.dream(8, 8, "low_confidence", null,
                        null, false))),
                new Case("diffusion.alg_temp", request("a", greedy, DiffusionOptions.dream(8, 8, "entropy", -1.0,
                        null, false))),
                new Case("diffusion.eps", request("a", greedy, DiffusionOptions.dream(8, 8, "entropy", null, 1.0,
                        false))),
                new Case("diffusion.steps", request("a", greedy, DiffusionOptions.dream(8, 0, "entropy", null, null,
                        false))),
                new Case("diffusion.gen_length", request("a", greedy, DiffusionOptions.dream(0, 8, null, null, null,
                        false))),
                new Case("diffusion.block_length", request("a", greedy, new DiffusionOptions(16, 8, 8, null, null,
                        false))),
                new Case("diffusion.remasking", request("a", greedy, new DiffusionOptions(16, null, 8, "random",
                        null, false))),
                new Case("diffusion.threshold", request("a", greedy, new DiffusionOptions(16, null, 8, null, 0.9,
                        false))),
                new Case("diffusion.cache", request("a", greedy, DiffusionOptions.dream(8, 8, null, null, null,
                        false).withCache("prefix"))),
                new Case("top_p", request("a", new SamplingParams(0f, 0, 0f, 0L, 0), null)),
                new Case("top_k", request("a", new SamplingParams(0f, -1, 1f, 0L, 0), null)),
                new Case("logprobs", request("a", new SamplingParams(0f, 0, 1f, 0L, 2), null)));
        for (Case c : cases) {
            InvalidRequestException e = assertThrows(InvalidRequestException.class,
                    () -> StepStream.validate(c.request(), model, 2048), c.field());
            assertEquals(c.field(), e.field(), e.getMessage());
        }
        // Dream's own settings on a LLaDA model are refused too.
        try (DiffusionModel llada = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults()
                .withComputeThreads(1))) {
            InvalidRequestException e = assertThrows(InvalidRequestException.class, () -> StepStream.validate(
                    GenerateRequest.diffusion("", "a", greedy, List.of(), DiffusionOptions.dream(8, 8, "entropy",
                            null, null, false)), new LoadedModel.Diffusion(llada), 2048));
            assertEquals("diffusion.alg", e.field());
        }
    }

    @Test
    void aPromptHoldingTheMaskTokenIsRefusedByField() throws Exception {
        // The checkpoint's own tokenizer knows the mask as a control token ("<|mask|>", as Dream's tokenizer.json
        // does), so a text prompt can spell it and prompt_token_ids can name it; only the engine places masks.
        var text = io.stepstream.engine.tools.SyntheticVocab.byteLevel(DreamSynth.TEXT_VOCAB, "qwen2");
        List<String> tokens = new java.util.ArrayList<>(text.tokens());
        tokens.add("<|mask|>");
        int[] types = Arrays.copyOf(text.tokenTypes(), tokens.size());
        types[DreamSynth.MASK_ID] = io.stepstream.engine.tokenizer.TokenType.CONTROL.code;
        var tokenizer = new io.stepstream.engine.tokenizer.TokenizerSpec("gpt2", "qwen2", tokens, null, types,
                text.merges(), 1, DreamSynth.EOS_ID, null, false, false, null).create();
        var config = io.stepstream.engine.format.safetensors.HfConfig.read(dir.resolve("config.json"));
        try (var weights = io.stepstream.engine.format.safetensors.SafetensorsCheckpoint.open(dir);
             var withMask = new DiffusionModel("dream-json", config, weights, tokenizer,
                     ModelOptions.defaults().withComputeThreads(1))) {
            var model = new LoadedModel.Diffusion(withMask);
            var options = DiffusionOptions.dream(8, 8, "entropy", null, null, false);
            InvalidRequestException byText = assertThrows(InvalidRequestException.class, () -> StepStream.validate(
                    GenerateRequest.diffusion("dream-json", "a <|mask|> b", SamplingParams.GREEDY, List.of(), options),
                    model, 2048));
            assertEquals("prompt", byText.field(), byText.getMessage());
            InvalidRequestException byId = assertThrows(InvalidRequestException.class, () -> StepStream.validate(
                    new GenerateRequest("dream-json", null, new int[] {5, DreamSynth.MASK_ID}, 0, SamplingParams.GREEDY,
                            List.of(), options), model, 2048));
            assertEquals("prompt_token_ids", byId.field(), byId.getMessage());
            assertTrue(byId.getMessage().contains("mask"), byId.getMessage());
            // Without the mask the same model serves the request.
            assertEquals(8, StepStream.validate(GenerateRequest.diffusion("dream-json", "a b", SamplingParams.GREEDY,
                    List.of(), options), model, 2048).dream().genLength());
        }
    }
}
