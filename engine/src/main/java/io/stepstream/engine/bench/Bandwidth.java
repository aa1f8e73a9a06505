package io.stepstream.engine.bench;

import io.stepstream.engine.cpu.ComputePool;

/**
 * The memory bandwidth a step is measured against: a STREAM-style triad {@code a[i] = b[i] + s * c[i]} over
 * arrays far larger than the last-level cache, split over the same number of threads as the engine, best of
 * several passes. Bytes are counted as STREAM counts them: two arrays read and one written per element
 * (12 bytes; the write-allocate read some CPUs add is not counted).
 */
public final class Bandwidth {
    /** Bytes moved per triad element. */
    public static final int TRIAD_BYTES_PER_ELEMENT = 12;

    private Bandwidth() {
    }

    private static void triad(float[] a, float[] b, float[] c, int from, int to) {
        for (int i = from; i < to; i++) {
            a[i] = b[i] + 3f * c[i];
        }
    }

    /** Bytes of a triad over {@code elements} floats. */
    public static long triadBytes(long elements) {
        if (elements < 0) {
            throw new IllegalArgumentException("elements must be >= 0, got " + elements);
        }
        return TRIAD_BYTES_PER_ELEMENT * elements;
    }

    /** Bytes per second of moving {@code bytes} in {@code nanos}. */
    public static double bytesPerSecond(long bytes, long nanos) {
        if (nanos <= 0) {
            throw new IllegalArgumentException("nanos must be > 0, got " + nanos);
        }
        return bytes * 1e9 / nanos;
    }

    /**
     * The fraction of the bandwidth limit a step reached: (weight bytes per step / step time) / bandwidth; 1.0
     * means the step ran as fast as the triad moves bytes.
     */
    public static double fractionOfLimit(long bytesPerStep, double secondsPerStep, double bandwidthBytesPerSecond) {
        if (bytesPerStep < 0 || !(secondsPerStep > 0) || !(bandwidthBytesPerSecond > 0)) {
            throw new IllegalArgumentException("need bytes >= 0, step time > 0 and bandwidth > 0: " + bytesPerStep
                    + " bytes, " + secondsPerStep + " s, " + bandwidthBytesPerSecond + " B/s");
        }
        return bytesPerStep / secondsPerStep / bandwidthBytesPerSecond;
    }

    /**
     * Measures the triad with {@code threads} threads over three arrays of {@code elements} floats; returns the
     * best bytes per second over {@code passes} passes (after one untimed pass that touches every page).
     */
    public static double measureTriad(int threads, int elements, int passes) {
        if (threads < 1 || elements < threads || passes < 1) {
            throw new IllegalArgumentException("triad needs threads >= 1, elements >= threads, passes >= 1: "
                    + threads + ", " + elements + ", " + passes);
        }
        float[] a = new float[elements];
        float[] b = new float[elements];
        float[] c = new float[elements];
        for (int i = 0; i < elements; i++) {
            b[i] = i & 1023;
            c[i] = 1f;
        }
        long best = Long.MAX_VALUE;
        try (ComputePool pool = new ComputePool(threads, "stepstream-triad")) {
            int grain = (elements + threads - 1) / threads;
            ComputePool.RangeTask triad = (from, to, worker) -> triad(a, b, c, from, to);
            // get the loop compiled (vectorized) on a cache-sized slice before the timed passes
            for (int i = 0; i < 20_000; i++) {
                triad(a, b, c, 0, Math.min(elements, 4096));
            }
            pool.run(triad, elements, grain, true);
            for (int p = 0; p < passes; p++) {
                long t0 = System.nanoTime();
                pool.run(triad, elements, grain, true);
                best = Math.min(best, System.nanoTime() - t0);
            }
        }
        if (a[elements - 1] != b[elements - 1] + 3f) {
            throw new IllegalStateException("triad result is wrong");
        }
        return bytesPerSecond(triadBytes(elements), best);
    }
}
