package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

/**
 * summary.cl's {@code row_summary} in a {@link ClQueue}: reduces each of a step's logits rows on the device to its
 * argmax (ties to the lowest id) and float64 softmax probability, and reads back only those, 12 bytes a row, in one
 * blocking read. One work-group per row: a float argmax, then {@code sum exp((double) l_i - l_max)} in double.
 *
 * <p>The argmax equals the host's ({@link io.stepstream.engine.dlm.RowSummaries#argmax}) bitwise. The confidence
 * does not in general: the device's double {@code exp} (within a few ulp) and its summation order (strided per item,
 * then a tree) differ from Java's sequential {@code Math.exp} sum, so the two agree to about 1e-15 relative.
 * Needs cl_khr_fp64 ({@link #supports}). Not thread-safe: the queue's one thread.
 */
final class RowSummaryKernel {
    /** Work items per row on GPUs: a row of 32000 logits is 125 loads per item. */
    static final int GPU_WG = 256;
    /** On CPU devices (PoCL) a work-group is a loop on one core: a few items, few barrier rounds. */
    static final int CPU_WG = 16;

    private final ClQueue queue;
    private final MemorySegment kernel;
    private final int workGroup;
    private MemorySegment out;
    private int outRows;
    private byte[] host = new byte[0];
    private int lastRows = -1;
    private int lastVocab = -1;

    private static final System.Logger LOG = System.getLogger(RowSummaryKernel.class.getName());

    /**
     * The kernel in a direct launcher's queue (sharing its buffers), when the device can run it; else null, logged:
     * the Aparapi dispatch (no queue of ours to add a kernel to), no cl_khr_fp64, or a failed build. {@code what}
     * names the caller's summaries in the log ("diffusion row summaries").
     */
    static RowSummaryKernel inLauncher(PassLauncher launcher, String what) {
        if (!(launcher instanceof DirectLauncher direct)) {
            return null;
        }
        try {
            if (!supports(direct.device())) {
                LOG.log(System.Logger.Level.INFO, "no cl_khr_fp64 on " + direct.device().name().strip() + ": " + what
                        + " are made on the host");
                return null;
            }
            return new RowSummaryKernel(direct.queue(), workGroupFor(direct.device()));
        } catch (OpenClException e) {
            LOG.log(System.Logger.Level.WARNING, "the row-summary kernel did not build; " + what + " are made on the"
                    + " host (" + e.getMessage() + ")", e);
            return null;
        }
    }

    /** Whether the device computes in double (cl_khr_fp64), which the confidence needs. */
    static boolean supports(ClDevice device) {
        return ClRuntime.hasExtension(device, "cl_khr_fp64");
    }

    /** The work-group size for the device: {@link #GPU_WG} or {@link #CPU_WG}, at most what it takes. */
    static int workGroupFor(ClDevice device) {
        int wanted = device.kind() == ClDevice.Kind.CPU ? CPU_WG : GPU_WG;
        int size = 1;
        while (size * 2 <= Math.min(wanted, device.maxWorkGroupSize())) {
            size *= 2;
        }
        return size;
    }

    /**
     * Builds the kernel in {@code queue} with {@code workGroup} items per row (a power of two).
     *
     * @throws OpenClException when the device lacks cl_khr_fp64 or the build fails
     */
    RowSummaryKernel(ClQueue queue, int workGroup) {
        if (workGroup < 1 || Integer.bitCount(workGroup) != 1) {
            throw new IllegalArgumentException("work-group size must be a power of two, got " + workGroup);
        }
        if (!supports(queue.device())) {
            throw new OpenClException("row summaries need double precision (cl_khr_fp64), which "
                    + queue.device().name().strip() + " does not report");
        }
        this.queue = queue;
        this.workGroup = workGroup;
        MemorySegment program = queue.buildProgram(source(), "-DSUMMARY_WG=" + workGroup);
        this.kernel = queue.createKernel(program, "row_summary");
    }

    int workGroup() {
        return workGroup;
    }

    static String source() {
        try (InputStream in = RowSummaryKernel.class.getResourceAsStream("summary.cl")) {
            if (in == null) {
                throw new IllegalStateException("resource io/stepstream/gpu/summary.cl is missing from the classpath");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read summary.cl", e);
        }
    }

    /**
     * Summarizes rows {@code [0, rows)} of {@code logits} (a device buffer of at least {@code rows x vocab} floats,
     * row-major) after everything already in the queue, and waits for the result: {@code ids[r]} and
     * {@code confidences[r]} for every row. {@code event}: NULL, or where to write the kernel's profiling event.
     */
    void summarize(MemorySegment logits, int rows, int vocab, MemorySegment event, int[] ids, double[] confidences) {
        if (rows < 1 || vocab < 1 || ids.length < rows || confidences.length < rows) {
            throw new IllegalArgumentException("row summaries of " + rows + " rows of " + vocab + " logits into "
                    + ids.length + " ids and " + confidences.length + " confidences");
        }
        long bytes = (long) rows * (Double.BYTES + Integer.BYTES);
        if (rows > outRows) {
            if (out != null) {
                queue.finish(); // an earlier step's read may still use it
                queue.releaseBuffer(out);
            }
            outRows = Math.max(rows, 2 * outRows);
            out = queue.createBuffer((long) outRows * (Double.BYTES + Integer.BYTES));
            queue.setArgBuffer(kernel, 3, out);
            host = new byte[outRows * (Double.BYTES + Integer.BYTES)];
        }
        // Set every call: a buffer the launcher re-created may reuse the handle value of the one released.
        queue.setArgBuffer(kernel, 2, logits);
        if (rows != lastRows) {
            queue.setArgInt(kernel, 0, rows);
            lastRows = rows;
        }
        if (vocab != lastVocab) {
            queue.setArgInt(kernel, 1, vocab);
            lastVocab = vocab;
        }
        queue.enqueue(kernel, (long) rows * workGroup, workGroup, event);
        MemorySegment dst = MemorySegment.ofArray(host);
        queue.readBlocking(out, dst, bytes);
        // Doubles first, then the ints, as the kernel lays them out; the device is little-endian like the host.
        MemorySegment.copy(dst, ValueLayout.JAVA_DOUBLE_UNALIGNED, 0, confidences, 0, rows);
        MemorySegment.copy(dst, ValueLayout.JAVA_INT_UNALIGNED, (long) rows * Double.BYTES, ids, 0, rows);
    }
}
