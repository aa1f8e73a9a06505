package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Models;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static io.stepstream.gpu.OpenClTestSupport.greedy;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whole stories260K forwards with the hand matmul kernels against the same direct dispatch running Aparapi's
 * matmul pass: logits within 1e-4 relative step after step for batches mixing prefill chunks (tiled kernel) and
 * decodes (matvec kernel), the same greedy story for 80 tokens, and a sequence's logits the same alone as
 * inside a batch.
 */
class HandMatmulForwardTest {
    private static final double TOLERANCE = 1e-4;

    private static OpenClLlama2Model load(TensorType type, Matmul matmul, int blocks) {
        OpenClLlama2Model m = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), blocks,
                type, Dispatch.DIRECT, matmul);
        assertEquals(matmul, m.matmul());
        return m;
    }

    private static double relativeError(float[] actual, float[] reference) {
        return OpenClTestSupport.relativeError(actual, reference);
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void handLogitsMatchAparapisInMixedBatches(TensorType type) {
        try (OpenClLlama2Model aparapi = load(type, Matmul.APARAPI, 64);
             OpenClLlama2Model hand = load(type, Matmul.HAND, 64)) {
            int vocab = hand.config().vocabSize();
            Random random = new Random(300 + type.ordinal());
            List<KvCache> ac = new ArrayList<>();
            List<KvCache> hc = new ArrayList<>();
            List<Integer> next = new ArrayList<>();
            try {
                for (int step = 0; step < 10; step++) {
                    if (step == 0 || step == 2 || step == 6) {
                        ac.add(aparapi.newKvCache());
                        hc.add(hand.newKvCache());
                        next.add(-1);
                    }
                    List<ForwardBatch.Entry> ae = new ArrayList<>();
                    List<ForwardBatch.Entry> he = new ArrayList<>();
                    for (int i = 0; i < hc.size(); i++) {
                        int[] tokens;
                        if (next.get(i) < 0 || random.nextInt(3) == 0) {
                            tokens = new int[1 + random.nextInt(40)];
                            for (int j = 0; j < tokens.length; j++) {
                                tokens[j] = 3 + random.nextInt(vocab - 3);
                            }
                            if (hc.get(i).length() == 0) {
                                tokens[0] = 1;
                            }
                        } else {
                            tokens = new int[]{next.get(i)};
                        }
                        ae.add(new ForwardBatch.Entry(ac.get(i), tokens, 0, tokens.length));
                        he.add(new ForwardBatch.Entry(hc.get(i), tokens, 0, tokens.length));
                    }
                    float[][] al = new float[hc.size()][vocab];
                    float[][] hl = new float[hc.size()][vocab];
                    aparapi.forward(new ForwardBatch(ae), al);
                    hand.forward(new ForwardBatch(he), hl);
                    for (int i = 0; i < hc.size(); i++) {
                        double err = relativeError(hl[i], al[i]);
                        assertTrue(err <= TOLERANCE, type + " step " + step + " sequence " + i + ": relative error "
                                + err);
                        next.set(i, argmax(al[i])); // both models get the same next token
                    }
                }
                assertTrue(hc.stream().mapToInt(KvCache::length).max().orElse(0) > 40, "sequences crossed blocks");
            } finally {
                ac.forEach(KvCache::close);
                hc.forEach(KvCache::close);
            }
        }
    }

    @Test
    void greedyStoryIsAparapisFor80Tokens() {
        try (OpenClLlama2Model aparapi = load(TensorType.F32, Matmul.APARAPI, 16);
             OpenClLlama2Model hand = load(TensorType.F32, Matmul.HAND, 16)) {
            List<Integer> a = greedy(aparapi, 80, false);
            List<Integer> h = greedy(hand, 80, false);
            assertEquals(80, a.size(), "the story ended early");
            assertEquals(a, h);
        }
    }

    @Test
    void aSequenceGivesTheSameLogitsAloneAndInsideABatch() {
        try (OpenClLlama2Model hand = load(TensorType.F32, Matmul.HAND, 64)) {
            int vocab = hand.config().vocabSize();
            int[] prompt = {1, 403, 407, 261, 378, 300};
            float[][] alone = new float[1][vocab];
            try (KvCache cache = hand.newKvCache()) {
                hand.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, prompt, 0, prompt.length))), alone);
                // Then one decode step alone (the matvec kernel) ...
                hand.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, new int[]{argmax(alone[0])}, 0,
                        1))), alone);
            }
            float[][] batched = new float[3][vocab];
            try (KvCache cache = hand.newKvCache(); KvCache other = hand.newKvCache(); KvCache third = hand.newKvCache()) {
                int[] otherPrompt = new int[23];
                for (int i = 0; i < otherPrompt.length; i++) {
                    otherPrompt[i] = 5 + 7 * i;
                }
                otherPrompt[0] = 1;
                float[][] first = new float[2][vocab];
                hand.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, prompt, 0, prompt.length),
                        new ForwardBatch.Entry(other, otherPrompt, 0, otherPrompt.length))), first);
                assertTrue(relativeError(first[0], prefillAlone(hand, prompt)) <= TOLERANCE, "prefill in a batch");
                // ... against the same decode inside a batch with a prefill chunk (the tiled kernel).
                hand.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, new int[]{argmax(first[0])}, 0, 1),
                        new ForwardBatch.Entry(other, new int[]{argmax(first[1])}, 0, 1),
                        new ForwardBatch.Entry(third, otherPrompt, 0, 9))), batched);
            }
            double err = relativeError(batched[0], alone[0]);
            assertTrue(err <= TOLERANCE, "decode alone vs in a batch: relative error " + err);
        }
    }

    /**
     * The long-row matvec (other lanes per row, other unroll) forced onto every pass of stories260K up to 8 tokens
     * gives the default build's logits within 1e-5 through a prefill and decode steps of two sequences.
     */
    @Test
    void longRowMatvecGivesTheDefaultLogits() {
        String[] keys = {MatmulTiles.LONG_ROWS_MIN_COLS_PROPERTY, MatmulTiles.LONG_ROWS_TOKENS_PROPERTY};
        OpenClLlama2Model longRows;
        System.setProperty(keys[0], "4");
        System.setProperty(keys[1], "8");
        try {
            longRows = load(TensorType.F32, Matmul.HAND, 64);
        } finally {
            for (String key : keys) {
                System.clearProperty(key);
            }
        }
        try (longRows; OpenClLlama2Model plain = load(TensorType.F32, Matmul.HAND, 64);
             KvCache a1 = plain.newKvCache(); KvCache a2 = plain.newKvCache();
             KvCache b1 = longRows.newKvCache(); KvCache b2 = longRows.newKvCache()) {
            int vocab = plain.config().vocabSize();
            int[] first = {1, 403, 407, 261, 378};
            int[] second = {1, 9, 77, 300};
            float[][] pa = new float[2][vocab];
            float[][] pb = new float[2][vocab];
            for (int step = 0; step < 6; step++) {
                int[] t1 = step == 0 ? first : new int[]{argmax(pa[0])};
                int[] t2 = step == 0 ? second : new int[]{argmax(pa[1])};
                plain.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(a1, t1, 0, t1.length),
                        new ForwardBatch.Entry(a2, t2, 0, t2.length))), pa);
                longRows.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(b1, t1, 0, t1.length),
                        new ForwardBatch.Entry(b2, t2, 0, t2.length))), pb);
                for (int i = 0; i < 2; i++) {
                    double err = relativeError(pb[i], pa[i]);
                    assertTrue(err <= 1e-5, "step " + step + " sequence " + i + ": relative error " + err);
                }
            }
        }
    }

    private static float[] prefillAlone(OpenClLlama2Model model, int[] prompt) {
        float[][] out = new float[1][model.config().vocabSize()];
        try (KvCache cache = model.newKvCache()) {
            model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, prompt, 0, prompt.length))), out);
        }
        return out[0];
    }
}
