package io.stepstream.gpu.bench;

import com.aparapi.Kernel;
import com.aparapi.Range;
import com.aparapi.device.OpenCLDevice;
import com.aparapi.opencl.OpenCL;
import io.stepstream.gpu.KernelLauncher;
import io.stepstream.gpu.OpenClDevices;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Aparapi's two ways to put a kernel on a device, timed on the same matrix-vector product y = W x: a Java
 * {@link Kernel} in explicit mode (W uploaded once, only x and y move per call) and the OpenCL interface binding
 * (hand-written OpenCL C bound to a Java interface). Aparapi's binding passes arrays as {@code @GlobalReadOnly}
 * and friends, and its native invoke writes every readable array to the device and reads every writable one
 * back on every call, then waits: W crosses the bus each time. This probe measures what that costs, so the
 * choice between the two rests on a number. Both results are checked against a plain loop.
 *
 * <pre>BindingProbe [--device SEL] [--rows 4096] [--cols 4096] [--reps 20]</pre>
 */
public final class BindingProbe {
    /** One work-group of {@link #LOCAL} items per row; a tree sum in local memory. */
    static final int LOCAL = 128;

    /** The hand-written kernel, bound through Aparapi's interface binding. */
    public interface MatVec extends OpenCL<MatVec> {
        @Kernel("""
                {
                  __local float part[128];
                  const int row = get_group_id(0);
                  const int lid = get_local_id(0);
                  float s = 0.0f;
                  for (int j = lid; j < cols; j += 128) {
                    s += w[(long) row * cols + j] * x[j];
                  }
                  part[lid] = s;
                  barrier(CLK_LOCAL_MEM_FENCE);
                  for (int k = 64; k > 0; k >>= 1) {
                    if (lid < k) part[lid] += part[lid + k];
                    barrier(CLK_LOCAL_MEM_FENCE);
                  }
                  if (lid == 0) y[row] = part[0];
                }
                """)
        MatVec matvec(Range range, @GlobalReadOnly("w") float[] w, @GlobalReadOnly("x") float[] x,
                      @GlobalWriteOnly("y") float[] y, @Arg("cols") int cols);
    }

    /** The same product as an Aparapi Java kernel. */
    static final class MatVecKernel extends Kernel {
        float[] w;
        float[] x;
        float[] y;
        int cols;
        @Local
        float[] part = new float[LOCAL];

        @Override
        public void run() {
            int row = getGroupId(0);
            int lid = getLocalId(0);
            float s = 0f;
            for (int j = lid; j < cols; j += LOCAL) {
                s += w[row * cols + j] * x[j];
            }
            part[lid] = s;
            localBarrier();
            for (int k = LOCAL / 2; k > 0; k = k / 2) {
                if (lid < k) {
                    part[lid] += part[lid + k];
                }
                localBarrier();
            }
            if (lid == 0) {
                y[row] = part[0];
            }
        }
    }

    /** Median milliseconds per call of each path and the worst relative error of each against the plain loop. */
    public record Result(String device, int rows, int cols, double kernelMs, double bindingMs, double kernelError,
                         double bindingError) {
        double weightGB() {
            return 4.0 * rows * cols / 1e9;
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%s: y = W x, W %d x %d f32 (%.0f MB)%n"
                            + "  aparapi Kernel, W resident : %8.3f ms/call (%.1f GB/s of W), max rel err %.1e%n"
                            + "  OpenCL binding, W per call : %8.3f ms/call (%.1f GB/s of W), max rel err %.1e%n"
                            + "  binding / kernel time      : %.1fx%n",
                    device, rows, cols, weightGB() * 1e3, kernelMs, weightGB() / (kernelMs / 1e3), kernelError,
                    bindingMs, weightGB() / (bindingMs / 1e3), bindingError, bindingMs / kernelMs);
        }
    }

    private BindingProbe() {
    }

    public static Result run(OpenCLDevice device, int rows, int cols, int reps) {
        var random = new SplittableRandom(7);
        float[] w = new float[Math.multiplyExact(rows, cols)];
        float[] x = new float[cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) random.nextDouble(-1, 1);
        }
        for (int i = 0; i < cols; i++) {
            x[i] = (float) random.nextDouble(-1, 1);
        }
        double[] expected = new double[rows];
        for (int r = 0; r < rows; r++) {
            double s = 0;
            for (int j = 0; j < cols; j++) {
                s += (double) w[r * cols + j] * x[j];
            }
            expected[r] = s;
        }

        var kernel = new MatVecKernel();
        kernel.w = w;
        kernel.x = x;
        kernel.y = new float[rows];
        kernel.cols = cols;
        var launcher = new KernelLauncher(kernel, device);
        double kernelMs;
        try {
            launcher.put(w);
            Range range = launcher.range(rows * LOCAL, LOCAL);
            long[] times = new long[reps];
            for (int i = -2; i < reps; i++) {
                long t0 = System.nanoTime();
                launcher.put(x);
                launcher.launch(range, 1);
                launcher.get(kernel.y);
                if (i >= 0) {
                    times[i] = System.nanoTime() - t0;
                }
            }
            kernelMs = median(times) / 1e6;
        } finally {
            launcher.dispose();
        }
        double kernelError = maxRelativeError(kernel.y, expected);

        MatVec bound = device.bind(MatVec.class);
        float[] y = new float[rows];
        double bindingMs;
        try {
            Range range = device.createRange(rows * LOCAL, LOCAL);
            long[] times = new long[reps];
            for (int i = -2; i < reps; i++) {
                long t0 = System.nanoTime();
                bound.matvec(range, w, x, y, cols);
                if (i >= 0) {
                    times[i] = System.nanoTime() - t0;
                }
            }
            bindingMs = median(times) / 1e6;
        } finally {
            bound.dispose();
        }
        return new Result(OpenClDevices.describe(device), rows, cols, kernelMs, bindingMs, kernelError,
                maxRelativeError(y, expected));
    }

    static double maxRelativeError(float[] actual, double[] expected) {
        double scale = 0;
        for (double e : expected) {
            scale = Math.max(scale, Math.abs(e));
        }
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / scale);
        }
        return worst;
    }

    private static double median(long[] times) {
        long[] sorted = times.clone();
        java.util.Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    public static void main(String[] args) {
        String device = "auto";
        int rows = 4096;
        int cols = 4096;
        int reps = 20;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--device" -> device = args[i + 1];
                case "--rows" -> rows = Integer.parseInt(args[i + 1]);
                case "--cols" -> cols = Integer.parseInt(args[i + 1]);
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("BindingProbe: unknown option " + args[i]);
            }
        }
        System.out.print(run(OpenClDevices.select(device), rows, cols, reps));
    }
}
