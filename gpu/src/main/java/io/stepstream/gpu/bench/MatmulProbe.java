package io.stepstream.gpu.bench;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.MatmulPassProbe;
import io.stepstream.gpu.MatmulTiles;
import io.stepstream.gpu.OpenClDevices;
import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Times the hand matmul kernels (matmul.cl) alone on given shapes, for each tile variant, next to the Aparapi
 * step kernel's matmul pass on the same matrix and inputs, and measures a device copy bandwidth. Device time
 * from OpenCL profiling events, mean of {@code --reps} runs after {@code --warmup}. Prints a compact table:
 * ms, GB/s of weights, GFLOP/s, speed-up over Aparapi's pass, and the hand result's relative difference from
 * Aparapi's (a sanity check, not a test).
 *
 * <pre>
 * MatmulProbe [--device SEL] [--shapes 2048x2048,5632x2048,2048x5632,32000x2048] [--tokens 1,8,32,64]
 *             [--dtype f32,f16,q8_0] [--variants "default;tm=64,rm=4,rn=4;mv_lpr=16"] [--reps 20] [--warmup 3]
 *             [--aparapi true|false] [--copy-mib 1024] [--mv-tier auto[,1,2,4,8]] [--fuse-norm off[,on]]
 * </pre>
 * The matvec runs n tokens on its smallest token tier that holds n (kernel {@code mv_t<tier>}); {@code --mv-tier T}
 * forces tier T where a variant has it and T >= n (e.g. {@code --mv-tier auto,8 --tokens 1}: each variant at its
 * 1-token tier and on the former 8-token matvec, side by side). {@code --fuse-norm off,on} adds rows
 * {@code mv_t<tier>+norm}: the matvec with the fused RMSNorm prologue (each token's rs from its input row, as the
 * classifier after the final norm), i.e. what fusing a norm adds to the kernel (relDiff not applicable). {@code mv_tokens=1} in a variant builds only the 1-token tier.
 * A variant is a list of {@code name=value} overrides of {@link MatmulTiles#DEFAULT} (names: mv_wg, mv_lpr,
 * mv_tokens, mv_unroll, tm, tn, tk, rm, rn, ks = split-K slices, 0 auto); {@code default} is the default (or -Dstepstream.opencl.matmulTiles).
 * Each variant is its own program build. Shapes are rows x cols (cols a multiple of 64).
 */
