package io.stepstream.actors;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.LladaGeneration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * What the tests of diffusion requests through the embedded API share: an actor test kit, the real
 * tinystories-dlm as the reference model (requests run alone on it, outside any scheduler), and the reference
 * run itself. Each test class gets its own kit and model (JUnit runs the inherited {@code @BeforeAll} per class).
 */
abstract class TinyDlmFixture {
    static ActorTestKit testKit;
    /** The reference model: requests run alone on it, outside any scheduler. */
    static DiffusionModel dlm;

    @BeforeAll
    static void startKitAndReferenceModel() {
        testKit = ActorTestKit.create();
        dlm = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults().withComputeThreads(1));
    }

    @AfterAll
    static void stopKitAndReferenceModel() {
        testKit.shutdownTestKit();
        dlm.close();
    }

    static <T> T await(CompletionStage<T> stage) throws Exception {
        return stage.toCompletableFuture().get(120, TimeUnit.SECONDS);
    }

    static GenerateRequest dlmRequest(String prompt, DiffusionOptions options) {
        return GenerateRequest.diffusion("tinystories-dlm", prompt, SamplingParams.GREEDY, List.of(), options);
    }

    /** The generation alone on the reference model, one forward per step; its SparseD pattern freed. */
    static LladaGeneration alone(String prompt, DiffusionParams p) {
        LladaGeneration gen = LladaGeneration.start(dlm, prompt, p);
        float[][] logits = {new float[gen.logitsLength()]};
        while (!gen.done()) {
            dlm.forward(List.of(gen.nextInput()), logits);
            gen.apply(logits[0]);
        }
        dlm.releasePattern(gen.patternHandle());
        return gen;
    }

    /** The tokens a stream of that generation holds: generated ones without mask ids, up to the first EOS. */
    static int[] streamedTokens(LladaGeneration gen) {
        int eos = dlm.tokenizer().eosId();
        return Arrays.stream(gen.generated()).filter(t -> t != dlm.maskId()).takeWhile(t -> t != eos).toArray();
    }
}
