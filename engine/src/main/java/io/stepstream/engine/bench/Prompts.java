package io.stepstream.engine.bench;

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
}
