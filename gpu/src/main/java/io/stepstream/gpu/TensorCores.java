package io.stepstream.gpu;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Whether the F16, Q8_0 and F32 matmuls of the hand path run on tensor cores: the kernels of mmt.cl, whose inner
 * operation is mma.cl's m16n8k16 (F16, Q8_0) or 3xTF32 on m16n8k8 tf32 (F32; inline PTX {@code mma.sync} on NVIDIA, a
 * local-memory emulation elsewhere). They take the
 * passes of at least {@code minTokens} tokens that the matvec kernel does not take (more than
 * MatmulTiles.mvTokens); activations are rounded to f16 on the way in, as PyTorch's fp16 matmul has them (and
 * then by mv and mm of the same program too, so the numerics do not depend on the token count). Q8_0 passes
 * qualify only when their columns and layer strides are multiples of 32 (each 32-column block's mma sum is
 * scaled per row, see mmt.cl); others stay on mm.
 *
 * <p>F32 weights ({@code f32}, {@value #F32_PROPERTY}: {@code off}, the default, or {@code 3xtf32}) may run as
 * 3xTF32: weights and activations stay f32 (no f16 rounding, mv and mm of the same program stay plain fp32), each
 * fragment is split into two tf32s and three mma add lo_w hi_x + hi_w lo_x + hi_w hi_x: about fp32's accuracy
 * (each product within ~3 * 2^-22 relative, see mmt.cl). Off by default: on the H200 3xTF32 beat fp32 {@code mm}
 * on large passes (11264x2048 at 800 tokens 0.94 against 1.47 ms) but whole AR decode at batch 8-64 ran slower
 * (GpuBench 1.1B f32 4,609 against 5,579 tok/s at batch 32), and batch-invariant canvases halve N=1. F32 programs
 * with the default tiers use {@link #F32_DEFAULT_TILES} (K-slices of 32 were faster for F32 on every probed shape);
 * explicit tiers apply as given. Where a tile fits 48 KiB with the activations staged twice ({@value
 * #TF32_STAGE_SPLIT_PROPERTY}, default true) they are split once when staged.
 *
 * <ul>
 *   <li>{@code auto} (default): on when the device is NVIDIA with compute capability 8.0 or more and the PTX
 *       program builds (a failed build is logged once and the passes stay on {@code mm});</li>
 *   <li>{@code off}: never;</li>
 *   <li>{@code emulate}: the emulation on any device (for tests on PoCL: every index of the kernel, not the
 *       instruction; slow on a GPU).</li>
 * </ul>
 * The kernel is built once per {@link Tile} (tier): a pass of n tokens runs the first tier with n <= upTo. The
 * default tiers follow the H200 probe: 16 tokens per group up to 16 tokens, 32 up to 32, 64 above, K-slices of 64.
 * {@value #PROPERTY} picks the mode, {@value #MIN_TOKENS_PROPERTY} the token threshold (default {@value #DEFAULT_MIN_TOKENS}),
 * {@value #TILES_PROPERTY} the tiers as {@code 16:tn=16,tk=64/32:tn=32,tk=64/tn=64,tk=64} ("UPTO:" before all
 * but the last tier; tn: tokens per group, a multiple of 16 up to 128; tk: K-slice, 32, 64 or 128, deeper
 * slices put more weight bytes in flight per group; occ: split-K aims at that many groups per compute unit, up to
 * {@value #MAX_SPLIT} slices, default 2; fr: 1 (default) the last group of a tile adds the split-K partial sums,
 * 0 a second kernel, mm_reduce, does; ks: a split-K fixed for the tier, 0 (default) by MatmulTiles and occ).
 * {@value #FILL_PROPERTY} (default 0, off) lets a pass short of groups take a smaller-tn tier. A spec without tiers ({@code tn=32,tk=64}) is one tile for all counts.
 */
public record TensorCores(Mode mode, int minTokens, List<Tile> tiles, boolean f32, int fill,
                          ShapeSplit shapeSplit) {
    public static final String PROPERTY = "stepstream.opencl.tensorCores";
    /** Whether F32 weights use tensor cores (3xTF32) when the mode lets F16 use them: 3xtf32 (default) or off. */
    public static final String F32_PROPERTY = "stepstream.opencl.f32TensorCores";
    /**
     * A switch of the F32 kernel: {@code true} (default) splits the activations once when they are staged (two
     * tf32 arrays in local memory, (64 + 2 tn) x (tk + 4) words) in tiers where that fits {@link #STAGE_SPLIT_BYTES},
     * instead of in each warp at every use; {@code false} never. The same bits either way. Read when a program is
     * built.
     */
    public static final String TF32_STAGE_SPLIT_PROPERTY = "stepstream.opencl.tf32StageSplit";
    /** The local memory a tier's staging may take for the staged split: OpenCL's (and NVIDIA's) 48 KiB per group. */
    public static final long STAGE_SPLIT_BYTES = 48 * 1024;
    /** F32's tiers when the tiers are the defaults: F16's token tiers with K-slices of 32 (H200 probe). */
    public static final String F32_DEFAULT_TILES = "16:tn=16,tk=32/32:tn=32,tk=32/tn=64,tk=32";
    public static final String MIN_TOKENS_PROPERTY = "stepstream.opencl.tensorCoreMinTokens";
    /**
     * Groups per compute unit that a pass's tier should reach (default 0: off, the tier follows the token count
     * only): with it, a pass whose tier makes fewer groups (few row tiles, e.g. 768 rows at a few hundred tokens,
     * where split-K is off as for diffusion canvases) runs a smaller-tn tier that makes enough. See
     * {@link #tierFor(int, int, int, int)}.
     */
    public static final String FILL_PROPERTY = "stepstream.opencl.tensorCoreFill";
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
    public static final String DEFAULT_TILES = "16:tn=16,tk=64/32:tn=32,tk=64/tn=64,tk=64";

    public enum Mode {
        AUTO, OFF, EMULATE;

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** One kernel build: used for passes of up to {@code upTo} tokens (the last tier: any count). */
    public record Tile(int upTo, int tn, int tk, int occ, boolean fusedReduce, int ks) {
        /** A tier whose split-K follows MatmulTiles and occ (ks 0). */
        public Tile(int upTo, int tn, int tk, int occ, boolean fusedReduce) {
            this(upTo, tn, tk, occ, fusedReduce, 0);
        }

        public Tile {
            if (ks < 0 || ks > MAX_SPLIT) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": ks (a fixed split-K) must be 0 (auto) to "
                        + MAX_SPLIT + ", got " + ks);
            }
            if (upTo < 1) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": a tier's token bound must be >= 1, got " + upTo);
            }
            if (tn < 16 || tn > 128 || tn % 16 != 0) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": tn must be a multiple of 16 from 16 to 128,"
                        + " got " + tn);
            }
            if (tk != 32 && tk != 64 && tk != 128) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": tk must be 32, 64 or 128, got " + tk);
            }
            if (occ < 1 || occ > 16) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": occ must be 1..16, got " + occ);
            }
        }

        /** The OpenCL C macros of this tier's kernel, named {@code name}; {@code f32}: for F32 weights. */
        String macros(String name, boolean f32) {
            return "#define MMT_NAME " + name + "\n#define MMT_TN " + tn + "\n#define MMT_TK " + tk
                    + "\n#define MMT_FUSED " + (fusedReduce ? 1 : 0) + "\n"
                    + (stageSplit(f32) ? "#define MMT_XSPLIT 1\n" : "");
        }

        /** Whether this tier of F32 weights stages the activations split (the switch on, and the tile fits). */
        public boolean stageSplit(boolean f32) {
            return f32 && stageSplitOn() && 4L * (TM + 2L * tn) * (tk + 4) <= STAGE_SPLIT_BYTES;
        }

        /**
         * Local memory of one group for F16 or Q8_0 weights: the staged weights and activations, or the output
         * tile, which reuses them (the larger of the two), and with {@code emulated} the emulation's per-warp scratch.
         */
        public long localBytes(boolean emulated) {
            return localBytes(emulated, false);
        }

        /**
         * As above; {@code f32}: for F32 weights (3xTF32), staged as floats (k, not k-pairs, per uint), the
         * activations twice (hi, lo) where {@link #stageSplit} says so.
         */
        public long localBytes(boolean emulated, boolean f32) {
            long s = f32 ? tk + 4 : tk / 2 + 4;
            long stage = (TM + (stageSplit(f32) ? 2L : 1L) * tn) * s;
            long out = (long) tn * (TM + 1);
            return 4L * ((Math.max(stage, out) + 3) / 4 * 4 + (emulated ? (WG / 32) * 192 : 0));
        }

        public String label() {
            return "mmt" + TM + "x" + tn + "k" + tk + (occ == 2 ? "" : "o" + occ) + (fusedReduce ? "" : "+reduce")
                    + (ks == 0 ? "" : "s" + ks);
        }
    }

    /**
     * Passes of at least this many tokens go to mmt by default. H200, 1.1B (GpuBench, session 7): with mmt from 8
     * tokens instead of 16, batch 8 ran 1,923-1,953 -> 3,540-3,825 tok/s (f16) and 2,008 -> 3,285-3,309 (q8_0); from 4,
     * batch 4 1,523-1,665 -> 1,980-2,065 (f16) and 1,589-1,602 -> 1,753-1,801 (q8_0); from 2, batch 2 was level (f16)
     * and 10% slower (q8_0), so 2-3 tokens stay on the matvec.
     */
    public static final int DEFAULT_MIN_TOKENS = 4;
    public static final TensorCores AUTO = new TensorCores(Mode.AUTO, DEFAULT_MIN_TOKENS, parseTiles(DEFAULT_TILES));
    public static final TensorCores OFF = AUTO.withMode(Mode.OFF);
    public static final TensorCores EMULATE = AUTO.withMode(Mode.EMULATE);

    /** F32 weights off tensor cores (the default; {@link #withF32} turns 3xTF32 on). */
    public TensorCores(Mode mode, int minTokens, List<Tile> tiles) {
        this(mode, minTokens, tiles, false, 0, ShapeSplit.NONE);
    }

    public TensorCores {
        if (shapeSplit == null) {
            throw new IllegalArgumentException(SHAPE_SPLIT_PROPERTY + ": a shape split is required (ShapeSplit.NONE)");
        }
        if (fill < 0 || fill > 64) {
            throw new IllegalArgumentException(FILL_PROPERTY + " must be 0 (off) to 64 groups per compute unit, got "
                    + fill);
        }
        if (mode == null) {
            throw new IllegalArgumentException(PROPERTY + ": a mode is required (auto, off or emulate)");
        }
        if (minTokens < 1) {
            throw new IllegalArgumentException(MIN_TOKENS_PROPERTY + " must be >= 1, got " + minTokens);
        }
        tiles = List.copyOf(tiles);
        if (tiles.isEmpty() || tiles.getLast().upTo() != Integer.MAX_VALUE) {
            throw new IllegalArgumentException(TILES_PROPERTY + ": the last tier must take any token count");
        }
        for (int i = 1; i < tiles.size(); i++) {
            if (tiles.get(i).upTo() <= tiles.get(i - 1).upTo()) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": tier bounds must increase, got "
                        + tiles.get(i - 1).upTo() + " then " + tiles.get(i).upTo());
            }
        }
    }

    public TensorCores withMode(Mode m) {
        return new TensorCores(m, minTokens, tiles, f32, fill, shapeSplit);
    }

    public TensorCores withMinTokens(int tokens) {
        return new TensorCores(mode, tokens, tiles, f32, fill, shapeSplit);
    }

    /** Whether F32 weights use tensor cores (3xTF32) when the mode is not off. */
    public TensorCores withF32(boolean on) {
        return new TensorCores(mode, minTokens, tiles, on, fill, shapeSplit);
    }

    /** One tile of {@code tn} tokens and {@code tk} columns per slice for every token count. */
    public TensorCores withTiles(int tn, int tk) {
        return new TensorCores(mode, minTokens, List.of(new Tile(Integer.MAX_VALUE, tn, tk, 2, true)), f32, fill,
                shapeSplit);
    }

    /** The tiers of {@code spec} (see the class doc); null or blank: unchanged. */
    public TensorCores withTilesSpec(String spec) {
        return spec == null || spec.isBlank() ? this : new TensorCores(mode, minTokens, parseTiles(spec), f32, fill,
                shapeSplit);
    }

    /** These tiers with the split-K sums in mm_reduce (fr=0) everywhere. */
    public TensorCores unfused() {
        return new TensorCores(mode, minTokens, tiles.stream()
                .map(t -> new Tile(t.upTo(), t.tn(), t.tk(), t.occ(), false, t.ks())).toList(), f32,
                fill, shapeSplit);
    }

    /**
     * These settings for a program of weight encoding {@code wtype}: F32 with the default tiers gets
     * {@link #F32_DEFAULT_TILES}; anything else as it is.
     */
    public TensorCores forWeights(int wtype) {
        return wtype == Llama2Kernel.WT_F32 && tiles.equals(AUTO.tiles())
                ? new TensorCores(mode, minTokens, parseTiles(F32_DEFAULT_TILES), f32, fill, shapeSplit) : this;
    }

    /** Whether a program for weight encoding {@code wtype} (Llama2Kernel.WT_*) gets the tensor-core kernels. */
    public boolean appliesTo(int wtype) {
        return mode != Mode.OFF && (wtype == Llama2Kernel.WT_F16 || wtype == Llama2Kernel.WT_Q8_0
                || wtype == Llama2Kernel.WT_F32 && f32);
    }

    /** The tier for a pass of {@code n} tokens. */
    public int tierFor(int n) {
        for (int i = 0; i < tiles.size(); i++) {
            if (n <= tiles.get(i).upTo()) {
                return i;
            }
        }
        return tiles.size() - 1;
    }

    /**
     * A split-K count that follows the matrix's shape only, never the token count, so that a token's result is the
     * same in any batch (diffusion canvases): a slice per {@code cols} columns or more, and no more slices than
     * needed for {@code rows} rows in all (rows x slices up to that), 1 to {@link #MAX_SPLIT}; {@code cols} 0 is
     * off (the tiers' and MatmulTiles' rule).
     */
    public record ShapeSplit(int cols, int rows) {
        public static final ShapeSplit NONE = new ShapeSplit(0, 0);

        public ShapeSplit {
            if (cols < 0 || rows < 0 || (cols > 0) != (rows > 0)) {
                throw new IllegalArgumentException(SHAPE_SPLIT_PROPERTY + ": columns per slice and rows must both be"
                        + " positive (or both 0: off), got " + cols + "/" + rows);
            }
        }

        /** The slices of a {@code rows} x {@code cols} matmul; 0 when off. */
        public int slices(int rows, int cols) {
            if (this.cols == 0) {
                return 0;
            }
            int byCols = Math.max(1, cols / this.cols);
            int byRows = Math.max(1, (this.rows + rows - 1) / rows);
            return Math.min(MAX_SPLIT, Math.min(byCols, byRows));
        }

        /** {@code off}, {@code auto} ({@link #AUTO_SPLIT}) or {@code COLS/ROWS}. */
        public static ShapeSplit parse(String v) {
            String s = v == null ? "" : v.strip().toLowerCase(Locale.ROOT);
            if (s.isEmpty() || s.equals("off") || s.equals("1")) {
                return NONE;
            }
            if (s.equals("auto")) {
                return AUTO_SPLIT;
            }
            String[] parts = s.split("/");
            try {
                if (parts.length == 2) {
                    return new ShapeSplit(Integer.parseInt(parts[0].strip()), Integer.parseInt(parts[1].strip()));
                }
            } catch (NumberFormatException e) {
                // the message below
            }
            throw new IllegalArgumentException(SHAPE_SPLIT_PROPERTY + " must be off, auto or COLS/ROWS (columns per"
                    + " slice at least / rows x slices up to), got '" + v + "'");
        }

        public String label() {
            return cols == 0 ? "off" : cols + "/" + rows;
        }
    }

    /**
     * The diffusion canvases' split-K (DeviceCanvases, batch-invariant mode): {@code off} (default, one K-slice),
     * {@code auto} ({@link #AUTO_SPLIT}) or {@code COLS/ROWS} (see {@link ShapeSplit}).
     */
    public static final String SHAPE_SPLIT_PROPERTY = "stepstream.opencl.canvasSplit";
    /** 256 columns a slice or more, rows x slices up to 3072: 768x768 in 3, 768x2048 in 4, 2304x768 in 2. */
    public static final ShapeSplit AUTO_SPLIT = new ShapeSplit(256, 3072);

    /** These settings with split-K by shape ({@link ShapeSplit}; NONE: off). */
    public TensorCores withShapeSplit(ShapeSplit split) {
        return new TensorCores(mode, minTokens, tiles, f32, fill, split);
    }

    /**
     * The split-K of a {@code rows} x {@code cols} pass on tier {@code tier}, when it does not depend on the token
     * count: the tier's fixed ks, else the shape split; 0 when neither is set (MatmulTiles' rule applies). Capped
     * at the tier's K-slices in the columns.
     */
    public int fixedSplit(int tier, int rows, int cols) {
        Tile t = tiles.get(tier);
        int s = t.ks() > 0 ? t.ks() : shapeSplit.slices(rows, cols);
        return s == 0 ? 0 : Math.max(1, Math.min(s, (cols + t.tk() - 1) / t.tk()));
    }

    /** These settings aiming at {@code groups} groups per compute unit (0: off; see {@link #FILL_PROPERTY}). */
    public TensorCores withFill(int groups) {
        return new TensorCores(mode, minTokens, tiles, f32, groups, shapeSplit);
    }

    /**
     * The tier for a pass of {@code n} tokens of a {@code rows} x {@code cols} matrix on {@code computeUnits}:
     * {@link #tierFor(int)}, or with {@link #fill} on and that tier's groups (row tiles x token tiles x a fixed
     * split-K, {@link #fixedSplit}) short of fill per compute unit, the tier of the largest tn below it that
     * reaches that many (else the one with the most groups). A row's result does not depend on the tier where the
     * K-slices start at the same columns (tiers of one tk, a split that does not follow the token count): the
     * same mma in the same order.
     */
    public int tierFor(int n, int rows, int cols, int computeUnits) {
        int base = tierFor(n);
        if (fill == 0) {
            return base;
        }
        int rowTiles = (rows + TM - 1) / TM;
        long want = (long) fill * computeUnits;
        int baseTn = tiles.get(base).tn();
        int pick = -1; // the largest tn (at most the base tier's; the base tier among equals) reaching the target
        int most = base; // else the most groups
        long mostGroups = 0;
        for (int i = 0; i < tiles.size(); i++) {
            Tile t = tiles.get(i);
            if (t.tn() > baseTn) {
                continue;
            }
            long groups = (long) rowTiles * ((n + t.tn() - 1) / t.tn()) * Math.max(1, fixedSplit(i, rows, cols));
            if (groups >= want && (pick < 0 || t.tn() > tiles.get(pick).tn()
                    || t.tn() == tiles.get(pick).tn() && i == base)) {
                pick = i;
            }
            if (groups > mostGroups || groups == mostGroups && i == base) {
                mostGroups = groups;
                most = i;
            }
        }
        return pick >= 0 ? pick : most;
    }

    /** Tiers separated by '/', each {@code [UPTO:]tn=N,tk=N[,occ=N]}; only the last one without UPTO. */
    static List<Tile> parseTiles(String spec) {
        List<Tile> out = new ArrayList<>();
        String[] tiers = spec.split("/");
        for (int i = 0; i < tiers.length; i++) {
            String tier = tiers[i].strip();
            int upTo = Integer.MAX_VALUE;
            int colon = tier.indexOf(':');
            if (colon >= 0) {
                upTo = intOf(tier.substring(0, colon), tier);
                tier = tier.substring(colon + 1);
            } else if (i < tiers.length - 1) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": tier '" + tiers[i] + "' needs 'UPTO:' (all"
                        + " but the last tier)");
            }
            int tn = 64;
            int tk = 64;
            int occ = 2;
            int fused = 1;
            int ks = 0;
            for (String pair : tier.split(",")) {
                String[] kv = pair.split("=", 2);
                String key = kv[0].strip().toLowerCase(Locale.ROOT);
                if (kv.length != 2 || !(key.equals("tn") || key.equals("tk") || key.equals("occ") || key.equals("fr")
                        || key.equals("ks"))) {
                    throw new IllegalArgumentException(TILES_PROPERTY + ": '" + pair + "' is not tn=N, tk=N, occ=N,"
                            + " fr=0|1 or ks=N");
                }
                int value = intOf(kv[1], pair);
                switch (key) {
                    case "tn" -> tn = value;
                    case "tk" -> tk = value;
                    case "occ" -> occ = value;
                    case "ks" -> ks = value;
                    default -> fused = value;
                }
            }
            if (fused != 0 && fused != 1) {
                throw new IllegalArgumentException(TILES_PROPERTY + ": fr must be 0 or 1, got " + fused);
            }
            out.add(new Tile(colon >= 0 && i == tiers.length - 1 ? Integer.MAX_VALUE : upTo, tn, tk, occ, fused == 1,
                    ks));
        }
        return out;
    }

    private static int intOf(String v, String context) {
        try {
            return Integer.parseInt(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(TILES_PROPERTY + ": '" + context + "' has no integer value");
        }
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

    /** {@value #F32_PROPERTY}: off (false, blank: the default) or 3xtf32 (on, true). */
    public static boolean parseF32(String v) {
        String s = v == null ? "" : v.strip().toLowerCase(Locale.ROOT);
        return switch (s) {
            case "3xtf32", "on", "true" -> true;
            case "", "off", "false" -> false;
            default -> throw new IllegalArgumentException(F32_PROPERTY + " must be 3xtf32 or off, got '" + v + "'");
        };
    }

    /** The properties on top of {@link #AUTO}. */
    public static TensorCores fromSystemProperties() {
        TensorCores tc = AUTO.withMode(parseMode(System.getProperty(PROPERTY)))
                .withF32(parseF32(System.getProperty(F32_PROPERTY)));
        String min = System.getProperty(MIN_TOKENS_PROPERTY);
        if (min != null && !min.isBlank()) {
            try {
                tc = tc.withMinTokens(Integer.parseInt(min.strip()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(MIN_TOKENS_PROPERTY + " must be an integer, got '" + min + "'");
            }
        }
        String fill = System.getProperty(FILL_PROPERTY);
        if (fill != null && !fill.isBlank()) {
            try {
                tc = tc.withFill(Integer.parseInt(fill.strip()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(FILL_PROPERTY + " must be an integer, got '" + fill + "'");
            }
        }
        return tc.withTilesSpec(System.getProperty(TILES_PROPERTY));
    }

    /**
     * The -D options that add the tensor-core kernels to a matmul.cl build of F16 or Q8_0 weights; {@code ptx}: 0
     * emulation, 1 or 2 PTX. XH makes mv and mm round the activations to f16 too, so the numerics do not depend on
     * the token count.
     */
    public String defines(int ptx) {
        return defines(ptx, Llama2Kernel.WT_F16);
    }

    /** As above for weight encoding {@code wtype}: F32 (3xTF32) has no XH, its activations stay f32 everywhere. */
    public String defines(int ptx, int wtype) {
        return " -DMMT=1" + (wtype == Llama2Kernel.WT_F32 ? "" : " -DXH=1") + (ptx > 0 ? " -DMMA_PTX=" + ptx : "");
    }

    /** Whether {@value #TF32_STAGE_SPLIT_PROPERTY} is true (default true). */
    static boolean stageSplitOn() {
        String v = System.getProperty(TF32_STAGE_SPLIT_PROPERTY, "true").strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "", "false", "off" -> false;
            case "true", "on" -> true;
            default -> throw new IllegalArgumentException(TF32_STAGE_SPLIT_PROPERTY + " must be true or false, got '"
                    + v + "'");
        };
    }

    /**
     * The OpenCL C that follows mma.cl + matmul.cl for weight encoding {@code wtype}: mmt.cl once per tier, as
     * kernels mmt0, mmt1, ...
     */
    String kernelSource(String mmtSource, int wtype) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < tiles.size(); i++) {
            sb.append('\n').append(tiles.get(i).macros("mmt" + i, wtype == Llama2Kernel.WT_F32)).append(mmtSource)
                    .append('\n');
        }
        return sb.toString();
    }

    /** The most local memory any tier's group needs (F16 or Q8_0 weights). */
    public long localBytes(boolean emulated) {
        return localBytes(emulated, Llama2Kernel.WT_F16);
    }

    /** As above for weight encoding {@code wtype} (F32 stages floats: more). */
    public long localBytes(boolean emulated, int wtype) {
        boolean f32Weights = wtype == Llama2Kernel.WT_F32;
        return tiles.stream().mapToLong(t -> t.localBytes(emulated, f32Weights)).max().orElse(0);
    }

    /** E.g. {@code mmt64x16k64<=16,mmt64x32k64<=32,mmt64x64k64} (and {@code ,fill=N} with a fill). */
    public String label() {
        StringBuilder sb = new StringBuilder();
        for (Tile t : tiles) {
            sb.append(sb.isEmpty() ? "" : ",").append(t.label())
                    .append(t.upTo() == Integer.MAX_VALUE ? "" : "<=" + t.upTo());
        }
        return sb + (fill == 0 ? "" : ",fill=" + fill) + (shapeSplit.cols() == 0 ? "" : ",split=" + shapeSplit.label());
    }
}
