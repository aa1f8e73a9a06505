package io.stepstream.gpu;

/**
 * What {@link DeviceLlama2} needs from a kernel dispatcher: explicit transfers of the kernel's arrays, and a
 * launch of P passes of the kernel over a 1D range. {@link KernelLauncher} does it through Aparapi's
 * {@code execute}, {@link DirectLauncher} through our own OpenCL queue.
 */
interface PassLauncher {
    void put(float[] a);

    void put(int[] a);

    void put(char[] a);

    void put(byte[] a);

    /** Reads the array back from the device, after every launch so far has finished. */
    void get(float[] a);

    /**
     * Reads elements {@code [from, from + count)} of the array's device copy into {@code dst} at {@code dstFrom},
     * after every launch so far has finished; {@code a} itself may stay stale. A dispatcher that can only read
     * whole arrays reads {@code a} and copies.
     */
    default void get(float[] a, int from, float[] dst, int dstFrom, int count) {
        get(a);
        System.arraycopy(a, from, dst, dstFrom, count);
    }

    /** Runs passes 0..passes-1 of the kernel on {@code globalSize} work items in groups of {@code localSize}. */
    void launch(int globalSize, int localSize, int passes);

    long launches();

    /** Passes (kernel enqueues) of all launches so far. */
    long passes();

    /** Waits until every launch and transfer enqueued so far has finished. */
    void finish();

    /** "aparapi" or "direct". */
    String dispatchName();

    /** Times each pass with OpenCL profiling events from now on (or stops); unsupported dispatchers ignore it. */
    default void profile(boolean on) {
    }

    /** {kernel nanoseconds summed over profiled passes, span nanoseconds per launch summed, profiled passes}. */
    default long[] profiledNanos() {
        return new long[3];
    }

    /** Kernel nanoseconds of profiled passes by label (see DirectLauncher#passLabels); empty if unsupported. */
    default long[] profiledLabelNanos() {
        return new long[0];
    }

    void dispose();
}
