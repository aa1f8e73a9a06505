package io.stepstream.engine.bench;

import io.stepstream.engine.cpu.VectorKernels;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Random;

/**
 * Thread CPU time of one 4 x 4 tile's 16 lane sums ({@link VectorKernels#sumTileLanes}), in the form this JVM
 * is configured for ({@code -Dstepstream.cpu.vectorLaneSums=true|false}): best of nine rounds of a million
 * tiles, each tile refilled from a pool of random accumulators first (the refill is timed on its own and
 * subtracted). No arguments.
 */
public final class TileSumCpuTime {
    private static final int TILES = 1_000_000;

    private TileSumCpuTime() {
    }

    public static void main(String[] args) {
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        int n = 16 * VectorKernels.LANES;
        float[] pool = new float[64 * n];
        Random rnd = new Random(3);
        for (int i = 0; i < pool.length; i++) {
            pool[i] = (float) rnd.nextGaussian();
        }
        float[] lanes = new float[n];
        float sink = 0;
        double bestSum = Double.MAX_VALUE;
        double bestCopy = Double.MAX_VALUE;
        for (int round = 0; round < 9; round++) {
            long t0 = threads.getCurrentThreadCpuTime();
            for (int i = 0; i < TILES; i++) {
                System.arraycopy(pool, (i & 63) * n, lanes, 0, n);
                sink += lanes[i & 15];
            }
            long t1 = threads.getCurrentThreadCpuTime();
            for (int i = 0; i < TILES; i++) {
                System.arraycopy(pool, (i & 63) * n, lanes, 0, n);
                VectorKernels.sumTileLanes(lanes);
                sink += lanes[i & 15];
            }
            long t2 = threads.getCurrentThreadCpuTime();
            bestCopy = Math.min(bestCopy, (t1 - t0) / (double) TILES);
            bestSum = Math.min(bestSum, (t2 - t1) / (double) TILES);
        }
        System.out.printf("%d lanes, vector tile sums %s: %.1f ns per tile (refill %.1f ns subtracted; sink %s)%n",
                VectorKernels.LANES, VectorKernels.VECTOR_TILE_SUMS, bestSum - bestCopy, bestCopy, sink != 0);
    }
}
