package io.stepstream.engine.bench;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;

import java.util.ArrayList;
import java.util.List;

/** Runs the bench workload on our engine: batched prefill, then one forward per step for all sequences, greedy. */
final class OursRunner {
    private OursRunner() {
    }

    static RunResult run(Model model, int[][] prompts, int steps) {
        return run(model, prompts, steps, null);
    }

    /** @param generated null, or [batch][steps + 1]: receives every sequence's greedy tokens */
    static RunResult run(Model model, int[][] prompts, int steps, int[][] generated) {
        int batch = prompts.length;
        int vocab = model.config().vocabSize();
        float[][] logits = new float[batch][vocab];
        List<KvCache> caches = new ArrayList<>(batch);
        try {
            List<ForwardBatch.Entry> entries = new ArrayList<>(batch);
            for (int[] prompt : prompts) {
                KvCache cache = model.newKvCache();
                caches.add(cache);
                entries.add(new ForwardBatch.Entry(cache, prompt, 0, prompt.length));
            }
            long t0 = System.nanoTime();
            model.forward(new ForwardBatch(entries), logits);
            long prefill = System.nanoTime() - t0;
            int[][] next = new int[batch][1];
            for (int i = 0; i < batch; i++) {
                next[i][0] = Prompts.argmax(logits[i], vocab);
                if (generated != null) {
                    generated[i][0] = next[i][0];
                }
            }
            List<ForwardBatch.Entry> step = new ArrayList<>(batch);
            for (int i = 0; i < batch; i++) {
                step.add(new ForwardBatch.Entry(caches.get(i), next[i], 0, 1));
            }
            ForwardBatch decodeBatch = new ForwardBatch(step);
            long t1 = System.nanoTime();
            for (int s = 0; s < steps; s++) {
                model.forward(decodeBatch, logits);
                for (int i = 0; i < batch; i++) {
                    next[i][0] = Prompts.argmax(logits[i], vocab);
                    if (generated != null) {
                        generated[i][s + 1] = next[i][0];
                    }
                }
            }
            long decode = System.nanoTime() - t1;
            return new RunResult("stepstream", batch, prompts[0].length, steps, prefill, decode);
        } finally {
            caches.forEach(KvCache::close);
        }
    }
}
