package io.stepstream.gpu.bench;

import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;

/**
 * What one kernel launch costs on a device, apart from the kernel's work: near-empty kernels (one store) with 1 to 19
 * buffer arguments (distinct buffers, or one bound to all) and 0 to 39 int arguments (the hand matvec has 19 and
 * 21), on 1 group and on 512 groups of 128 items, timed three ways: the
 * profiling event's duration (start to end on the device), the host's time to enqueue one, and the wall time per
 * kernel of {@code --reps} enqueued back to back without events (the device's rate when the host keeps ahead).
 * The events are timed on a timestamp-recording queue, the enqueue and back-to-back columns on the plain queue the
 * model uses ({@code -Dstepstream.opencl.queueProfiling=true}: one recording timestamps too, as before session 8).
 *
 * <pre>LaunchProbe [--device auto|gpu|cpu|INDEX|NAME] [--reps 2000]</pre>
 */
public final class LaunchProbe {
    private LaunchProbe() {
    }

    /** Kernel shapes probed: buffer arguments, int arguments. */
    private static final int[][] SHAPES = {{1, 0}, {1, 15}, {1, 39}, {8, 4}, {19, 21}};

    private static String name(int[] shape) {
        return "k" + shape[0] + "b" + shape[1] + "i";
    }

    private static String source() {
        StringBuilder sb = new StringBuilder();
        for (int[] shape : SHAPES) {
            sb.append("__kernel void ").append(name(shape)).append("(__global int *o");
            for (int i = 1; i < shape[0]; i++) {
                sb.append(", __global int *b").append(i);
            }
            for (int i = 0; i < shape[1]; i++) {
                sb.append(", int a").append(i);
            }
            sb.append(") {\n    int s = 0");
            for (int i = 0; i < shape[1]; i++) {
                sb.append(" + a").append(i);
            }
            for (int i = 1; i < shape[0]; i++) {
                sb.append(" + b").append(i).append("[0]");
            }
            sb.append(";\n    if (get_global_id(0) == 0) o[0] += 1 + s;\n}\n");
        }
        return sb.toString();
    }

    public static void main(String[] args) {
        String select = "auto";
        int reps = 2000;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--device" -> select = args[i + 1];
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        ClDevice device = ClRuntime.select(select);
        System.out.println("device: " + device + ", enqueue and back to back on a queue "
                + (ClQueue.ALWAYS_TIMESTAMPS ? "recording timestamps (queueProfiling=true)" : "without timestamps"));
        System.out.println("extensions: " + ClRuntime.extensions(device));
        try (ClQueue queue = new ClQueue(device); Arena arena = Arena.ofConfined()) {
            MemorySegment program = queue.buildProgram(source());
            MemorySegment out = queue.createBuffer(64);
            MemorySegment event = arena.allocate(ValueLayout.ADDRESS);
            System.out.println("buffers  ints  distinct  groups  event_us  enqueue_us  backtoback_us");
            MemorySegment[] buffers = new MemorySegment[32];
            for (int i = 0; i < buffers.length; i++) {
                buffers[i] = queue.createBuffer(64);
            }
            for (int[] shape : SHAPES) {
              for (boolean distinct : shape[0] > 1 ? new boolean[]{true, false} : new boolean[]{true}) {
                MemorySegment k = queue.createKernel(program, name(shape));
                queue.setArgBuffer(k, 0, out);
                for (int i = 1; i < shape[0]; i++) {
                    queue.setArgBuffer(k, i, distinct ? buffers[i] : buffers[0]);
                }
                for (int i = 0; i < shape[1]; i++) {
                    queue.setArgInt(k, shape[0] + i, i);
                }
                for (int groups : new int[]{1, 512}) {
                    long global = groups * 128L;
                    for (int i = 0; i < 50; i++) {
                        queue.enqueue(k, global, 128, MemorySegment.NULL);
                    }
                    queue.finish();
                    queue.timestamps(true);
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
                    double eventUs = sum / 1e3 / n;
                    queue.timestamps(false);
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
                    System.out.println(String.format(Locale.ROOT, "%7d  %4d  %8s  %6d  %8.2f  %10.2f  %13.2f", shape[0],
                            shape[1], distinct, groups, eventUs, (t1 - t0) / 1e3 / reps, (t2 - t0) / 1e3 / reps));
                }
              }
            }
        }
    }
}
