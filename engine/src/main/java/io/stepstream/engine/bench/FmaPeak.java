package io.stepstream.engine.bench;

import io.stepstream.engine.cpu.ComputePool;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The arithmetic ceiling a batched step is measured against: float32 fused multiply-adds per second on the widest
 * vectors the JVM offers, with as many threads as the engine, best of several passes. Each thread runs ten
 * independent accumulator chains in registers (no memory traffic), enough to cover the FMA latency on two FMA
 * pipes. A step of B sequences multiplies every weight by B tokens, so from some batch size on it is bound by
 * this rate, not by the memory bandwidth: the bench reports both fractions.
 */
public final class FmaPeak {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    /** Independent accumulator vectors per thread. */
    static final int CHAINS = 10;

    private FmaPeak() {
    }

    /**
     * {@code iterations} rounds of one FMA on each of the {@link #CHAINS} accumulators, a = a * 0.5 + 1: every
     * chain converges to 2, which the caller checks (a result that the JIT could not have skipped).
     */
    static float chains(long iterations) {
        FloatVector half = FloatVector.broadcast(SPECIES, 0.5f);
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        FloatVector a0 = FloatVector.broadcast(SPECIES, 0f);
        FloatVector a1 = a0.add(1);
        FloatVector a2 = a0.add(2);
        FloatVector a3 = a0.add(3);
        FloatVector a4 = a0.add(4);
        FloatVector a5 = a0.add(5);
        FloatVector a6 = a0.add(6);
        FloatVector a7 = a0.add(7);
        FloatVector a8 = a0.add(8);
        FloatVector a9 = a0.add(9);
        for (long i = 0; i < iterations; i++) {
            a0 = a0.fma(half, one);
            a1 = a1.fma(half, one);
            a2 = a2.fma(half, one);
            a3 = a3.fma(half, one);
            a4 = a4.fma(half, one);
            a5 = a5.fma(half, one);
            a6 = a6.fma(half, one);
            a7 = a7.fma(half, one);
            a8 = a8.fma(half, one);
            a9 = a9.fma(half, one);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9)
                .reduceLanes(VectorOperators.ADD);
    }

    /** Floating-point operations (2 per FMA lane) of {@link #chains} over {@code iterations}. */
    static double flops(long iterations) {
        return 2.0 * CHAINS * SPECIES.length() * iterations;
    }

    /**
     * Measures the FMA rate with {@code threads} threads, each running {@code iterations} rounds, best of
     * {@code passes} passes after an untimed warm-up that gets the loop compiled; returns FLOP/s (2 per FMA lane).
     */
    public static double measure(int threads, long iterations, int passes) {
        if (threads < 1 || iterations < 64 || passes < 1) {
            throw new IllegalArgumentException("FMA peak needs threads >= 1, iterations >= 64, passes >= 1: "
                    + threads + ", " + iterations + ", " + passes);
        }
        float expected = 2f * CHAINS * SPECIES.length();
        float[] results = new float[threads];
        long best = Long.MAX_VALUE;
        try (ComputePool pool = new ComputePool(threads, "stepstream-fma-peak")) {
            ComputePool.RangeTask task = (from, to, worker) -> {
                for (int t = from; t < to; t++) {
                    results[t] = chains(iterations);
                }
            };
            for (int i = 0; i < 2_000; i++) {
                chains(4_096);
            }
            pool.run(task, threads, 1, true);
            for (int p = 0; p < passes; p++) {
                long t0 = System.nanoTime();
                pool.run(task, threads, 1, true);
                best = Math.min(best, System.nanoTime() - t0);
            }
        }
        for (float r : results) {
            if (Math.abs(r - expected) > 1e-3f * expected) {
                throw new IllegalStateException("FMA peak result is wrong: " + r + ", expected " + expected);
            }
        }
        return flops(iterations) * threads * 1e9 / best;
    }
}
