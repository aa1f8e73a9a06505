package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The scheduler's behaviour on the real embedded stories260K model (llama2.c checkpoint, CPU forward). */
class Stories260KSchedulerTest extends SchedulerBehaviourTest {
    @Override
    Model newModel() {
        // One compute thread (the caller's): the model is tiny, and tests must not leave pools behind.
        return Models.load(Models.DEFAULT_MODEL, ModelOptions.defaults().withComputeThreads(1));
    }

    @Test
    void aStoryFromBosEndsLikeLlama2c() {
        // llama2.c's run loop stops a story when the model emits BOS; greedy from BOS alone ends that way.
        Model model = newModel();
        StepLoop l = loop(new TrackingModel(model), SchedulerConfig.defaults());
        l.scheduler.add(new SequenceRequest("story", new int[] {model.tokenizer().bosId()}, 500,
                SamplingParams.GREEDY, List.of()));
        l.runToEnd();
        StepLoop.Outcome o = l.outcome("story");
        assertEquals(FinishReason.STOP, o.reason(), o.text());
        assertEquals(o.tokens().length + 1, o.completionTokens(), "the ending BOS is counted, not streamed");
        assertTrue(o.text().length() > 50 && Character.isUpperCase(o.text().charAt(0)), o.text());
    }

    /**
     * Reference: llama2.c's run loop, one token per forward pass, prompt forced, then greedy; stops on BOS/EOS;
     * text from the tokenizer's raw bytes after the previous token.
     */
    private static StepLoop.Outcome runLoop(Model model, int[] prompt, int maxNew) {
        int vocab = model.config().vocabSize();
        KvCache cache = model.newKvCache();
        float[][] logits = new float[1][vocab];
        java.io.ByteArrayOutputStream text = new java.io.ByteArrayOutputStream();
        List<Integer> generated = new ArrayList<>();
        int token = prompt[0];
        FinishReason reason = FinishReason.LENGTH;
        for (int pos = 0; generated.size() < maxNew; pos++) {
            model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, new int[] {token}, 0, 1))), logits);
            int next;
            if (pos + 1 < prompt.length) {
                next = prompt[pos + 1];
            } else {
                next = 0;
                for (int v = 1; v < vocab; v++) {
                    if (logits[0][v] > logits[0][next]) {
                        next = v;
                    }
                }
                if (next == model.tokenizer().bosId() || next == model.tokenizer().eosId()) {
                    reason = FinishReason.STOP;
                    break;
                }
                generated.add(next);
                text.writeBytes(model.tokenizer().decodeBytes(token, next));
            }
            token = next;
        }
        cache.close();
        return new StepLoop.Outcome(generated.stream().mapToInt(Integer::intValue).toArray(),
                text.toString(StandardCharsets.UTF_8), reason, prompt.length,
                generated.size() + (reason == FinishReason.STOP ? 1 : 0));
    }

    @Test
    void batchedChunkedTextPromptsEqualTheRunLoop() {
        Model model = newModel();
        String[] prompts = {"Once upon a time", "The little dog", "Lily and Ben went to the park to play.", ""};
        int[] maxNew = {30, 45, 20, 60};
        // Small budgets: the prompts prefill in chunks while the others decode.
        StepLoop l = loop(new TrackingModel(model), new SchedulerConfig(4, 6, 8));
        for (int i = 0; i < prompts.length; i++) {
            l.scheduler.add(greedy("p" + i, model.tokenizer().encode(prompts[i], true, false), maxNew[i]));
        }
        l.runToEnd();
        for (int i = 0; i < prompts.length; i++) {
            int[] prompt = model.tokenizer().encode(prompts[i], true, false);
            StepLoop.Outcome want = runLoop(newModel(), prompt, maxNew[i]);
            assertTrue(want.tokens().length >= 10, "reference too short for prompt " + i);
            l.outcome("p" + i).assertSameAs(want, "prompt '" + prompts[i] + "'");
        }
    }
}
