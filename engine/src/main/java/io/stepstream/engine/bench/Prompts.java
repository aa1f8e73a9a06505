package io.stepstream.engine.bench;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** The bench's prompts (the same token ids for both engines) and greedy choice. */
final class Prompts {
    private Prompts() {
    }

    /** {@code batch} prompts of {@code length} token ids in [0, vocab), deterministic per seed, each different. */
    static int[][] random(int batch, int length, int vocab, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int[][] prompts = new int[batch][length];
        for (int[] p : prompts) {
            for (int j = 0; j < length; j++) {
                p[j] = rnd.nextInt(vocab);
            }
        }
        return prompts;
    }

    /** Index of the largest of the first n values (the first one on ties). */
    static int argmax(float[] v, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * The step profilers' fixed workload: prefills {@code batch} sequences with 8-token prompts (sequence b: token i
     * is (1 + 4 i + 7 b) mod vocab), adding their caches to {@code caches}, and returns the step that decodes each
     * sequence's greedy next token ({@code logits}: one row per sequence, overwritten). The step's entries read
     * their token from {@code next[b]} (one element each), so a caller advances every sequence by writing there.
     */
    static ForwardBatch prefillThenDecodeStep(Model model, int batch, List<KvCache> caches, float[][] logits,
                                              int[][] next) {
        int vocab = model.config().vocabSize();
        List<ForwardBatch.Entry> prefill = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
            int[] prompt = new int[8];
            for (int i = 0; i < prompt.length; i++) {
                prompt[i] = (1 + 4 * i + 7 * b) % vocab;
            }
            KvCache cache = model.newKvCache();
            caches.add(cache);
            prefill.add(new ForwardBatch.Entry(cache, prompt, 0, prompt.length));
        }
        model.forward(new ForwardBatch(prefill), logits);
        List<ForwardBatch.Entry> decode = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
            next[b][0] = argmax(logits[b], vocab);
            decode.add(new ForwardBatch.Entry(caches.get(b), next[b], 0, 1));
        }
        return new ForwardBatch(decode);
    }
}
