package io.stepstream.gpu;

import java.util.Locale;

/**
 * Whether the F16 matmuls of the hand path run on tensor cores: matmul.cl's {@code mmt} kernel, whose inner
 * operation is mma.cl's m16n8k16 (inline PTX {@code mma.sync} on NVIDIA, a local-memory emulation elsewhere).
 * It takes passes of at least {@code minTokens} tokens that the matvec kernel does not take (more than
 * MatmulTiles.mvTokens); activations are rounded to f16 on the way in, as PyTorch's fp16 matmul has them.
 *
 * <ul>
 *   <li>{@code auto} (default): on when the device is NVIDIA with compute capability 8.0 or more and the PTX
 *       program builds (a failed build is logged once and the pass stays on {@code mm});</li>
 *   <li>{@code off}: never;</li>
 *   <li>{@code emulate}: the emulation on any device (for tests on PoCL: every index of the kernel, not the
 *       instruction; slow on a GPU).</li>
 * </ul>
 * {@value #PROPERTY} picks the mode, {@value #MIN_TOKENS_PROPERTY} the token threshold (default 16),
 * {@value #TILES_PROPERTY} the kernel's tile as {@code tn=64,tk=32,occ=2} (tokens per group: a multiple of 16 up
 * to 128; K-slice: 32, 64 or 128: deeper slices put more weight bytes in flight per group, fewer barriers; occ:
 * split-K aims at that many groups per compute unit, up to {@value #MAX_SPLIT} slices).
 */
public record TensorCores(Mode mode, int minTokens, int tn, int tk, int occ) {
    public static final String PROPERTY = "stepstream.opencl.tensorCores";
    public static final String MIN_TOKENS_PROPERTY = "stepstream.opencl.tensorCoreMinTokens";
    public static final String TILES_PROPERTY = "stepstream.opencl.tensorCoreTiles";
    /** Rows of one mmt group (4 warps of 16 rows). */
    public static final int TM = 64;
    /** Work items of one mmt group. */
    public static final int WG = 128;
    /** The least compute capability (major * 10 + minor) with mma.sync m16n8k16 f16 -> f32. */
    public static final int MIN_COMPUTE_CAPABILITY = 80;
    /**
     * Most split-K slices of an mmt pass: a slice's partial sums are n x rows floats, small next to the weights at
     * decode batches, so mmt may split deeper than mm (8) to have enough groups in flight.
     */
    public static final int MAX_SPLIT = 16;

    public enum Mode {
        AUTO, OFF, EMULATE;

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    public static final TensorCores AUTO = new TensorCores(Mode.AUTO, 16, 64, 32, 2);
    public static final TensorCores OFF = AUTO.withMode(Mode.OFF);
    public static final TensorCores EMULATE = AUTO.withMode(Mode.EMULATE);

    public TensorCores {
        if (mode == null) {
            throw new IllegalArgumentException(PROPERTY + ": a mode is required (auto, off or emulate)");
        }
        if (minTokens < 1) {
            throw new IllegalArgumentException(MIN_TOKENS_PROPERTY + " must be >= 1, got " + minTokens);
        }
        if (tn < 16 || tn > 128 || tn % 16 != 0) {
            throw new IllegalArgumentException(TILES_PROPERTY + ": tn must be a multiple of 16 from 16 to 128, got "
                    + tn);
        }
        if (tk != 32 && tk != 64 && tk != 128) {
            throw new IllegalArgumentException(TILES_PROPERTY + ": tk must be 32, 64 or 128, got " + tk);
        }
        if (occ < 1 || occ > 16) {
            throw new IllegalArgumentException(TILES_PROPERTY + ": occ must be 1..16, got " + occ);
        }
    }

    public TensorCores withMode(Mode m) {
        return new TensorCores(m, minTokens, tn, tk, occ);
    }

    public TensorCores withMinTokens(int tokens) {
        return new TensorCores(mode, tokens, tn, tk, occ);
    }

    public TensorCores withTiles(int tokensPerGroup, int kSlice) {
        return new TensorCores(mode, minTokens, tokensPerGroup, kSlice, occ);
    }

    /** With split-K aiming at {@code groupsPerUnit} groups per compute unit. */
    public TensorCores withOcc(int groupsPerUnit) {
        return new TensorCores(mode, minTokens, tn, tk, groupsPerUnit);
    }

    public static Mode parseMode(String v) {
        String s = v == null ? "" : v.strip().toLowerCase(Locale.ROOT);
        return switch (s) {
            case "", "auto" -> Mode.AUTO;
            case "off", "false" -> Mode.OFF;
            case "emulate" -> Mode.EMULATE;
            default -> throw new IllegalArgumentException(PROPERTY + " must be auto, off or emulate, got '" + v + "'");
        };
    }

    /** The three properties on top of {@link #AUTO}. */
    public static TensorCores fromSystemProperties() {
        TensorCores tc = AUTO.withMode(parseMode(System.getProperty(PROPERTY)));
        String min = System.getProperty(MIN_TOKENS_PROPERTY);
        if (min != null && !min.isBlank()) {
            try {
                tc = tc.withMinTokens(Integer.parseInt(min.strip()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(MIN_TOKENS_PROPERTY + " must be an integer, got '" + min + "'");
            }
        }
        return tc.withTilesSpec(System.getProperty(TILES_PROPERTY));
    }

    /** This record with {@code tn=..,tk=..,occ=..} pairs applied (null or blank: unchanged). */
    public TensorCores withTilesSpec(String spec) {
        if (spec == null || spec.isBlank()) {
            return this;
        }
        int n = tn;
        int k = tk;
        int o = occ;
        for (String pair : spec.split(",")) {
            String[] kv = pair.split("=", 2);
            String key = kv[0].strip().toLowerCase(Locale.ROOT);
            int value;
            try {
                value = kv.length == 2 ? Integer.parseInt(kv[1].strip()) : -1;
            } catch (NumberFormatException e) {
                value = -1;
            }
            if (value < 0 || !(key.equals("tn") || key.equals("tk") || key.equals("occ"))) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": '" + pair + "' is not tn=N, tk=N or occ=N");
            }
            switch (key) {
                case "tn" -> n = value;
                case "tk" -> k = value;
                default -> o = value;
            }
        }
        return new TensorCores(mode, minTokens, n, k, o);
    }

    /**
     * The -D options that add mmt to a matmul.cl build (after mma.cl); {@code ptx}: 0 emulation, 1 or 2 PTX. XH
     * makes mv and mm round the activations to f16 too, so the numerics do not depend on the batch's token count.
     */
    public String defines(int ptx) {
        return " -DMMT=1 -DXH=1 -DMMT_TN=" + tn + " -DMMT_TK=" + tk + (ptx > 0 ? " -DMMA_PTX=" + ptx : "");
    }

    /**
     * Local memory of one mmt group: the staged weights and activations, or the output tile, which reuses them
     * (the larger of the two), and with {@code emulated} the emulation's per-warp scratch.
     */
    public long localBytes(boolean emulated) {
        long s = tk / 2 + 4;
        long stage = (TM + tn) * s;
        long out = (long) tn * (TM + 1);
        return 4L * ((Math.max(stage, out) + 3) / 4 * 4 + (emulated ? (WG / 32) * 192 : 0));
    }

    public String label() {
        return "mmt" + TM + "x" + tn + "k" + tk + (occ == 2 ? "" : "o" + occ);
    }
}
