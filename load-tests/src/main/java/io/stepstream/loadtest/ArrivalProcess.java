package io.stepstream.loadtest;

import java.util.random.RandomGenerator;

/**
 * Inter-arrival gaps of an open-loop request stream at a mean rate, as vLLM's serving benchmark draws them:
 * gamma distributed with shape = burstiness and scale = 1 / (rate * burstiness), so the mean gap is always
 * 1 / rate while the burstiness sets the spread (coefficient of variation 1 / sqrt(burstiness)).
 * Burstiness 1 is a Poisson process (exponential gaps); below 1 arrivals clump, above 1 they even out.
 * An infinite rate sends everything at once (every gap is zero).
 *
 * <p>The random generator is injected so a fixed seed gives a fixed schedule. Not thread-safe: one caller
 * (the dispatcher) draws the gaps.
 */
public final class ArrivalProcess {

    private final double ratePerSecond;
    private final double burstiness;
    private final RandomGenerator random;

    public ArrivalProcess(double ratePerSecond, double burstiness, RandomGenerator random) {
        if (!(ratePerSecond > 0)) {
            throw new IllegalArgumentException("rate must be > 0 requests/s (or infinite), got " + ratePerSecond);
        }
        if (!(burstiness > 0) || Double.isInfinite(burstiness)) {
            throw new IllegalArgumentException("burstiness must be a finite number > 0, got " + burstiness);
        }
        this.ratePerSecond = ratePerSecond;
        this.burstiness = burstiness;
        this.random = random;
    }

    public double ratePerSecond() {
        return ratePerSecond;
    }

    public double burstiness() {
        return burstiness;
    }

    /** The next gap between two arrivals, in seconds. */
    public double nextGapSeconds() {
        if (Double.isInfinite(ratePerSecond)) {
            return 0.0;
        }
        double scale = 1.0 / (ratePerSecond * burstiness);
        return gamma(random, burstiness) * scale;
    }

    /** The next gap between two arrivals, in nanoseconds (rounded). */
    public long nextGapNanos() {
        return Math.round(nextGapSeconds() * 1e9);
    }

    /**
     * Offsets from the start of the run at which each of {@code count} requests is sent: the first goes at
     * once, each later one a fresh gap after the one before.
     */
    public long[] scheduleNanos(int count) {
        long[] offsets = new long[count];
        long at = 0;
        for (int i = 0; i < count; i++) {
            if (i > 0) {
                at += nextGapNanos();
            }
            offsets[i] = at;
        }
        return offsets;
    }

    /**
     * A draw from Gamma(shape, 1). Shape 1 is the exponential distribution, drawn directly. Otherwise
     * Marsaglia and Tsang's squeeze method (shape >= 1); a shape below 1 draws Gamma(shape + 1) and scales it
     * by U^(1/shape), which keeps the same method valid there.
     */
    static double gamma(RandomGenerator random, double shape) {
        if (shape == 1.0) {
            return random.nextExponential();
        }
        if (shape < 1.0) {
            double u = 1.0 - random.nextDouble(); // in (0, 1]: never log(0)
            return gamma(random, shape + 1.0) * Math.pow(u, 1.0 / shape);
        }
        double d = shape - 1.0 / 3.0;
        double c = 1.0 / Math.sqrt(9.0 * d);
        while (true) {
            double x = random.nextGaussian();
            double v = 1.0 + c * x;
            if (v <= 0) {
                continue;
            }
            v = v * v * v;
            double u = 1.0 - random.nextDouble();
            double x2 = x * x;
            // Cheap squeeze first; the log test only for the few draws the squeeze cannot decide.
            if (u < 1.0 - 0.0331 * x2 * x2) {
                return d * v;
            }
            if (Math.log(u) < 0.5 * x2 + d * (1.0 - v + Math.log(v))) {
                return d * v;
            }
        }
    }
}
