package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.SparseDPolicy;

/**
 * Settings of one LLaDA generation. Errors name the field as the wire protocol spells it.
 *
 * @param genLength   gen_length: mask tokens appended to the prompt, all of which get filled
 * @param blockLength block_length: the canvas after the prompt is filled block by block (semi-autoregressive);
 *                    equal to gen_length means one block
 * @param steps       steps: forward passes in all, split evenly over the blocks (ignored by threshold decoding,
 *                    but still validated so a request means the same with and without a threshold)
 * @param temperature temperature: 0 picks the argmax; above 0, Gumbel-max sampling in float64
 * @param remasking   remasking: how the positions to commit are scored
 * @param threshold   threshold: null for LLaDA's fixed schedule; else Fast-dLLM decoding, committing every masked
 *                    position of the block whose confidence is at least this (and always the most confident one)
 * @param seed        seed of the request's own random stream (Gumbel noise, random remasking)
 * @param sparseD     null (the default) for dense attention at every step; else SparseD's settings: dense early
 *                    steps, then a per-head block pattern built once and reused (see {@link SparseDPolicy})
 * @param cache       cache: Fast-dLLM's approximate KV cache (NONE, the default, runs the whole canvas every step;
 *                    PREFIX / DUAL, see {@link DlmCacheMode}); not combined with SparseD
 */
public record DiffusionParams(int genLength, int blockLength, int steps, double temperature, Remasking remasking,
                              Double threshold, long seed, SparseDPolicy sparseD, DlmCacheMode cache) {
    public DiffusionParams {
        if (genLength < 1) {
            throw new IllegalArgumentException("gen_length must be >= 1, got " + genLength);
        }
        if (blockLength < 1) {
            throw new IllegalArgumentException("block_length must be >= 1, got " + blockLength);
        }
        if (genLength % blockLength != 0) {
            throw new IllegalArgumentException("gen_length " + genLength + " must be a multiple of block_length "
                    + blockLength);
        }
        int blocks = genLength / blockLength;
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be >= 1, got " + steps);
        }
        if (steps % blocks != 0) {
            throw new IllegalArgumentException("steps " + steps + " must be divisible by the number of blocks "
                    + blocks + " (gen_length / block_length)");
        }
        // LLaDA asks for steps <= gen_length; per block that means every step commits at least one token.
        if (steps > genLength) {
            throw new IllegalArgumentException("steps " + steps + " must be <= gen_length " + genLength
                    + " (a step commits at least one token)");
        }
        if (!(temperature >= 0) || !Double.isFinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + temperature);
        }
        if (remasking == null) {
            throw new IllegalArgumentException("remasking must be LOW_CONFIDENCE or RANDOM, got null");
        }
        if (threshold != null && !(threshold > 0 && threshold <= 1)) {
            throw new IllegalArgumentException("threshold must be in (0, 1] (or absent), got " + threshold);
        }
        if (cache == null) {
            throw new IllegalArgumentException("cache must be NONE, PREFIX or DUAL, got null");
        }
        if (cache != DlmCacheMode.NONE && sparseD != null) {
            throw new IllegalArgumentException("cache " + cache.wireName() + " cannot be combined with sparse_d"
                    + " (SparseD's patterns are built over the whole canvas every step)");
        }
    }

    /** Without the Fast-dLLM cache. */
    public DiffusionParams(int genLength, int blockLength, int steps, double temperature, Remasking remasking,
                           Double threshold, long seed, SparseDPolicy sparseD) {
        this(genLength, blockLength, steps, temperature, remasking, threshold, seed, sparseD, DlmCacheMode.NONE);
    }

    /** Dense attention (no SparseD). */
    public DiffusionParams(int genLength, int blockLength, int steps, double temperature, Remasking remasking,
                           Double threshold, long seed) {
        this(genLength, blockLength, steps, temperature, remasking, threshold, seed, null, DlmCacheMode.NONE);
    }

    /** LLaDA's defaults: 128 tokens in one block, 128 steps, greedy, low-confidence remasking, no threshold. */
    public static DiffusionParams defaults() {
        return new DiffusionParams(128, 128, 128, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
    }

    public int numBlocks() {
        return genLength / blockLength;
    }

    public int stepsPerBlock() {
        return steps / numBlocks();
    }

    public DiffusionParams withGenLength(int genLength, int blockLength, int steps) {
        return new DiffusionParams(genLength, blockLength, steps, temperature, remasking, threshold, seed, sparseD,
                cache);
    }

    public DiffusionParams withTemperature(double temperature, long seed) {
        return new DiffusionParams(genLength, blockLength, steps, temperature, remasking, threshold, seed, sparseD,
                cache);
    }

    public DiffusionParams withRemasking(Remasking remasking) {
        return new DiffusionParams(genLength, blockLength, steps, temperature, remasking, threshold, seed, sparseD,
                cache);
    }

    /** The same settings with SparseD attention ({@code null}: dense). */
    public DiffusionParams withSparseD(SparseDPolicy sparseD) {
        return new DiffusionParams(genLength, blockLength, steps, temperature, remasking, threshold, seed, sparseD,
                cache);
    }

    public DiffusionParams withThreshold(Double threshold) {
        return new DiffusionParams(genLength, blockLength, steps, temperature, remasking, threshold, seed, sparseD,
                cache);
    }

    /** The same settings with Fast-dLLM's KV cache ({@code NONE}: the whole canvas every step). */
    public DiffusionParams withCache(DlmCacheMode cache) {
        return new DiffusionParams(genLength, blockLength, steps, temperature, remasking, threshold, seed, sparseD,
                cache);
    }
}