public final class MatmulProbe {
    record Options(String device, List<int[]> shapes, int[] tokens, List<TensorType> dtypes,
                   List<MatmulTiles> variants, int reps, int warmup, boolean aparapi, int copyMiB, int[] mvTiers, List<Boolean> fuseNorm) {
        static Options parse(String[] args) {
            String device = "auto";
            List<int[]> shapes = parseShapes("2048x2048,5632x2048,2048x5632,32000x2048");
            int[] tokens = {1, 8, 32, 64};
            List<TensorType> dtypes = List.of(TensorType.F32, TensorType.F16, TensorType.Q8_0);
            List<MatmulTiles> variants = List.of(MatmulTiles.fromSystemProperty());
            int reps = 20;
            int warmup = 3;
            boolean aparapi = true;
            int copyMiB = 1024;
            int[] mvTiers = {0};
            List<Boolean> fuseNorm = List.of(false);
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(a + ": missing value");
                }
                String v = args[++i];
                switch (a) {
                    case "--device" -> device = v;
                    case "--shapes" -> shapes = parseShapes(v);
                    case "--tokens" -> tokens = Arrays.stream(v.split(",")).mapToInt(s -> positive("--tokens", s))
                            .toArray();
                    case "--dtype" -> dtypes = Arrays.stream(v.split(","))
                            .map(io.stepstream.engine.spi.BackendOptions::parseWeightType).toList();
                    case "--variants" -> variants = Arrays.stream(v.split(";")).map(String::strip)
                            .map(s -> s.equalsIgnoreCase("default") ? MatmulTiles.fromSystemProperty()
                                    : MatmulTiles.DEFAULT.with(s)).toList();
                    case "--reps" -> reps = positive("--reps", v);
                    case "--warmup" -> warmup = Integer.parseInt(v.strip());
                    case "--aparapi" -> aparapi = Boolean.parseBoolean(v);
                    case "--copy-mib" -> copyMiB = positive("--copy-mib", v);
                    case "--fuse-norm" -> fuseNorm = Arrays.stream(v.split(",")).map(String::strip).map(f -> switch (f) {
                        case "on" -> true;
                        case "off" -> false;
                        default -> throw new IllegalArgumentException("--fuse-norm takes off and/or on, got '" + f + "'");
                    }).distinct().toList();
                    case "--mv-tier" -> mvTiers = Arrays.stream(v.split(",")).map(String::strip)
                            .mapToInt(t -> t.equalsIgnoreCase("auto") ? 0 : positive("--mv-tier", t)).toArray();
                    default -> throw new IllegalArgumentException("unknown option " + a + " (see MatmulProbe's javadoc)");
                }
            }
            return new Options(device, shapes, tokens, dtypes, variants, reps, warmup, aparapi, copyMiB, mvTiers, fuseNorm);
        }

        static List<int[]> parseShapes(String v) {
            List<int[]> out = new ArrayList<>();
            for (String s : v.split(",")) {
                String[] rc = s.strip().toLowerCase(Locale.ROOT).split("x");
                if (rc.length != 2) {
                    throw new IllegalArgumentException("--shapes: '" + s + "' is not ROWSxCOLS");
                }
                out.add(new int[]{positive("--shapes", rc[0]), positive("--shapes", rc[1])});
            }
            return out;
        }

        static int positive(String name, String v) {
            int n = Integer.parseInt(v.strip());
            if (n < 1) {
                throw new IllegalArgumentException(name + " must be >= 1, got " + v);
            }
            return n;
        }
    }

    /** One timed kernel on one shape. */
    record Row(String shape, String dtype, int tokens, String kernel, double ms, double weightGBps, double gflops,
               double vsAparapi, double relDiff, double enqueueUs, double backToBackUs) {
    }

    private MatmulProbe() {
    }

    public static void main(String[] args) {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("MatmulProbe: " + e.getMessage());
            System.exit(2);
            return;
        }
        run(o);
    }

    static List<Row> run(Options o) {
        OpenCLDevice device = OpenClDevices.select(o.device());
        System.out.println("device: " + OpenClDevices.describe(device));
        double copy = copyGBps(ClRuntime.byHandle(device.getDeviceId(), device.getName()), o.copyMiB());
        System.out.printf(Locale.ROOT, "device copy: %.1f GB/s (float4 copy kernel, %d MiB, profiling events)%n", copy,
                o.copyMiB());
        int maxTokens = Arrays.stream(o.tokens()).max().orElse(1);
        List<Row> rows = new ArrayList<>();
        for (int[] shape : o.shapes()) {
            String name = shape[0] + "x" + shape[1];
            long t0 = System.nanoTime();
            Llama2Weights w = MatmulPassProbe.weights(shape[0], shape[1]);
            for (TensorType dtype : o.dtypes()) {
                String dt = dtype.name().toLowerCase(Locale.ROOT);
                try (MatmulPassProbe probe = new MatmulPassProbe(device, w, dtype, maxTokens)) {
                    System.out.printf(Locale.ROOT, "%s %s: set up in %.1f s%n", name, dt, (System.nanoTime() - t0) / 1e9);
                    long bytes = probe.weightBytes();
                    for (int tokens : o.tokens()) {
                        double flop = 2.0 * shape[0] * shape[1] * tokens;
                        double base = Double.NaN;
                        float[] reference = null;
                        if (o.aparapi()) {
                            base = probe.aparapiMs(tokens, o.warmup(), o.reps());
                            reference = probe.output(tokens);
                            rows.add(new Row(name, dt, tokens, "aparapi", base, bytes / base / 1e6, flop / base / 1e6,
                                    1.0, 0, probe.aparapiEnqueueUs(tokens, 5), Double.NaN));
                        }
                        for (MatmulTiles tiles : o.variants()) {
                          for (int mvTier : o.mvTiers()) {
                           for (boolean fuse : o.fuseNorm()) {
                            if (fuse && tokens > tiles.mvTokens()) {
                                continue; // the norm fuses into the matvec only
                            }
                            probe.mvTier(mvTier);
                            probe.fuseNorm(fuse);
                            double ms = probe.handMs(tiles, tokens, o.warmup(), o.reps());
                            double diff = reference == null ? Double.NaN : relDiff(probe.output(tokens), reference);
                            int split = probe.lastSplit(tiles);
                            int tier = probe.lastMvTier(tiles);
                            String kernel = (tier > 0 ? "mv_t" + tier + (fuse ? "+norm " : " ") : "mm ") + tiles.label()
                                    + (split > 1 && tiles.ks() == 0 ? " s" + split : "");
                            rows.add(new Row(name, dt, tokens, kernel, ms, bytes / ms / 1e6, flop / ms / 1e6,
                                    base / ms, fuse ? Double.NaN : diff, probe.handEnqueueUs(tiles, tokens, 5),
                                    probe.handBackToBackUs(tiles, tokens, 500)));
                           }
                          }
                        }
                        t0 = System.nanoTime();
                    }
                }
            }
        }
        System.out.print(table(rows, copy));
        return rows;
    }

    private static double relDiff(float[] a, float[] b) {
        double d = 0;
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
            m = Math.max(m, Math.abs(b[i]));
        }
        return m == 0 ? Double.NaN : d / m;
    }

    static String table(List<Row> rows, double copy) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%n%-11s %-5s %4s %-37s %9s %8s %6s %9s %7s %8s %6s %6s%n",
                "shape", "dtype", "tok", "kernel", "ms", "GB/s", "ofCopy", "GFLOP/s", "vsApar", "relDiff", "enqUs", "b2bUs"));
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "%-11s %-5s %4d %-37s %9.4f %8.1f %5.1f%% %9.1f %7s %8.1e %6.1f %6.1f%n",
                    r.shape(), r.dtype(), r.tokens(), r.kernel(), r.ms(), r.weightGBps(), 100 * r.weightGBps() / copy,
                    r.gflops(), Double.isNaN(r.vsAparapi()) ? "-" : String.format(Locale.ROOT, "%.2fx", r.vsAparapi()),
                    r.relDiff(), r.enqueueUs(), r.backToBackUs()));
        }
        sb.append(String.format(Locale.ROOT, "(device ms per kernel from profiling events; GB/s of weights as stored;"
                + " copy %.1f GB/s; relDiff = max |hand - aparapi| / max |aparapi|; enqUs = host us to enqueue one"
                + " (Aparapi pass: one of a launch of the probe step's passes); b2bUs = device us per kernel of 500 enqueued back"
                + " to back without events)%n", copy));
        return sb.toString();
    }

    /** Read + write bytes per second of a float4 copy kernel between two device buffers. */
    static double copyGBps(ClDevice device, int mib) {
        long bytes = Math.min((long) mib << 20, device.maxAllocBytes() / 2) / 16 * 16;
        try (ClQueue q = ClQueue.timed(device); Arena arena = Arena.ofConfined()) {
            MemorySegment program = q.buildProgram("__kernel void copy4(__global const float4 *a, __global float4 *b)"
                    + " { size_t i = get_global_id(0); b[i] = a[i]; }");
            MemorySegment k = q.createKernel(program, "copy4");
            q.setArgBuffer(k, 0, q.createBuffer(bytes));
            q.setArgBuffer(k, 1, q.createBuffer(bytes));
            long items = bytes / 16 / 256 * 256;
            MemorySegment event = arena.allocate(ValueLayout.ADDRESS);
            q.enqueue(k, items, 256, MemorySegment.NULL);
            q.finish();
            long best = Long.MAX_VALUE;
            for (int i = 0; i < 5; i++) {
                q.enqueue(k, items, 256, event);
                q.finish();
                MemorySegment e = event.get(ValueLayout.ADDRESS, 0);
                long[] se = q.eventStartEnd(e);
                q.releaseEvent(e);
                best = Math.min(best, se[1] - se[0]);
            }
            return 2.0 * items * 16 / best;
        }
    }
}
