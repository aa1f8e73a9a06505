package io.stepstream.engine;

/**
 * How a loaded model runs on this machine.
 *
 * @param computeThreads    threads of the model's own compute pool, counting the caller's thread (1 = caller only)
 * @param kvBlocks          blocks in the KV block pool; 0 means enough for {@link #DEFAULT_FULL_SEQUENCES}
 *                          sequences of full context length
 * @param parallelThreshold multiply-adds below which a kernel stays on the caller's thread (splitting tiny
 *                          work over threads costs more than it saves)
 */
public record ModelOptions(int computeThreads, int kvBlocks, long parallelThreshold) {
    public static final int DEFAULT_FULL_SEQUENCES = 256;

    public ModelOptions {
        if (computeThreads < 1) {
            throw new IllegalArgumentException("computeThreads must be >= 1, got " + computeThreads);
        }
        if (kvBlocks < 0) {
            throw new IllegalArgumentException("kvBlocks must be >= 0 (0 = default), got " + kvBlocks);
        }
        if (parallelThreshold < 0) {
            throw new IllegalArgumentException("parallelThreshold must be >= 0, got " + parallelThreshold);
        }
    }

    /** Up to 8 threads (never more than the machine's cores), default pool, split above 256K multiply-adds. */
    public static ModelOptions defaults() {
        return new ModelOptions(Math.clamp(Runtime.getRuntime().availableProcessors(), 1, 8), 0, 1L << 18);
    }

    public ModelOptions withComputeThreads(int threads) {
        return new ModelOptions(threads, kvBlocks, parallelThreshold);
    }

    public ModelOptions withKvBlocks(int blocks) {
        return new ModelOptions(computeThreads, blocks, parallelThreshold);
    }

    public ModelOptions withParallelThreshold(long threshold) {
        return new ModelOptions(computeThreads, kvBlocks, threshold);
    }
}
