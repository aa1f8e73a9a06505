package io.stepstream.protocol.cli;

import io.stepstream.protocol.client.DiffusionSettings;
import picocli.CommandLine.Option;

/**
 * The diffusion options that {@code stepstream generate} and the load harness share ({@code --gen-length},
 * {@code --block-length}, {@code --steps}, {@code --remasking}, {@code --threshold}, {@code --dlm-cache},
 * {@code --sparsed} and its {@code --sparsed-*} settings), as a picocli mixin. An option left out stays null and
 * the server applies its default; the server (or the engine in this process) names a bad value.
 */
public final class DiffusionFlags {
    @Option(names = "--gen-length", paramLabel = "N",
            description = "Diffusion models: tokens to generate (default min(128, what the context leaves)).")
    Integer genLength;

    @Option(names = "--block-length", paramLabel = "N",
            description = "Diffusion models: fill and stream the canvas in blocks of N (default: one block).")
    Integer blockLength;

    @Option(names = "--steps", paramLabel = "N",
            description = "Diffusion models: forward passes in all, split over the blocks (default: gen length).")
    Integer steps;

    @Option(names = "--remasking", paramLabel = "low_confidence|random",
            description = "Diffusion models: which masked positions each step commits (default low_confidence).")
    String remasking;

    @Option(names = "--threshold", paramLabel = "T",
            description = "Diffusion models: Fast-dLLM decoding, commit every position with confidence >= T in (0, 1].")
    Double threshold;

    @Option(names = "--dlm-cache", paramLabel = "none|prefix|dual",
            description = "Diffusion models: Fast-dLLM's approximate KV cache (default none).")
    String dlmCache;

    @Option(names = "--sparsed", description = "Diffusion models: SparseD attention (dense early steps, then a cached"
            + " per-head block pattern); the --sparsed-* options imply it.")
    boolean sparsed;

    @Option(names = "--sparsed-skip", paramLabel = "F",
            description = "SparseD: fraction of steps that run dense before the pattern is built, in [0, 1] (default 0.2).")
    Double sparsedSkip;

    @Option(names = "--sparsed-select", paramLabel = "F",
            description = "SparseD: fraction of key blocks each query block keeps, in (0, 1] (default 0.3; 1 = dense).")
    Double sparsedSelect;

    @Option(names = "--sparsed-block", paramLabel = "N",
            description = "SparseD: tokens per block, 1 .. prompt + gen length (default 128 from 2048-token canvases,"
                    + " 32 below).")
    Integer sparsedBlock;

    /** True when any of these options was given. */
    public boolean given() {
        return genLength != null || blockLength != null || steps != null || remasking != null || threshold != null
                || dlmCache != null || sparsedSettings() != null;
    }

    /** The SparseD settings, or null for dense attention (neither --sparsed nor a --sparsed-* option). */
    public DiffusionSettings.SparseD sparsedSettings() {
        boolean withSparseD = sparsed || sparsedSkip != null || sparsedSelect != null || sparsedBlock != null;
        return withSparseD ? new DiffusionSettings.SparseD(sparsedSkip, sparsedSelect, sparsedBlock) : null;
    }

    /** These options with Dream's and the progress flag, which only {@code generate} takes. */
    public DiffusionSettings settings(String alg, Double algTemp, Double eps, boolean progress) {
        return new DiffusionSettings(genLength, blockLength, steps, remasking, threshold, sparsedSettings(), alg,
                algTemp, eps, dlmCache, progress);
    }

    /** These options alone (no Dream settings, no progress events). */
    public DiffusionSettings settings() {
        return settings(null, null, null, false);
    }
}
