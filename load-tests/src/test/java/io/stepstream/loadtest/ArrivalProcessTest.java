package io.stepstream.loadtest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** The arrival generator's statistics over many draws with fixed seeds; no threads, no clock. */
class ArrivalProcessTest {

    private static final int SAMPLES = 200_000;

    @ParameterizedTest
    @ValueSource(doubles = {0.25, 0.5, 1.0, 2.0, 4.0})
    void meanGapIsOneOverRateAndSpreadFollowsBurstiness(double burstiness) {
        double rate = 8.0;
        ArrivalProcess arrivals = new ArrivalProcess(rate, burstiness, new SplittableRandom(42));
        double[] gaps = new double[SAMPLES];
        for (int i = 0; i < SAMPLES; i++) {
            gaps[i] = arrivals.nextGapSeconds();
            assertTrue(gaps[i] >= 0, "gap " + i + " is negative: " + gaps[i]);
        }
        double mean = Arrays.stream(gaps).average().orElseThrow();
        double variance = Arrays.stream(gaps).map(g -> (g - mean) * (g - mean)).sum() / (SAMPLES - 1);
        // Gamma(shape B, scale 1/(R B)): mean 1/R, squared coefficient of variation 1/B.
        assertEquals(1.0 / rate, mean, 0.015 / rate, "mean gap, burstiness " + burstiness);
        assertEquals(1.0 / burstiness, variance / (mean * mean), 0.05 / burstiness, "CV^2, burstiness " + burstiness);
    }

    @Test
    void poissonGapsAreExponential() {
        double rate = 3.0;
        ArrivalProcess arrivals = new ArrivalProcess(rate, 1.0, new SplittableRandom(7));
        int belowMean = 0;
        int belowHalfMean = 0;
        for (int i = 0; i < SAMPLES; i++) {
            double gap = arrivals.nextGapSeconds();
            if (gap < 1.0 / rate) {
                belowMean++;
            }
            if (gap < 0.5 / rate) {
                belowHalfMean++;
            }
        }
        // Exponential CDF: P(X < m) = 1 - 1/e, P(X < m/2) = 1 - e^-1/2.
        assertEquals(1 - Math.exp(-1), (double) belowMean / SAMPLES, 0.005);
        assertEquals(1 - Math.exp(-0.5), (double) belowHalfMean / SAMPLES, 0.005);
    }

    /** Quantiles of the Marsaglia-Tsang sampler against plain constructions of the same distribution. */
    @ParameterizedTest
    @ValueSource(ints = {2, 3, 5})
    void gammaOfIntegerShapeMatchesSumOfExponentials(int shape) {
        SplittableRandom sampler = new SplittableRandom(11 + shape);
        SplittableRandom reference = new SplittableRandom(1000 + shape);
        assertSameQuantiles(() -> ArrivalProcess.gamma(sampler, shape), () -> {
            double sum = 0;
            for (int k = 0; k < shape; k++) {
                sum += -Math.log(1.0 - reference.nextDouble());
            }
            return sum;
        }, "shape " + shape);
    }

    @Test
    void gammaOfShapeOneHalfMatchesHalfASquaredNormal() {
        // Gamma(1/2, 1) is chi-square with one degree of freedom, halved.
        SplittableRandom sampler = new SplittableRandom(5);
        SplittableRandom reference = new SplittableRandom(6);
        assertSameQuantiles(() -> ArrivalProcess.gamma(sampler, 0.5), () -> {
            double z = reference.nextGaussian();
            return z * z / 2;
        }, "shape 0.5");
    }

    private static void assertSameQuantiles(DoubleSupplier sampler, DoubleSupplier reference, String what) {
        double[] a = new double[SAMPLES];
        double[] b = new double[SAMPLES];
        for (int i = 0; i < SAMPLES; i++) {
            a[i] = sampler.getAsDouble();
            b[i] = reference.getAsDouble();
        }
        Arrays.sort(a);
        Arrays.sort(b);
        // Two-sample comparison of CDFs: the fraction of the sampler's draws below each reference quantile
        // should be that quantile (standard error ~0.0016 for two samples of this size).
        for (double q : new double[] {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99}) {
            double x = b[(int) (q * SAMPLES)];
            int below = Arrays.binarySearch(a, x);
            below = below >= 0 ? below : -below - 1;
            assertEquals(q, (double) below / SAMPLES, 0.006, what + ", fraction below the reference " + q + " quantile");
        }
    }

    @Test
    void scheduleStartsAtZeroIsNonDecreasingAndRepeatsForASeed() {
        long[] first = new ArrivalProcess(20, 0.5, new SplittableRandom(99)).scheduleNanos(500);
        long[] again = new ArrivalProcess(20, 0.5, new SplittableRandom(99)).scheduleNanos(500);
        long[] other = new ArrivalProcess(20, 0.5, new SplittableRandom(100)).scheduleNanos(500);
        assertEquals(0, first[0]);
        for (int i = 1; i < first.length; i++) {
            assertTrue(first[i] >= first[i - 1], "schedule goes back at " + i);
        }
        assertArrayEquals(first, again);
        assertTrue(!Arrays.equals(first, other), "a different seed should give a different schedule");
        // 499 gaps of mean 50 ms: the last arrival near 24.95 s (generous: CV of the sum is ~6%).
        assertEquals(24.95e9, first[499], 0.3 * 24.95e9);
    }

    @Test
    void infiniteRateSendsEverythingAtOnce() {
        long[] schedule = new ArrivalProcess(Double.POSITIVE_INFINITY, 1.0, new SplittableRandom(1)).scheduleNanos(10);
        assertArrayEquals(new long[10], schedule);
    }

    @Test
    void badParametersAreRefusedWithTheReason() {
        var rate = assertThrows(IllegalArgumentException.class, () -> new ArrivalProcess(0, 1, new SplittableRandom()));
        assertTrue(rate.getMessage().contains("rate"), rate.getMessage());
        var shape = assertThrows(IllegalArgumentException.class, () -> new ArrivalProcess(1, -2, new SplittableRandom()));
        assertTrue(shape.getMessage().contains("burstiness"), shape.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new ArrivalProcess(Double.NaN, 1, new SplittableRandom()));
    }
}
