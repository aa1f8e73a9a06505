package io.stepstream.gpu.bench;

import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;

/**
 * What one kernel launch costs on a device, apart from the kernel's work: near-empty kernels (one store) with 1, 16
 * and 51 arguments (the hand matvec has 51), on 1 group and on 512 groups of 128 items, timed three ways: the
 * profiling event's duration (start to end on the device), the host's time to enqueue one, and the wall time per
 * kernel of {@code --reps} enqueued back to back without events (the device's rate when the host keeps ahead).
 * With {@code -Dstepstream.opencl.queueProfiling=false} the queue records no timestamps (no event column).
 *
 * <pre>LaunchProbe [--device NAME-SUBSTRING] [--reps 2000]</pre>
 */
public final class LaunchProbe {
    private LaunchProbe() {
    }

    private static String source() {
        StringBuilder sb = new StringBuilder();
        for (int args : new int[]{1, 16, 51}) {
            sb.append("__kernel void k").append(args).append("(__global int *o");
            for (int i = 1; i < args; i++) {
                sb.append(", int a").append(i);
            }
            sb.append(") {\n    int s = 0");
            for (int i = 1; i < args; i++) {
                sb.append(" + a").append(i);
            }
            sb.append(";\n    if (get_global_id(0) == 0) o[0] += 1 + s;\n}\n");
        }
        return sb.toString();
    }

    public static void main(String[] args) {
        String select = "";
        int reps = 2000;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--device" -> select = args[i + 1];
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        ClDevice device = null;
        for (ClDevice d : ClRuntime.devices()) {
            if (d.kind() == ClDevice.Kind.GPU && d.name().contains(select) || device == null) {
                device = d;
            }
        }
        if (device == null) {
            throw new IllegalStateException("no OpenCL device");
        }
        System.out.println("device: " + device + ", queue profiling " + ClQueue.PROFILING);
        System.out.println("extensions: " + ClRuntime.extensions(device));
        try (ClQueue queue = new ClQueue(device); Arena arena = Arena.ofConfined()) {
            MemorySegment program = queue.buildProgram(source());
            MemorySegment out = queue.createBuffer(64);
            MemorySegment event = arena.allocate(ValueLayout.ADDRESS);
            System.out.println("args  groups  event_us  enqueue_us  backtoback_us");
            for (int nargs : new int[]{1, 16, 51}) {
                MemorySegment k = queue.createKernel(program, "k" + nargs);
                queue.setArgBuffer(k, 0, out);
                for (int i = 1; i < nargs; i++) {
                    queue.setArgInt(k, i, i);
                }
                for (int groups : new int[]{1, 512}) {
                    long global = groups * 128L;
                    for (int i = 0; i < 50; i++) {
                        queue.enqueue(k, global, 128, MemorySegment.NULL);
                    }
                    queue.finish();
                    double eventUs = Double.NaN;
                    if (ClQueue.PROFILING) {
                        long sum = 0;
                        int n = Math.min(reps, 200);
                        for (int i = 0; i < n; i++) {
                            queue.enqueue(k, global, 128, event);
                            queue.finish();
                            MemorySegment e = event.get(ValueLayout.ADDRESS, 0);
                            long[] se = queue.eventStartEnd(e);
                            queue.releaseEvent(e);
                            sum += se[1] - se[0];
                        }
                        eventUs = sum / 1e3 / n;
                    }
                    long t0 = System.nanoTime();
                    for (int i = 0; i < reps; i++) {
                        queue.enqueue(k, global, 128, MemorySegment.NULL);
                        if (i % 32 == 0) {
                            queue.flush();
                        }
                    }
                    long t1 = System.nanoTime();
                    queue.finish();
                    long t2 = System.nanoTime();
                    System.out.println(String.format(Locale.ROOT, "%4d  %6d  %8.2f  %10.2f  %13.2f", nargs, groups,
                            eventUs, (t1 - t0) / 1e3 / reps, (t2 - t0) / 1e3 / reps));
                }
            }
        }
    }
}
