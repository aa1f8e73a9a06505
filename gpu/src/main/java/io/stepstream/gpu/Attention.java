package io.stepstream.gpu;

import java.util.Locale;

/**
 * How a hand step (direct dispatch, every pass a hand kernel) computes a layer's attention: step.cl's three passes
 * (scores into att, softmax in place, weighted sum of values) or the one tiled kernel {@code attn_tiled} (a
 * work-group per entry, KV head and tile of query rows, keys streamed through local memory with an online
 * softmax). {@link #AUTO} picks per step by {@link #tiledFor}. Chosen per model by the system property
 * {@value #PROPERTY}; the Aparapi passes (other dispatch, {@code handPasses=matmul}) always run the three passes.
 */
public enum Attention {
    /** The tiled kernel wherever it can compute the step (see {@link #tiledFor}). */
    TILED,
    /** Always the three passes. */
    PASSES,
    /**
     * The default: today the same as {@link #TILED}. It once kept decode steps (one query row per entry) on the
     * three passes; the H200 then measured decode steps too (1.1B f32, 128 steps, attention ms a step): three
     * passes 1.12 / 1.10 / 1.10 / 1.30 / 1.51 at batch 1 / 2 / 4 / 8 / 16 against 0.48 / 0.48 / 0.48 / 0.49 / 0.50
     * tiled (the kvGroup query heads of a KV head share each key and value read), 1.92 vs 0.50 at 32.
     */
    AUTO;

    /** System property naming the mode: {@code tiled}, {@code passes} or {@code auto} (default). */
    public static final String PROPERTY = "stepstream.opencl.attention";

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** {@code tiled}, {@code passes} or {@code auto} (any case); anything else is an error naming them. */
    public static Attention parse(String s) {
        String v = s == null ? "" : s.strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "tiled" -> TILED;
            case "passes" -> PASSES;
            case "auto" -> AUTO;
            default -> throw new IllegalArgumentException(PROPERTY + " must be tiled, passes or auto, got '" + s + "'");
        };
    }

    /** The mode the property asks for, else AUTO. */
    public static Attention fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? AUTO : parse(v);
    }

    /**
     * Whether a step runs the tiled kernel. Never when {@code headSize} is not a multiple of 4 (the kernel moves
     * float4s), when some entry has a block-sparse pattern ({@code entryIndptr[e] >= 0}: the passes read the pattern
     * in its order), or when the rows of an entry are not one run with entries ascending ({@code tokenSeq}
     * non-decreasing in 0..entries-1: the kernel finds an entry's rows by binary search). Otherwise TILED and AUTO
     * always, PASSES never.
     */
    public boolean tiledFor(int headSize, int tokens, int[] tokenSeq, int entries, int[] entryIndptr) {
        if (this == PASSES || headSize % 4 != 0) {
            return false;
        }
        for (int e = 0; e < entries; e++) {
            if (entryIndptr[e] >= 0) {
                return false;
            }
        }
        return maxQueriesPerEntry(tokens, tokenSeq, entries) > 0;
    }

    /**
     * The most rows one entry has among {@code tokenSeq[0 .. tokens)}, or 0 when the rows are not grouped as the
     * tiled kernel needs (entries ascending from 0 below {@code entries}, each entry's rows one run).
     */
    public static int maxQueriesPerEntry(int tokens, int[] tokenSeq, int entries) {
        int most = 0;
        int run = 0;
        for (int t = 0; t < tokens; t++) {
            int e = tokenSeq[t];
            if (e < 0 || e >= entries || (t > 0 && e < tokenSeq[t - 1])) {
                return 0;
            }
            run = t > 0 && e == tokenSeq[t - 1] ? run + 1 : 1;
            most = Math.max(most, run);
        }
        return most;
    }
}
