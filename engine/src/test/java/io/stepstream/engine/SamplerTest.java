package io.stepstream.engine;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplerTest {
    private static float[] randomLogits(Random rnd, int n, float scale) {
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = (float) rnd.nextGaussian() * scale;
        }
        return l;
    }

    @Test
    void greedyIsArgmaxWithTiesToLowestId() {
        Random rnd = new Random(1);
        Sampler greedy = new Sampler(SamplingParams.GREEDY);
        for (int i = 0; i < 50; i++) {
            float[] logits = randomLogits(rnd, 100, 3);
            assertEquals(TestSupport.argmax(logits), greedy.sample(logits).tokenId());
        }
        float[] tied = {0.5f, 2f, -1f, 2f, 2f};
        assertEquals(1, greedy.sample(tied).tokenId());
        Sampler.Sample s = greedy.sample(tied);
        assertTrue(Float.isNaN(s.logprob()) && s.top().isEmpty(), "no logprobs unless asked");
    }

    @Test
    void topKOneIsGreedyAtAnyTemperature() {
        Random rnd = new Random(2);
        for (float t : new float[]{0.1f, 0.7f, 1f, 3f, 50f}) {
            Sampler s = new Sampler(new SamplingParams(t, 1, 1f, 42, 0));
            for (int i = 0; i < 50; i++) {
                float[] logits = randomLogits(rnd, 64, 2);
                assertEquals(TestSupport.argmax(logits), s.sample(logits).tokenId(), "temperature " + t);
            }
        }
    }

    @Test
    void sameSeedSameDrawsDifferentSeedDifferentDraws() {
        float[] logits = randomLogits(new Random(3), 50, 1);
        SamplingParams p = new SamplingParams(1f, 20, 0.95f, 1234, 0);
        int[] a = draws(new Sampler(p), logits, 300);
        int[] b = draws(new Sampler(p), logits, 300);
        int[] c = draws(new Sampler(new SamplingParams(1f, 20, 0.95f, 1235, 0)), logits, 300);
        assertTrue(Arrays.equals(a, b));
        assertNotEquals(Arrays.toString(a), Arrays.toString(c));
        assertTrue(Arrays.stream(a).distinct().count() > 5, "draws vary");
    }

    private static int[] draws(Sampler s, float[] logits, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.sample(logits).tokenId();
        }
        return out;
    }

    /** The target distribution, computed directly: softmax(l/T), keep top-k, then the top-p nucleus, renormalize. */
    static double[] referenceDistribution(float[] logits, float t, int k, float p) {
        int n = logits.length;
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] prob = new double[n];
        double z = 0;
        for (int i = 0; i < n; i++) {
            prob[i] = Math.exp((logits[i] - max) / t);
            z += prob[i];
        }
        for (int i = 0; i < n; i++) {
            prob[i] /= z;
        }
        Integer[] order = IntStream.range(0, n).boxed().sorted(
                Comparator.comparingDouble((Integer i) -> -prob[i]).thenComparingInt(i -> i)).toArray(Integer[]::new);
        int keep = k > 0 ? Math.min(k, n) : n;
        double kept = 0;
        for (int i = 0; i < keep; i++) {
            kept += prob[order[i]];
        }
        int nucleus = 0;
        double mass = 0;
        while (nucleus < keep && (nucleus == 0 || mass < p * kept)) {
            mass += prob[order[nucleus++]];
        }
        double[] out = new double[n];
        for (int i = 0; i < nucleus; i++) {
            out[order[i]] = prob[order[i]] / mass;
        }
        return out;
    }

    @Test
    void empiricalFrequenciesMatchTheTargetDistribution() {
        float[] logits = randomLogits(new Random(4), 12, 1.2f);
        record Case(float t, int k, float p) {
        }
        int draws = 100_000;
        for (Case c : List.of(new Case(1f, 0, 1f), new Case(0.7f, 5, 1f), new Case(1.3f, 0, 0.8f),
                new Case(1f, 6, 0.7f), new Case(2f, 0, 0.3f))) {
            double[] expected = referenceDistribution(logits, c.t(), c.k(), c.p());
            Sampler s = new Sampler(new SamplingParams(c.t(), c.k(), c.p(), 99, 0));
            int[] counts = new int[logits.length];
            for (int i = 0; i < draws; i++) {
                counts[s.sample(logits).tokenId()]++;
            }
            for (int i = 0; i < logits.length; i++) {
                double f = counts[i] / (double) draws;
                double sigma = Math.sqrt(expected[i] * (1 - expected[i]) / draws);
                if (expected[i] == 0) {
                    assertEquals(0, counts[i], c + ": token " + i + " is outside the kept set");
                } else {
                    assertTrue(Math.abs(f - expected[i]) <= 5 * sigma + 1e-4,
                            c + ": token " + i + " frequency " + f + " expected " + expected[i]);
                }
            }
        }
    }

    @Test
    void logprobsAreLogSoftmaxOfRawLogits() {
        Random rnd = new Random(6);
        for (float t : new float[]{0f, 0.8f}) {
            Sampler s = new Sampler(new SamplingParams(t, 0, 1f, 7, 5));
            for (int round = 0; round < 20; round++) {
                float[] logits = randomLogits(rnd, 200, 4);
                logits[17] = logits[3] = 30f; // a tie at the top: lower id first
                double max = 30;
                double z = 0;
                for (float l : logits) {
                    z += Math.exp(l - max);
                }
                double logZ = max + Math.log(z);
                Sampler.Sample sample = s.sample(logits);
                assertEquals(logits[sample.tokenId()] - logZ, sample.logprob(), 1e-5);
                assertEquals(5, sample.top().size());
                assertEquals(3, sample.top().get(0).tokenId());
                assertEquals(17, sample.top().get(1).tokenId());
                Integer[] order = IntStream.range(0, logits.length).boxed().sorted(
                        Comparator.comparingDouble((Integer i) -> -logits[i]).thenComparingInt(i -> i))
                        .toArray(Integer[]::new);
                for (int i = 0; i < 5; i++) {
                    TokenLogprob top = sample.top().get(i);
                    assertEquals((int) order[i], top.tokenId());
                    assertEquals(logits[order[i]] - logZ, top.logprob(), 1e-5);
                }
            }
        }
    }

    @Test
    void rejectsBadParams() {
        assertThrows(IllegalArgumentException.class, () -> new Sampler(new SamplingParams(-1f, 0, 1f, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> new Sampler(new SamplingParams(Float.NaN, 0, 1f, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> new Sampler(new SamplingParams(1f, -1, 1f, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> new Sampler(new SamplingParams(1f, 0, 0f, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> new Sampler(new SamplingParams(1f, 0, 1.5f, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> new Sampler(new SamplingParams(1f, 0, 1f, 0, -2)));
    }
}
