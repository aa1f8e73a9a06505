package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClDevice;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The compile-time shape of the hand matmul kernels (matmul.cl's macros): the matvec kernel {@code mv} for up to
 * {@code mvTokens} tokens ({@code mvWg} work items, {@code mvLpr} lanes per weight row, {@code mvUnroll} vector
 * loads in flight per lane) and the register-tiled {@code mm} (tile {@code tm} rows x {@code tn} tokens, K-slice
 * {@code tk}, {@code rm} x {@code rn} per work item), and its split-K {@code ks}: 0 = auto (split the columns
 * into slices, added by a second small kernel, when the tiles alone give fewer than two groups per compute
 * unit), 1 = never, N = always N slices (a run-time choice, not a macro). One program build per value; the host sizes its ranges
 * from the same record. {@value #PROPERTY} overrides fields as {@code name=value} pairs, e.g.
 * {@code -Dstepstream.opencl.matmulTiles=tm=64,tn=32,rm=4,rn=4}.
 */
public record MatmulTiles(int mvWg, int mvLpr, int mvTokens, int mvUnroll, int tm, int tn, int tk, int rm, int rn,
                          int ks) {
    public static final String PROPERTY = "stepstream.opencl.matmulTiles";
    /** Overrides, on top of the small-pass tiles, for passes of at least {@link #LARGE_ROWS} rows. */
    public static final String LARGE_PROPERTY = "stepstream.opencl.matmulTilesLarge";
    /** Passes with at least this many (virtual) rows use the large tiles. */
    public static final int LARGE_ROWS = 8192;
    /** What the large passes change by default: on the H200 64-row tiles of 4x4 per item ran the 32000 x 2048
     * classifier fastest at 8-32 tokens, while 32-row tiles stayed best on 2048-row matrices. */
    public static final String LARGE_DEFAULT = "tm=64,rm=4,rn=4";
    /** Overrides, on top of the small-pass tiles, for the matvec of passes with long weight rows. */
    public static final String LONG_ROWS_PROPERTY = "stepstream.opencl.matmulTilesLongRows";
    /** Passes of at least this many columns at most {@value #LONG_ROWS_TOKENS_PROPERTY} tokens use those tiles. */
    public static final String LONG_ROWS_MIN_COLS_PROPERTY = "stepstream.opencl.longRowCols";
    public static final String LONG_ROWS_TOKENS_PROPERTY = "stepstream.opencl.longRowTokens";
    public static final int LONG_ROWS_MIN_COLS = 4096;
    public static final int LONG_ROWS_MAX_TOKENS = 4;
    /**
     * Passes of at least {@value #LONG_ROWS_MIN_COLS_PROPERTY} columns run a matvec (either build) only up to this many
     * tokens, the tiled kernel above. Default {@value #LONG_ROWS_MV_MAX_TOKENS}, i.e. the matvec's own limit: on the
     * H200 (1.1B W2, 2048 x 5632, ms a step at 8 tokens) the plain 8-token matvec runs f16 1.01, q8_0 0.90, f32 1.35
     * against mm's 1.94 / 1.66 / 1.34 (batch 8 tok/s f16 1,858 vs 1,513, q8_0 1,930 vs 1,641). A cap of 4 measured
     * better only while the matvec also carried the fused norm's registers.
     */
    public static final String LONG_ROWS_MV_MAX_TOKENS_PROPERTY = "stepstream.opencl.longRowMvMaxTokens";
    public static final int LONG_ROWS_MV_MAX_TOKENS = 8;
    /** What long-row matvecs change by default: on the H200, 64 lanes a row with two loads in flight ran the 1.1B
     * shape's W2 (2048 x 5632, 22 layers) in 0.48 / 0.61 / 0.91 / 1.47 ms a step at 1 / 2 / 4 / 8 tokens against
     * 0.69 / 0.82 / 1.12 / 1.35 with 32 lanes (f32; f16 alike), hence up to 4 tokens. */
    public static final String LONG_ROWS_DEFAULT = "mv_lpr=64,mv_unroll=2";
    /** Matvec tiers built below mvTokens (mv.cl is instantiated for each; mvTokens is the last tier). */
    static final int[] MV_POWER_TIERS = {1, 2, 4, 8};
    /** Matvec groups of 128 items (4 rows of 32 lanes): on the H200 as fast or faster than 256 at tiers 1-4 on every
     * 1.1B shape (2048x5632 at 2 tokens 0.0276 vs 0.0415 ms), about equal at 8. */
    public static final MatmulTiles DEFAULT = new MatmulTiles(128, 32, 8, 4, 32, 32, 32, 2, 4, 0);

    public MatmulTiles {
        require(mvWg > 0 && mvLpr > 0 && Integer.bitCount(mvLpr) == 1 && mvWg % mvLpr == 0
                && (mvWg / mvLpr) % 2 == 0, "mv_wg must be a multiple of mv_lpr (a power of two) by an even row count");
        require(mvTokens >= 1 && mvTokens <= 16, "mv_tokens must be 1..16");
        require(mvUnroll >= 1 && mvUnroll <= 16, "mv_unroll must be 1..16");
        require(tm > 0 && rm > 0 && rm % 2 == 0 && tm % rm == 0, "rm must be even and divide tm");
        require(tn > 0 && rn > 0 && tn % rn == 0, "rn must divide tn");
        require(tk > 0 && tk % 4 == 0, "tk must be a positive multiple of 4");
        require(ks >= 0 && ks <= 64, "ks must be 0 (auto), 1 (off) or a slice count up to 64");
    }

    private static void require(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(PROPERTY + ": " + what);
        }
    }

    /**
     * Column slices for a tiled matmul of {@code tileGroups} groups over {@code cols} columns on a device of
     * {@code computeUnits}: {@code ks} if set, else enough to reach two groups per compute unit (at most 8, and
     * at least two K-slices of tk columns each).
     */
    public int splitFor(int tileGroups, int cols, int computeUnits) {
        return splitFor(tileGroups, cols, computeUnits, tk, ks);
    }

    /** As above for a kernel with K-slices of {@code tk} columns (the tensor-core kernel's differ from mm's). */
    static int splitFor(int tileGroups, int cols, int computeUnits, int tk, int ks) {
        return splitFor(tileGroups, cols, computeUnits, tk, ks, 2, 8);
    }

    /** As above, aiming at {@code groupsPerUnit} groups per compute unit with at most {@code maxSplit} slices. */
    static int splitFor(int tileGroups, int cols, int computeUnits, int tk, int ks, int groupsPerUnit, int maxSplit) {
        int maxSlices = Math.max(1, (cols + tk - 1) / tk);
        if (ks > 0) {
            return Math.min(ks, maxSlices);
        }
        int target = groupsPerUnit * Math.max(1, computeUnits);
        if (tileGroups >= target) {
            return 1;
        }
        int want = (target + tileGroups - 1) / tileGroups;
        return Math.max(1, Math.min(Math.min(maxSplit, want), Math.max(1, cols / (2 * tk))));
    }

    /** Work items per group of the tiled kernel. */
    public int mmWg() {
        return (tm / rm) * (tn / rn);
    }

    /** Rows one matvec group covers. */
    public int mvRows() {
        return mvWg / mvLpr;
    }

    /** Local memory of the tiled kernel (the two staged K-slices, padded by one column). */
    public long mmLocalBytes() {
        return (long) tk * (tm + 1 + tn + 1) * Float.BYTES;
    }

    /** Local memory of the largest matvec tier: per token, a slot of lane sums and one of the fused norm's x^2 sums. */
    public long mvLocalBytes() {
        return 2L * mvTokens * mvWg * Float.BYTES;
    }

    /**
     * The matvec's token tiers, ascending: those of {@link #MV_POWER_TIERS} below mvTokens, then mvTokens. Each is a
     * kernel {@code mv_t<tokens>} with that many accumulators; n tokens run on the smallest tier >= n.
     */
    public int[] mvTiers() {
        return java.util.stream.IntStream.concat(
                java.util.Arrays.stream(MV_POWER_TIERS).filter(t -> t < mvTokens),
                java.util.stream.IntStream.of(mvTokens)).toArray();
    }

    /** The -D options of the program build for weight encoding {@code wtype} (Llama2Kernel.WT_*). */
    public String defines(int wtype) {
        return "-DWT=" + wtype + " -DMV_WG=" + mvWg + " -DMV_LPR=" + mvLpr + " -DMV_TOKENS=" + mvTokens
                + " -DMV_UNROLL=" + mvUnroll + " -DTM=" + tm + " -DTN=" + tn + " -DTK=" + tk + " -DRM=" + rm
                + " -DRN=" + rn;
    }

    /** Fails with the limit that is exceeded unless the device takes both kernels' groups and local memory. */
    public void check(ClDevice device) {
        long maxWg = device.maxWorkGroupSize();
        if (mvWg > maxWg || mmWg() > maxWg) {
            throw new IllegalArgumentException(PROPERTY + ": work-groups of " + mvWg + " (mv) and " + mmWg()
                    + " (mm) items; " + device.name().strip() + " takes at most " + maxWg);
        }
        long local = device.localMemBytes();
        if (mmLocalBytes() > local || mvLocalBytes() > local) {
            throw new IllegalArgumentException(PROPERTY + ": " + mmLocalBytes() + " (mm) / " + mvLocalBytes()
                    + " (mv) bytes of local memory; " + device.name().strip() + " has " + local);
        }
    }

    /** This record with the {@code name=value} pairs of {@code spec} (comma separated) applied. */
    public MatmulTiles with(String spec) {
        Map<String, Integer> v = new LinkedHashMap<>(Map.of("mv_wg", mvWg, "mv_lpr", mvLpr, "mv_tokens", mvTokens,
                "mv_unroll", mvUnroll, "tm", tm, "tn", tn, "tk", tk, "rm", rm, "rn", rn));
        v.put("ks", ks);
        if (spec != null && !spec.isBlank()) {
            for (String pair : spec.split(",")) {
                String[] kv = pair.split("=", 2);
                String key = kv[0].strip().toLowerCase(Locale.ROOT);
                if (kv.length != 2 || !v.containsKey(key)) {
                    throw new IllegalArgumentException(PROPERTY + ": '" + pair + "' is not name=value with a name of "
                            + v.keySet());
                }
                try {
                    v.put(key, Integer.parseInt(kv[1].strip()));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(PROPERTY + ": '" + pair + "' has no integer value");
                }
            }
        }
        return new MatmulTiles(v.get("mv_wg"), v.get("mv_lpr"), v.get("mv_tokens"), v.get("mv_unroll"), v.get("tm"),
                v.get("tn"), v.get("tk"), v.get("rm"), v.get("rn"), v.get("ks"));
    }

    public static MatmulTiles fromSystemProperty() {
        return DEFAULT.with(System.getProperty(PROPERTY));
    }

    /** The tiles of large passes: {@code base} with {@link #LARGE_DEFAULT}, then {@value #LARGE_PROPERTY}. */
    public static MatmulTiles largeFromSystemProperty(MatmulTiles base) {
        return base.with(LARGE_DEFAULT).with(System.getProperty(LARGE_PROPERTY));
    }

    /** The matvec tiles of long-row passes: {@code base} with {@link #LONG_ROWS_DEFAULT}, then {@value #LONG_ROWS_PROPERTY}. */
    public static MatmulTiles longRowsFromSystemProperty(MatmulTiles base) {
        // 64 lanes a row need a group of at least two rows of them; 256 items (4 rows) is the group the H200 measured
        // this build with, kept when the small passes' matvec went to 128.
        return base.with("mv_wg=" + Math.max(base.mvWg(), 256) + "," + LONG_ROWS_DEFAULT)
                .with(System.getProperty(LONG_ROWS_PROPERTY));
    }

    /**
     * When a pass takes the long-row matvec: rows of at least {@code minCols} columns, at most {@code maxTokens}
     * tokens (0 turns it off). {@code minCols}/{@code maxTokens} come from {@link #longRowsPolicyFromSystemProperties}.
     */
    public record LongRows(MatmulTiles tiles, int minCols, int maxTokens) {
        public LongRows {
            if (minCols < 4 || maxTokens < 0 || maxTokens > tiles.mvTokens()) {
                throw new IllegalArgumentException(LONG_ROWS_MIN_COLS_PROPERTY + "/" + LONG_ROWS_TOKENS_PROPERTY
                        + ": need columns >= 4 and tokens 0.." + tiles.mvTokens() + ", got " + minCols + " / " + maxTokens);
            }
        }

        public boolean covers(int cols) {
            return maxTokens > 0 && cols >= minCols;
        }

        public boolean takes(int cols, int tokens) {
            return covers(cols) && tokens <= maxTokens;
        }

        /** Off: every pass keeps the small-pass matvec. */
        public static LongRows off(MatmulTiles base) {
            return new LongRows(base, LONG_ROWS_MIN_COLS, 0);
        }
    }

    /** The long-row policy of the system properties, with {@code base} as the small-pass tiles. */
    public static LongRows longRowsPolicyFromSystemProperties(MatmulTiles base) {
        MatmulTiles tiles = longRowsFromSystemProperty(base);
        // The matvec takes at most mvTokens tokens: a larger threshold means "whenever the matvec runs".
        return new LongRows(tiles, Integer.getInteger(LONG_ROWS_MIN_COLS_PROPERTY, LONG_ROWS_MIN_COLS),
                Math.min(tiles.mvTokens(), Integer.getInteger(LONG_ROWS_TOKENS_PROPERTY, LONG_ROWS_MAX_TOKENS)));
    }

    /** Compact label, e.g. {@code mv128/32x8u4 mm32x32k32r2x4}. */
    public String label() {
        return "mv" + mvWg + "/" + mvLpr + "x" + mvTokens + "u" + mvUnroll + " mm" + tm + "x" + tn + "k" + tk + "r" + rm
                + "x" + rn + (ks == 0 ? "" : "s" + ks);
    }
}
