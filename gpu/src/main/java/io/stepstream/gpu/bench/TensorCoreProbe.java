package io.stepstream.gpu.bench;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.MatmulPassProbe;
import io.stepstream.gpu.MatmulProgram;
import io.stepstream.gpu.MatmulTiles;
import io.stepstream.gpu.OpenClDevices;
import io.stepstream.gpu.TensorCores;
import io.stepstream.gpu.Tf32;
import io.stepstream.gpu.OpenClException;
import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Checks the m16n8k16 tensor-core fragment layout of mma.cl on a device: one warp computes one 16 x 8 x 16
 * tile with the inline-PTX {@code mma.sync} (when the device is NVIDIA's, or {@code --ptx on}) and with the
 * local-memory emulation, from inputs in which every A, B and C element is a distinct small integer (exact in
 * f16, every sum exact in f32), and every output element is compared with a float64 reference. A mismatch
 * prints its (row, col), the value, and where in the reference that value belongs (a wrong layout shows as a
 * permutation). A PTX program that does not build prints the OpenCL build log. Exit status 1 on any mismatch
 * or failed build (or, in (b), any mismatch, or no tensor cores where --mode auto wants them), else 0.
 *
 * <p>Then (b), unless {@code --full false}: the whole tensor-core matmul {@code mmt} on random F16 (or, with
 * {@code --dtype}, Q8_0 or F32: 3xTF32) matrices against a float64 reference and timed beside {@code mm} of the same
 * weights (see {@link #full}). F32 variants whose tile needs more than the device's local memory ((64 + tn) x
 * (tk + 4) floats: tk=128 with tn >= 32 on a 48 KiB device) are reported as skipped.
 *
 * <p>Also in (a): the m16n8k8 tf32 layout, 3xTF32 on one tile and cvt.rna.tf32.f32's rounding (see {@link #tf32}).
 *
 * <pre>
 * TensorCoreProbe [--device SEL] [--ptx auto|on|off] [--full true|false]
 *                 [--shapes 2048x2048,11264x2048,2048x5632,32000x2048] [--tokens 16,32,64,128,800]
 *                 [--tiles "default;tn=32,tk=64;..." (DEFAULT_VARIANTS)] [--mode auto|emulate]
 *                 [--dtype f16|q8_0|f32|both|all] [--reps 20] [--warmup 3]
 *                 [--sample-rows 256]
 * </pre>
 * {@code --device}: as MatmulProbe (default: the first GPU, else the first device, e.g. PoCL). {@code --tiles}:
 * mmt variants ({@value TensorCores#TILES_PROPERTY} syntax); {@code --mode emulate} runs (b) on the emulation
 * (any device). mm uses the hand path's tiles for the shape (MatmulTiles' properties). {@code --dtype}: the weight
 * encodings (b) runs, each shape once per encoding (default f16; the probe's columns, multiples of 64, suit
 * Q8_0's 32-column blocks).
 */
public final class TensorCoreProbe {
    /** Rows, columns and depth of one mma tile. */
    static final int M = 16;
    static final int N = 8;
    static final int K = 16;

    /**
     * mmt variants part (b) times by default: the default tiers (TensorCores.DEFAULT_TILES); the same with the
     * split-K sums in mm_reduce (fr=0) instead of the tile's last group; single tiles with deeper K-slices or more
     * groups per compute unit (more weight bytes in flight).
     */
    static final String DEFAULT_VARIANTS = "default;16:tn=16,tk=64,fr=0/32:tn=32,tk=64,fr=0/tn=64,tk=64,fr=0;"
            + "tn=16,tk=128;tn=32,tk=128;tn=32,tk=64,occ=4;tn=64,tk=128";

    record Options(String device, String ptx, boolean full, List<int[]> shapes, int[] tokens,
                   List<TensorCores> variants, TensorCores.Mode mode, List<TensorType> dtypes, int reps, int warmup,
                   int sampleRows) {
        /** f16, q8_0, f32 (3xTF32), both (f16 and q8_0), all, or a comma list of the first three. */
        static List<TensorType> parseDtypes(String v) {
            if (v.equals("both")) {
                return List.of(TensorType.F16, TensorType.Q8_0);
            }
            if (v.equals("all")) {
                return List.of(TensorType.F16, TensorType.Q8_0, TensorType.F32);
            }
            return Arrays.stream(v.split(",")).map(String::strip).map(t -> switch (t) {
                case "f16" -> TensorType.F16;
                case "q8_0", "q8" -> TensorType.Q8_0;
                case "f32" -> TensorType.F32;
                default -> throw new IllegalArgumentException("--dtype must be f16, q8_0, f32, both or all, got " + t);
            }).distinct().toList();
        }

        private static List<TensorCores> parseVariants(String v) {
            return Arrays.stream(v.split(";")).map(String::strip)
                    .map(t -> t.equals("default") ? TensorCores.fromSystemProperties()
                            : TensorCores.fromSystemProperties().withTilesSpec(t)).distinct().toList();
        }

        static Options parse(String[] args) {
            String device = "auto";
            String ptx = "auto";
            boolean full = true;
            List<int[]> shapes = MatmulProbe.Options.parseShapes("2048x2048,11264x2048,2048x5632,32000x2048");
            int[] tokens = {16, 32, 64, 128, 800};
            List<TensorCores> variants = parseVariants(DEFAULT_VARIANTS);
            TensorCores.Mode mode = TensorCores.Mode.AUTO;
            List<TensorType> dtypes = List.of(TensorType.F16);
            int reps = 20;
            int warmup = 3;
            int sampleRows = 256;
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(a + ": missing value");
                }
                String v = args[++i].strip().toLowerCase(Locale.ROOT);
                switch (a) {
                    case "--device" -> device = v;
                    case "--ptx" -> {
                        if (!v.equals("auto") && !v.equals("on") && !v.equals("off")) {
                            throw new IllegalArgumentException("--ptx must be auto, on or off, got " + v);
                        }
                        ptx = v;
                    }
                    case "--full" -> full = Boolean.parseBoolean(v);
                    case "--shapes" -> shapes = MatmulProbe.Options.parseShapes(v);
                    case "--tokens" -> tokens = Arrays.stream(v.split(","))
                            .mapToInt(t -> MatmulProbe.Options.positive("--tokens", t)).toArray();
                    case "--tiles" -> variants = parseVariants(v);
                    case "--mode" -> {
                        mode = TensorCores.parseMode(v);
                        if (mode == TensorCores.Mode.OFF) {
                            throw new IllegalArgumentException("--mode must be auto or emulate");
                        }
                    }
                    case "--dtype" -> dtypes = parseDtypes(v);
                    case "--reps" -> reps = MatmulProbe.Options.positive("--reps", v);
                    case "--warmup" -> warmup = Integer.parseInt(v);
                    case "--sample-rows" -> sampleRows = Integer.parseInt(v);
                    default -> throw new IllegalArgumentException("unknown option " + a
                            + " (see TensorCoreProbe's javadoc)");
                }
            }
            return new Options(device, ptx, full, shapes, tokens, variants, mode, dtypes, reps, warmup, sampleRows);
        }
    }

    /** One timed kernel of part (b): its check against the reference ("-" for mm, which is not checked). */
    record Row(String shape, int tokens, String kernel, double ms, double tflops, double weightGBps, int split,
               double vsMm, String check) {
    }

    /**
     * One tile check: the program variant, whether it built (else the exception message with the build log),
     * and the mismatching elements as printed lines.
     */
    record TileResult(String variant, boolean built, String buildError, List<String> mismatches, int elements,
                      String note) {
        TileResult(String variant, boolean built, String buildError, List<String> mismatches) {
            this(variant, built, buildError, mismatches, M * N, "");
        }

        boolean ok() {
            return built && mismatches.isEmpty();
        }
    }

    /** Values for the rounding check beside random bit patterns: ties, near-ties, signs, subnormals, overflow. */
    static final float[] ROUNDING_CASES = {
            1.0f, -1.0f, 0.0f, -0.0f,
            1.0f + 0x1p-11f, -(1.0f + 0x1p-11f),                    // ties between 1 and 1 + 2^-10: away from zero
            1.0f + 0x1p-11f - 0x1p-23f, 1.0f + 0x1p-11f + 0x1p-23f,  // just below, just above the tie
            1.0f + 3 * 0x1p-11f, -(1.0f + 3 * 0x1p-11f),            // ties at an odd kept place (even would go down)
            2.0f - 0x1p-23f,                                         // rounds up across the exponent
            Float.intBitsToFloat(0x0000_1000), Float.intBitsToFloat(0x8000_1000), // subnormal ties
            Float.intBitsToFloat(0x0000_0fff), Float.intBitsToFloat(0x0000_3000), Float.MIN_VALUE,
            Float.intBitsToFloat(0x007f_ffff),                       // largest subnormal: to the smallest normal
            Float.MAX_VALUE, -Float.MAX_VALUE,                       // round to infinity
            Float.intBitsToFloat(0x7f7f_efff),                       // stays finite
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 3.14159265f, -2.718281828f, 1e-30f, 6.5e4f};

    private TensorCoreProbe() {
    }

    public static void main(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("TensorCoreProbe: " + e.getMessage());
            System.exit(2);
            return;
        }
        System.exit(run(o, System.out) ? 0 : 1);
    }

    /** Runs the checks, printing as it goes; true when every one passed. */
    static boolean run(Options o, PrintStream out) {
        return run(o, out, new ArrayList<>());
    }

    /** As above, adding part (b)'s table rows to {@code rows}. */
    static boolean run(Options o, PrintStream out, List<Row> rows) {
        ClDevice device = ClRuntime.select(o.device());
        int cc = ClRuntime.nvComputeCapability(device);
        out.println("device: " + device + (cc > 0 ? ", compute capability " + cc / 10 + "." + cc % 10 : ""));
        boolean nvidia = device.platformVendor() != null
                && device.platformVendor().toUpperCase(Locale.ROOT).contains("NVIDIA");
        boolean ptx = switch (o.ptx()) {
            case "on" -> true;
            case "off" -> false;
            default -> nvidia;
        };
        boolean ok = true;
        try (ClQueue q = ClQueue.timed(device)) {
            boolean ptxBuilt = false;
            if (ptx) {
                // both spellings of the inline-asm keyword: which one the device's compiler takes is unknown
                boolean tf32Built = false;
                for (int spelling = 1; spelling <= 2; spelling++) {
                    TileResult r = tile(q, spelling);
                    print(r, out);
                    ptxBuilt |= r.built();
                    ok &= !r.built() || r.ok();
                    for (TileResult t : tf32(q, spelling)) {
                        print(t, out);
                        tf32Built |= t.built();
                        ok &= !t.built() || t.ok();
                    }
                }
                if (!tf32Built) {
                    out.println("(a) no PTX spelling of the tf32 mma / cvt.rna built: F32 weights cannot use 3xTF32");
                    ok = false;
                }
                if (!ptxBuilt) {
                    out.println("(a) no PTX spelling built: tensor cores cannot be used on this device");
                    ok = false;
                } else {
                    out.println("(a) membar.gl fence (mmt's fused split-K sum): " + fenceBuilds(q));
                }
            }
            TileResult emulated = tile(q, 0);
            print(emulated, out);
            ok &= emulated.ok();
            for (TileResult t : tf32(q, 0)) {
                print(t, out);
                ok &= t.ok();
            }
        }
        out.flush();
        if (o.full()) {
            ok &= full(o, out, rows);
        }
        out.println(ok ? "RESULT: OK" : "RESULT: FAILED");
        return ok;
    }

    /** Whether mma.cl's inline-PTX device-wide fence builds, with either spelling ("builds" or the logs). */
    static String fenceBuilds(ClQueue q) {
        StringBuilder logs = new StringBuilder();
        for (int spelling = 1; spelling <= 2; spelling++) {
            try {
                q.buildProgram(MatmulProgram.mmaSource() + "\n__kernel void fence_probe(__global int *p) { p[0] = 1;"
                        + " mma_gpu_fence(); p[1] = 2; }\n", "-DMMA_PTX=" + spelling + " -DMMA_FENCE=1");
                return "builds (spelling " + spelling + ")";
            } catch (OpenClException e) {
                logs.append("\n").append(e.getMessage());
            }
        }
        return "DOES NOT BUILD (mmt tiers fall back to mm_reduce):" + logs;
    }

    /**
     * Part (b): the whole mmt kernel on random F16 or Q8_0 matrices, each token count, each tile variant, next to
     * {@code mm} on the same buffers (device ms from profiling events, mean of reps). mmt's output is checked on
     * sampled rows (the first and last row tiles and random others; all rows with --sample-rows 0) for every
     * token against a float64 reference of the weights as stored (f16, or int8 times the block scale; f32) times the
     * f16-rounded activations (F32: the f32 activations; mm's error is printed in the same measure, and (a)'s split
     * tile is the sharp 3xTF32 check): an element fails when it is off by more than cols * 2^-23 of sum |w x| (f32
     * accumulation, even truncating, of exact products; Q8_0 adds one rounding per 32-column block sum and its
     * scaling; a wrong index or scale is off by about the value itself).
     */
    static boolean full(Options o, PrintStream out, List<Row> rows) {
        OpenCLDevice device = OpenClDevices.select(o.device());
        int maxTokens = Arrays.stream(o.tokens()).max().orElse(1);
        boolean ok = true;
        MatmulTiles base = MatmulTiles.fromSystemProperty();
        for (int[] shape : o.shapes()) {
          for (TensorType dtype : o.dtypes()) {
            int nRows = shape[0];
            int cols = shape[1];
            String dt = dtype.name().toLowerCase(Locale.ROOT);
            String name = nRows + "x" + cols + " " + dt;
            long t0 = System.nanoTime();
            Llama2Weights w = MatmulPassProbe.weights(nRows, cols);
            MatmulTiles tiles = nRows >= MatmulTiles.LARGE_ROWS ? MatmulTiles.largeFromSystemProperty(base) : base;
            try (MatmulPassProbe probe = new MatmulPassProbe(device, w, dtype, maxTokens)) {
                out.printf(Locale.ROOT, "(b) %s: set up in %.1f s%n", name, (System.nanoTime() - t0) / 1e9);
                int[] sample = sampleRows(nRows, o.sampleRows());
                float[][] ws = new float[sample.length][];
                for (int i = 0; i < sample.length; i++) {
                    ws[i] = probe.decodedRow(sample[i]);
                }
                long bytes = probe.weightBytes();
                for (int tokens : o.tokens()) {
                    double flop = 2.0 * nRows * cols * tokens;
                    float[] x = probe.input(tokens);
                    if (dtype != TensorType.F32) { // mmt rounds them for F16 and Q8_0; F32 (3xTF32) takes them as f32
                        for (int i = 0; i < x.length; i++) {
                            x[i] = Float.float16ToFloat(Float.floatToFloat16(x[i]));
                        }
                    }
                    double[][][] ref = reference(ws, x, tokens, cols);
                    double mmMs = probe.handMs(tiles, TensorCores.OFF, tokens, o.warmup(), o.reps());
                    // F32: mm's error in mmt's measure (both take the same f32 activations), to set 3xTF32's beside
                    String mmCheck = dtype == TensorType.F32
                            ? "fp32: " + check(probe.output(tokens), ref, sample, nRows, cols).getLast()
                            : String.format(Locale.ROOT, "relDiff %.1e (f32 activations)", relDiff(
                                    probe.output(tokens), ref, sample, nRows));
                    rows.add(new Row(name, tokens, (tokens <= tiles.mvTokens() ? "mv " : "mm ") + tiles.label(), mmMs,
                            flop / mmMs / 1e9, bytes / mmMs / 1e6, probe.lastSplit(tiles, TensorCores.OFF), 1.0,
                            mmCheck));
                    for (TensorCores variant : o.variants()) {
                        // F32: 3xTF32 is what (b) measures (off by default in the engine)
                        TensorCores tc = variant.withMode(o.mode()).withMinTokens(1)
                                .withF32(variant.f32() || dtype == TensorType.F32);
                        double ms;
                        try {
                            ms = probe.handMs(tiles, tc, tokens, o.warmup(), o.reps());
                        } catch (IllegalArgumentException e) { // a tile the device's local memory does not take
                            rows.add(new Row(name, tokens, tc.label() + ": skipped", Double.NaN, Double.NaN,
                                    Double.NaN, 0, Double.NaN, e.getMessage()));
                            continue;
                        }
                        String label = probe.tensorCoreLabel(tiles, tc);
                        if (!probe.lastUsedTensorCores(tiles, tc)) {
                            String why = label.equals("off") ? "tensor cores unavailable (" + o.mode().label()
                                    + "; see the log above)" : "not taken (" + tokens + " tokens go to mv)";
                            rows.add(new Row(name, tokens, tc.label() + ": " + why, ms, flop / ms / 1e9,
                                    bytes / ms / 1e6, 1, mmMs / ms, "-"));
                            ok &= !label.equals("off");
                            continue;
                        }
                        List<String> bad = check(probe.output(tokens), ref, sample, nRows, cols);
                        ok &= bad.size() <= 1; // the last line is the summary
                        // the build (mma.sync / emulated) and the tile of the tier this token count ran
                        String kernel = label.substring(0, label.indexOf(' ')) + " "
                                + probe.lastTile(tiles, tc).label() + (tc.tiles().size() > 1 ? " (tiers)" : "");
                        rows.add(new Row(name, tokens, kernel, ms, flop / ms / 1e9,
                                bytes / ms / 1e6, probe.lastSplit(tiles, tc), mmMs / ms, bad.getLast()));
                        for (String line : bad.subList(0, bad.size() - 1)) {
                            out.println("    " + name + " " + tokens + " tokens " + tc.label() + ": " + line);
                        }
                    }
                    out.print(table(rows.subList(rows.size() - 1 - o.variants().size(), rows.size()), false));
                    out.flush();
                }
            }
          }
        }
        out.print(table(rows, true));
        return ok;
    }

    /** {row sample i}{token}{value, sum |w x|} in float64. */
    private static double[][][] reference(float[][] ws, float[] x, int tokens, int cols) {
        double[][][] ref = new double[ws.length][tokens][2];
        java.util.stream.IntStream.range(0, ws.length).parallel().forEach(i -> {
            for (int t = 0; t < tokens; t++) {
                double s = 0;
                double abs = 0;
                for (int c = 0; c < cols; c++) {
                    double p = (double) ws[i][c] * x[t * cols + c];
                    s += p;
                    abs += Math.abs(p);
                }
                ref[i][t][0] = s;
                ref[i][t][1] = abs;
            }
        });
        return ref;
    }

    /** Mismatch lines (at most 10) and, last, a summary: "ok, max err .. of sum |w x|" or "N MISMATCHES". */
    private static List<String> check(float[] got, double[][][] ref, int[] sample, int nRows, int cols) {
        List<String> lines = new ArrayList<>();
        double bound = cols * 0x1p-23;
        double worst = 0;
        int bad = 0;
        for (int i = 0; i < sample.length; i++) {
            for (int t = 0; t < ref[i].length; t++) {
                double err = Math.abs(got[t * nRows + sample[i]] - ref[i][t][0]);
                double abs = Math.max(ref[i][t][1], Double.MIN_NORMAL);
                worst = Math.max(worst, err / abs);
                if (!(err <= bound * abs)) {
                    if (bad++ < 10) {
                        lines.add(String.format(Locale.ROOT, "MISMATCH (row %d, token %d): got %.6g, expected %.6g"
                                + " (sum |w x| %.4g)", sample[i], t, got[t * nRows + sample[i]], ref[i][t][0], abs));
                    }
                }
            }
        }
        lines.add(bad == 0 ? String.format(Locale.ROOT, "ok, max err %.1e of sum|wx|", worst)
                : bad + " MISMATCHES of " + sample.length * ref[0].length);
        return lines;
    }

    private static double relDiff(float[] got, double[][][] ref, int[] sample, int nRows) {
        double d = 0;
        double m = 0;
        for (int i = 0; i < sample.length; i++) {
            for (int t = 0; t < ref[i].length; t++) {
                d = Math.max(d, Math.abs(got[t * nRows + sample[i]] - ref[i][t][0]));
                m = Math.max(m, Math.abs(ref[i][t][0]));
            }
        }
        return m == 0 ? Double.NaN : d / m;
    }

    /** The first and last 64 rows (a full and the tail tile) and {@code n} random others; all rows for n <= 0. */
    static int[] sampleRows(int rows, int n) {
        if (n <= 0 || n + 128 >= rows) {
            return java.util.stream.IntStream.range(0, rows).toArray();
        }
        java.util.TreeSet<Integer> set = new java.util.TreeSet<>();
        for (int r = 0; r < 64; r++) {
            set.add(r);
            set.add(rows - 1 - r);
        }
        Random random = new Random(rows);
        while (set.size() < n + 128) {
            set.add(random.nextInt(rows));
        }
        return set.stream().mapToInt(Integer::intValue).toArray();
    }

    static String table(List<Row> rows, boolean header) {
        StringBuilder sb = new StringBuilder();
        if (header) {
            sb.append(String.format(Locale.ROOT, "%n%-16s %4s %-44s %9s %8s %8s %5s %6s  %s%n", "shape", "tok", "kernel",
                    "ms", "TFLOP/s", "GB/s", "split", "vsMm",
                    "check vs float64 (f16-rounded activations; f32: as is)"));
        }
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "%-16s %4d %-44s %9.4f %8.2f %8.1f %5d %5.2fx  %s%n", r.shape(),
                    r.tokens(), r.kernel(), r.ms(), r.tflops(), r.weightGBps(), r.split(), r.vsMm(), r.check()));
        }
        if (header) {
            sb.append("(device ms per kernel from profiling events, split-K reduction included; GB/s of the weights as stored;"
                    + " vsMm = mm ms / this ms)\n");
        }
        return sb.toString();
    }

    private static void print(TileResult r, PrintStream out) {
        if (!r.built()) {
            out.println("(a) tile " + r.variant() + ": BUILD FAILED\n" + r.buildError());
            return;
        }
        out.println("(a) " + (r.variant().startsWith("tf32") ? "" : "tile ") + r.variant() + ": "
                + (r.mismatches().isEmpty() ? "all " + r.elements() + " elements match the "
                + (r.variant().contains("rounding") ? "software tf32 rounding" : "float64 reference")
                : r.mismatches().size() + " of " + r.elements() + " elements mismatch") + r.note());
        for (String m : r.mismatches()) {
            out.println("    " + m);
        }
    }

    /**
     * Builds mma.cl with {@code -DMMA_PTX=ptx} (1: {@code asm volatile}, 2: {@code __asm__ __volatile__}) or, for
     * 0, the emulation, runs {@code mma_tile} once on one warp and compares every output element with a float64
     * reference.
     */
    static TileResult tile(ClQueue q, int ptx) {
        String variant = ptx == 0 ? "emulation" : "ptx mma.sync (" + (ptx == 1 ? "asm volatile" : "__asm__") + ")";
        MemorySegment program;
        try {
            program = q.buildProgram(MatmulProgram.mmaSource(), ptx == 0 ? null : "-DMMA_PTX=" + ptx);
        } catch (OpenClException e) {
            return new TileResult(variant, false, e.getMessage(), List.of());
        }
        // Distinct integers: a shuffled range per matrix, so a misplaced element changes the result.
        Random random = new Random(16816);
        float[][] a = shuffled(random, M, K, -128);  // -128..127
        float[][] b = shuffled(random, K, N, -64);   // -64..63
        float[][] c = shuffled(random, M, N, -64);   // -64..63
        int[] aBits = new int[M * K / 2];
        for (int r = 0; r < M; r++) {
            for (int p = 0; p < K / 2; p++) {
                aBits[r * (K / 2) + p] = pack(a[r][2 * p], a[r][2 * p + 1]);
            }
        }
        int[] bBits = new int[K * N / 2];
        for (int col = 0; col < N; col++) {
            for (int p = 0; p < K / 2; p++) {
                bBits[col * (K / 2) + p] = pack(b[2 * p][col], b[2 * p + 1][col]);
            }
        }
        float[] d = runTile(q, program, "mma_tile", MemorySegment.ofArray(aBits), MemorySegment.ofArray(bBits), c);
        double[][] ref = reference(a, b, c);
        return new TileResult(variant, true, null, exactMismatches(d, ref));
    }

    /**
     * Every element of a 16 x 8 tile result {@code d} (row-major) that differs from {@code ref}, with the lane and
     * c-register of the m16n8 C fragment that holds it. The tiles' inputs are integers whose every sum is below
     * 2^24 in magnitude: exact in f32 whatever the summation order, so any difference is a layout error.
     */
    private static List<String> exactMismatches(float[] d, double[][] ref) {
        List<String> mismatches = new ArrayList<>();
        for (int r = 0; r < M; r++) {
            for (int col = 0; col < N; col++) {
                double got = d[r * N + col];
                if (got != ref[r][col]) {
                    mismatches.add(String.format(Locale.ROOT, "(row %d, col %d): got %.1f, expected %.1f%s (lane %d"
                                    + " holds it as c%d)", r, col, got, ref[r][col], whereElse(ref, got),
                            (r % 8) * 4 + col / 2, (r >= 8 ? 2 : 0) + (col & 1)));
                }
            }
        }
        return mismatches;
    }

    /**
     * The TF32 checks of mma.cl built with {@code -DMMA_PTX=ptx} (0: the emulation), on one program:
     * <ol>
     * <li>the m16n8k8 tf32 fragment layout: one mma on distinct small integers (exact in tf32, every sum exact in
     * f32), every output compared with float64 exactly, as {@link #tile};</li>
     * <li>3xTF32 on random normal f32 inputs (not tf32-representable): every output within
     * {@value #SPLIT_BOUND_LOG2}-power-of-two of sum |a b| + |c| of the float64 result (the split loses ~3 * 2^-22
     * of each product, three mma of 8 products and c add ~27 f32 roundings of at most 2^-23 each: ~2^-18; a
     * misplaced hi or lo element, or no split, is off by ~2^-11 or more); the plain 1xTF32 error of the same
     * inputs is printed beside it;</li>
     * <li>{@code mma_tf32} (cvt.rna.tf32.f32 on the device) on {@link #ROUNDING_CASES} and random bit patterns
     * against {@link Tf32#roundBits} (NaN as any NaN; the low 13 bits, which PTX does not promise to clear, are
     * compared cleared and counted when set).</li>
     * </ol>
     */
    static List<TileResult> tf32(ClQueue q, int ptx) {
        String how = ptx == 0 ? "emulation" : "ptx (" + (ptx == 1 ? "asm volatile" : "__asm__") + ")";
        MemorySegment program;
        try {
            program = q.buildProgram(MatmulProgram.mmaSource(), ptx == 0 ? null : "-DMMA_PTX=" + ptx);
        } catch (OpenClException e) {
            return List.of(new TileResult("tf32 " + how, false, e.getMessage(), List.of()));
        }
        List<TileResult> results = new ArrayList<>();
        Random random = new Random(1688);
        // (1) layout: A 16 x 8, B 8 k x 8 cols, C 16 x 8, each a shuffled integer range
        float[][] a = shuffled(random, M, 8, -64);   // -64..63
        float[][] b = shuffled(random, 8, N, -32);   // -32..31
        float[][] c = shuffled(random, M, N, -64);
        double[][] ref = reference(a, b, c);
        float[] d = tf32Tile(q, program, a, b, c, false);
        results.add(new TileResult("tf32 tile " + how, true, null, exactMismatches(d, ref)));
        // (2) 3xTF32 on random normal values
        float[][] ra = gaussian(random, M, 8);
        float[][] rb = gaussian(random, 8, N);
        float[][] rc = gaussian(random, M, N);
        double[][] rref = reference(ra, rb, rc);
        double[][] scale = absReference(ra, rb, rc);
        float[] d3 = tf32Tile(q, program, ra, rb, rc, true);
        float[] d1 = tf32Tile(q, program, ra, rb, rc, false);
        double bound = Math.scalb(1.0, SPLIT_BOUND_LOG2);
        double worst3 = 0;
        double worst1 = 0;
        List<String> over = new ArrayList<>();
        for (int r = 0; r < M; r++) {
            for (int col = 0; col < N; col++) {
                double e3 = Math.abs(d3[r * N + col] - rref[r][col]) / scale[r][col];
                double e1 = Math.abs(d1[r * N + col] - rref[r][col]) / scale[r][col];
                worst3 = Math.max(worst3, e3);
                worst1 = Math.max(worst1, e1);
                if (!(e3 <= bound)) {
                    over.add(String.format(Locale.ROOT, "(row %d, col %d): got %.9g, expected %.9g, error %.2e of"
                            + " sum|ab|+|c| (bound %.2e)", r, col, d3[r * N + col], rref[r][col], e3, bound));
                }
            }
        }
        results.add(new TileResult("tf32 3x split " + how, true, null, over, M * N, String.format(Locale.ROOT,
                " (max error %.2e of sum|ab|+|c|, bound %.2e; one tf32 mma: %.2e)", worst3, bound, worst1)));
        // (3) rounding
        float[] xs = new float[320]; // the cases, then random bit patterns (whole work-groups of 32)
        System.arraycopy(ROUNDING_CASES, 0, xs, 0, ROUNDING_CASES.length);
        for (int i = ROUNDING_CASES.length; i < xs.length; i++) {
            xs[i] = Float.intBitsToFloat(random.nextInt());
        }
        int[] got = tf32Round(q, program, xs);
        List<String> wrong = new ArrayList<>();
        int lowBitsSet = 0;
        for (int i = 0; i < xs.length; i++) {
            int want = Tf32.roundBits(xs[i]);
            boolean nan = Float.isNaN(xs[i]);
            if (nan ? !Float.isNaN(Float.intBitsToFloat(got[i])) : (got[i] & -8192) != want) {
                wrong.add(String.format(Locale.ROOT, "%s (0x%08x): got 0x%08x, expected 0x%08x", xs[i],
                        Float.floatToRawIntBits(xs[i]), got[i], want));
            }
            lowBitsSet += !nan && (got[i] & 8191) != 0 ? 1 : 0;
        }
        results.add(new TileResult("tf32 rounding " + how, true, null, wrong, xs.length,
                lowBitsSet == 0 ? "" : " (" + lowBitsSet + " results with low 13 bits set: mmt masks them)"));
        return results;
    }

    /** 3xTF32's tile bound, as a power of two of sum |a b| + |c| (see {@link #tf32}). */
    static final int SPLIT_BOUND_LOG2 = -18;

    /** Runs mma_tile_tf32 once on one warp: A 16 x 8, B 8 k x 8 cols, C 16 x 8; D row-major. */
    private static float[] tf32Tile(ClQueue q, MemorySegment program, float[][] a, float[][] b, float[][] c,
                                    boolean split) {
        float[] af = new float[M * 8];
        for (int r = 0; r < M; r++) {
            System.arraycopy(a[r], 0, af, r * 8, 8);
        }
        float[] bf = new float[8 * N]; // [col][k]
        for (int col = 0; col < N; col++) {
            for (int k = 0; k < 8; k++) {
                bf[col * 8 + k] = b[k][col];
            }
        }
        return runTile(q, program, "mma_tile_tf32", MemorySegment.ofArray(af), MemorySegment.ofArray(bf), c,
                split ? 1 : 0);
    }

    /**
     * Runs a one-warp tile kernel once: arguments 0-3 are A and B (laid out as the kernel reads them), C (16 x 8,
     * row-major) and D (out), then {@code ints}. Returns D row-major.
     */
    private static float[] runTile(ClQueue q, MemorySegment program, String kernel, MemorySegment a, MemorySegment b,
                                   float[][] c, int... ints) {
        float[] cFlat = new float[M * N];
        for (int r = 0; r < M; r++) {
            System.arraycopy(c[r], 0, cFlat, r * N, N);
        }
        MemorySegment ab = q.createBuffer(a.byteSize());
        MemorySegment bb = q.createBuffer(b.byteSize());
        MemorySegment cb = q.createBuffer(cFlat.length * 4L);
        MemorySegment db = q.createBuffer(cFlat.length * 4L);
        q.writeBlocking(ab, a, a.byteSize());
        q.writeBlocking(bb, b, b.byteSize());
        q.writeBlocking(cb, MemorySegment.ofArray(cFlat), cFlat.length * 4L);
        MemorySegment k = q.createKernel(program, kernel);
        q.setArgBuffer(k, 0, ab);
        q.setArgBuffer(k, 1, bb);
        q.setArgBuffer(k, 2, cb);
        q.setArgBuffer(k, 3, db);
        for (int i = 0; i < ints.length; i++) {
            q.setArgInt(k, 4 + i, ints[i]);
        }
        q.enqueue(k, 32, 32, MemorySegment.NULL);
        float[] d = new float[M * N];
        q.readBlocking(db, MemorySegment.ofArray(d), d.length * 4L);
        return d;
    }

    /** Runs tf32_round_probe on xs: the bits mma_tf32 gives each. */
    private static int[] tf32Round(ClQueue q, MemorySegment program, float[] xs) {
        MemorySegment xb = q.createBuffer(xs.length * 4L);
        MemorySegment yb = q.createBuffer(xs.length * 4L);
        q.writeBlocking(xb, MemorySegment.ofArray(xs), xs.length * 4L);
        MemorySegment k = q.createKernel(program, "tf32_round_probe");
        q.setArgBuffer(k, 0, xb);
        q.setArgBuffer(k, 1, yb);
        q.enqueue(k, xs.length, 32, MemorySegment.NULL);
        int[] y = new int[xs.length];
        q.readBlocking(yb, MemorySegment.ofArray(y), y.length * 4L);
        return y;
    }

    /** C + A B in float64 (A rows x kk, B kk x cols). */
    private static double[][] reference(float[][] a, float[][] b, float[][] c) {
        double[][] ref = new double[a.length][c[0].length];
        for (int r = 0; r < a.length; r++) {
            for (int col = 0; col < c[0].length; col++) {
                double s = c[r][col];
                for (int k = 0; k < b.length; k++) {
                    s += (double) a[r][k] * b[k][col];
                }
                ref[r][col] = s;
            }
        }
        return ref;
    }

    /** |C| + |A| |B| in float64: the scale of each output's rounding errors. */
    private static double[][] absReference(float[][] a, float[][] b, float[][] c) {
        double[][] ref = new double[a.length][c[0].length];
        for (int r = 0; r < a.length; r++) {
            for (int col = 0; col < c[0].length; col++) {
                double s = Math.abs(c[r][col]);
                for (int k = 0; k < b.length; k++) {
                    s += Math.abs((double) a[r][k] * b[k][col]);
                }
                ref[r][col] = s;
            }
        }
        return ref;
    }

    private static float[][] gaussian(Random random, int rows, int cols) {
        float[][] m = new float[rows][cols];
        for (float[] row : m) {
            for (int i = 0; i < cols; i++) {
                row[i] = (float) random.nextGaussian();
            }
        }
        return m;
    }

    /** Where else in the reference a wrong value belongs, if anywhere (a layout error shows as a permutation). */
    private static String whereElse(double[][] ref, double v) {
        List<String> at = new ArrayList<>();
        for (int r = 0; r < ref.length; r++) {
            for (int col = 0; col < ref[r].length; col++) {
                if (ref[r][col] == v) {
                    at.add("(" + r + ", " + col + ")");
                }
            }
        }
        return at.isEmpty() ? "" : ", the reference's value at " + String.join(" ", at);
    }

    /** rows x cols distinct integers from {@code from} up, shuffled. */
    private static float[][] shuffled(Random random, int rows, int cols, int from) {
        int n = rows * cols;
        int[] v = new int[n];
        for (int i = 0; i < n; i++) {
            v[i] = from + i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        float[][] m = new float[rows][cols];
        for (int i = 0; i < n; i++) {
            m[i / cols][i % cols] = v[i];
        }
        return m;
    }

    /** Two halves in one 32-bit word, the first (lower k) in the low 16 bits. */
    static int pack(float lo, float hi) {
        return (Float.floatToFloat16(lo) & 0xFFFF) | (Float.floatToFloat16(hi) & 0xFFFF) << 16;
    }
}
