package io.stepstream.gpu.bench;

import io.stepstream.gpu.MatmulProgram;
import io.stepstream.gpu.OpenClException;
import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
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
 * or failed build, else 0.
 *
 * <pre>
 * TensorCoreProbe [--device SEL] [--ptx auto|on|off]
 * </pre>
 * {@code --device}: as MatmulProbe (default: the first GPU, else the first device, e.g. PoCL).
 */
public final class TensorCoreProbe {
    /** Rows, columns and depth of one mma tile. */
    static final int M = 16;
    static final int N = 8;
    static final int K = 16;

    record Options(String device, String ptx) {
        static Options parse(String[] args) {
            String device = "auto";
            String ptx = "auto";
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
                    default -> throw new IllegalArgumentException("unknown option " + a
                            + " (see TensorCoreProbe's javadoc)");
                }
            }
            return new Options(device, ptx);
        }
    }

    /**
     * One tile check: the program variant, whether it built (else the exception message with the build log),
     * and the mismatching elements as printed lines.
     */
    record TileResult(String variant, boolean built, String buildError, List<String> mismatches) {
        boolean ok() {
            return built && mismatches.isEmpty();
        }
    }

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
        try (ClQueue q = new ClQueue(device)) {
            boolean ptxBuilt = false;
            if (ptx) {
                // both spellings of the inline-asm keyword: which one the device's compiler takes is unknown
                for (int spelling = 1; spelling <= 2; spelling++) {
                    TileResult r = tile(q, spelling);
                    print(r, out);
                    ptxBuilt |= r.built();
                    ok &= !r.built() || r.ok();
                }
                if (!ptxBuilt) {
                    out.println("(a) no PTX spelling built: tensor cores cannot be used on this device");
                    ok = false;
                }
            }
            TileResult emulated = tile(q, 0);
            print(emulated, out);
            ok &= emulated.ok();
        }
        out.println(ok ? "RESULT: OK" : "RESULT: FAILED");
        return ok;
    }

    private static void print(TileResult r, PrintStream out) {
        if (!r.built()) {
            out.println("(a) tile " + r.variant() + ": BUILD FAILED\n" + r.buildError());
            return;
        }
        out.println("(a) tile " + r.variant() + ": " + (r.mismatches().isEmpty() ? "all " + M * N
                + " elements match the float64 reference" : r.mismatches().size() + " of " + M * N
                + " elements mismatch"));
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
        float[] cFlat = new float[M * N];
        for (int r = 0; r < M; r++) {
            System.arraycopy(c[r], 0, cFlat, r * N, N);
        }
        MemorySegment ab = q.createBuffer(aBits.length * 4L);
        MemorySegment bb = q.createBuffer(bBits.length * 4L);
        MemorySegment cb = q.createBuffer(cFlat.length * 4L);
        MemorySegment db = q.createBuffer(cFlat.length * 4L);
        q.writeBlocking(ab, MemorySegment.ofArray(aBits), aBits.length * 4L);
        q.writeBlocking(bb, MemorySegment.ofArray(bBits), bBits.length * 4L);
        q.writeBlocking(cb, MemorySegment.ofArray(cFlat), cFlat.length * 4L);
        MemorySegment k = q.createKernel(program, "mma_tile");
        q.setArgBuffer(k, 0, ab);
        q.setArgBuffer(k, 1, bb);
        q.setArgBuffer(k, 2, cb);
        q.setArgBuffer(k, 3, db);
        q.enqueue(k, 32, 32, MemorySegment.NULL);
        float[] d = new float[M * N];
        q.readBlocking(db, MemorySegment.ofArray(d), d.length * 4L);
        double[][] ref = new double[M][N];
        for (int r = 0; r < M; r++) {
            for (int col = 0; col < N; col++) {
                double s = c[r][col];
                for (int kk = 0; kk < K; kk++) {
                    s += (double) a[r][kk] * b[kk][col];
                }
                ref[r][col] = s;
            }
        }
        List<String> mismatches = new ArrayList<>();
        for (int r = 0; r < M; r++) {
            for (int col = 0; col < N; col++) {
                double got = d[r * N + col];
                // every value is an integer below 2^24 in magnitude: exact in f32 whatever the summation order
                if (got != ref[r][col]) {
                    mismatches.add(String.format(Locale.ROOT, "(row %d, col %d): got %.1f, expected %.1f%s (lane %d"
                                    + " holds it as c%d)", r, col, got, ref[r][col], whereElse(ref, got),
                            (r % 8) * 4 + col / 2, (r >= 8 ? 2 : 0) + (col & 1)));
                }
            }
        }
        return new TileResult(variant, true, null, mismatches);
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
