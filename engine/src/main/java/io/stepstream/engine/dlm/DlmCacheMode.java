package io.stepstream.engine.dlm;

import java.util.Locale;

/**
 * Fast-dLLM's approximate KV cache for a diffusion LM (see {@link LladaGeneration} for exactly what is recomputed
 * when). A bidirectional model's keys and values change whenever any token of the canvas changes, so reusing them
 * is an approximation: the tokens are not expected to equal those of {@link #NONE}.
 *
 * <p>Where this differs from Fast-dLLM's own code (llada/generate.py), and why: PREFIX steps recompute the block
 * and the whole suffix, as that code does (not the block alone); the kept entry spans the whole canvas in both modes
 * (the recomputed rows are written into it, so one attention loop serves both); random draws cover the block's
 * positions only, in {@link LladaGeneration}'s documented order (Fast-dLLM draws torch noise over every position it
 * ran, so its streams could not be matched anyway); a fixed-schedule block still ends after steps / blocks passes
 * (Fast-dLLM loops until no mask is left, which differs only when the model commits the mask id itself, where its
 * schedule would run out); ties in confidence go to the lower position (torch.topk leaves them unspecified); a
 * request whose entry the bounded {@link DlmKvCache} refuses runs those steps uncached; and the cache is not
 * combined with SparseD.
 */
public enum DlmCacheMode {
    /** Every step runs the whole canvas (LLaDA; exact). */
    NONE,
    /**
     * Fast-dLLM {@code use_cache}: the first step of a block runs the whole canvas and keeps every layer's keys and
     * values of the positions before the block; the other steps of the block run the block and everything after
     * it, attending to those kept keys and values plus their own fresh ones.
     */
    PREFIX,
    /**
     * Fast-dLLM {@code dual_cache}: as PREFIX, but the positions after the block are kept too, so the other steps
     * run only the block's positions and attend to the kept prefix and suffix plus the block's fresh keys and values.
     */
    DUAL;

    /** The wire / command-line spelling: none, prefix, dual (any case); null or blank means NONE. */
    public static DlmCacheMode parse(String s) {
        if (s == null || s.isBlank()) {
            return NONE;
        }
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "none" -> NONE;
            case "prefix" -> PREFIX;
            case "dual" -> DUAL;
            default -> throw new IllegalArgumentException("cache must be none, prefix or dual, got '" + s + "'");
        };
    }

    /** The wire spelling. */
    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
