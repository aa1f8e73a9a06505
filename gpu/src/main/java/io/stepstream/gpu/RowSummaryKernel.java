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

    /**
     * System property: groups per row for steps with few rows, {@code auto} (default) or a count (1 = one group a
     * row always). Auto splits a row on GPUs until the step has about one group per compute unit, each group
     * keeping at least {@value #MIN_ITEMS_PER_SPLIT} logits per item; CPU devices keep one group a row.
     */
    static final String SPLITS_PROPERTY = "stepstream.opencl.summarySplits";
    /** Logits each work item of a split group reads at least (fewer and the merge costs more than it saves). */
    static final int MIN_ITEMS_PER_SPLIT = 4;

    private final ClQueue queue;
    private final MemorySegment kernel;
    private final MemorySegment splitKernel;
    private final int workGroup;
    /** 0: auto; else the fixed group count per row. */
    private final int splitsSetting;
    private final int computeUnits;
    private final boolean gpu;
    /** row_summary_split's partials (per row and split) and per-row counters, grown on demand. */
    private MemorySegment partialSum;
    private MemorySegment partialMax;
    private MemorySegment partialId;
    private MemorySegment counters;
    private int partialSlots;
    private int counterRows;
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
        this(queue, workGroup, splitsFromSystemProperty());
    }

    /** As above with {@code splits} groups per row (0: auto, see {@value #SPLITS_PROPERTY}). */
    RowSummaryKernel(ClQueue queue, int workGroup, int splits) {
        if (splits < 0) {
            throw new IllegalArgumentException(SPLITS_PROPERTY + ": need auto or a count >= 1, got " + splits);
        }
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
        this.splitKernel = queue.createKernel(program, "row_summary_split");
        this.splitsSetting = splits;
        this.computeUnits = queue.device().computeUnits();
        this.gpu = queue.device().kind() != ClDevice.Kind.CPU;
    }

    static int splitsFromSystemProperty() {
        return SystemProperties.autoOrInt(SPLITS_PROPERTY, 1, Integer.MAX_VALUE, "a group count >= 1");
    }

    /**
     * Groups per row for {@code rows} rows of {@code vocab} logits: the fixed setting, or (auto) on GPUs enough to
     * give the step about one group per compute unit, never more than leave each item
     * {@value #MIN_ITEMS_PER_SPLIT} logits; 1 on CPU devices. Never more than leave every group some ids.
     */
    int splitsFor(int rows, int vocab) {
        int most = Math.max(1, vocab / workGroup);
        if (splitsSetting > 0) {
            return Math.min(splitsSetting, most);
        }
        if (!gpu || rows >= computeUnits) {
            return 1;
        }
        int want = (computeUnits + rows - 1) / rows;
        return Math.max(1, Math.min(want, vocab / (workGroup * MIN_ITEMS_PER_SPLIT)));
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
        int splits = splitsFor(rows, vocab);
        if (splits == 1) {
            queue.enqueue(kernel, (long) rows * workGroup, workGroup, event);
        } else {
            enqueueSplit(logits, rows, vocab, splits, event);
        }
        MemorySegment dst = MemorySegment.ofArray(host);
        queue.readBlocking(out, dst, bytes);
        // Doubles first, then the ints, as the kernel lays them out; the device is little-endian like the host.
        MemorySegment.copy(dst, ValueLayout.JAVA_DOUBLE_UNALIGNED, 0, confidences, 0, rows);
        MemorySegment.copy(dst, ValueLayout.JAVA_INT_UNALIGNED, (long) rows * Double.BYTES, ids, 0, rows);
    }

    private void enqueueSplit(MemorySegment logits, int rows, int vocab, int splits, MemorySegment event) {
        int slots = rows * splits;
        if (slots > partialSlots) {
            if (partialSum != null) {
                queue.finish();
                queue.releaseBuffer(partialSum);
                queue.releaseBuffer(partialMax);
                queue.releaseBuffer(partialId);
            }
            partialSlots = Math.max(slots, 2 * partialSlots);
            partialSum = queue.createBuffer((long) partialSlots * Double.BYTES);
            partialMax = queue.createBuffer((long) partialSlots * Float.BYTES);
            partialId = queue.createBuffer((long) partialSlots * Integer.BYTES);
        }
        if (rows > counterRows) {
            if (counters != null) {
                queue.finish();
                queue.releaseBuffer(counters);
            }
            counterRows = Math.max(rows, 2 * counterRows);
            counters = queue.createBuffer((long) counterRows * Integer.BYTES);
            // Zero once: each launch's last group of a row zeroes that row's counter again.
            queue.writeBlocking(counters, MemorySegment.ofArray(new int[counterRows]), (long) counterRows * Integer.BYTES);
        }
        queue.setArgInt(splitKernel, 0, rows);
        queue.setArgInt(splitKernel, 1, vocab);
        queue.setArgInt(splitKernel, 2, splits);
        queue.setArgBuffer(splitKernel, 3, logits);
        queue.setArgBuffer(splitKernel, 4, out);
        queue.setArgBuffer(splitKernel, 5, partialSum);
        queue.setArgBuffer(splitKernel, 6, partialMax);
        queue.setArgBuffer(splitKernel, 7, partialId);
        queue.setArgBuffer(splitKernel, 8, counters);
        queue.enqueue(splitKernel, (long) rows * splits * workGroup, workGroup, event);
    }
}
