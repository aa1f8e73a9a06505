package io.stepstream.gpu.cl;

import io.stepstream.gpu.OpenClException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static io.stepstream.gpu.cl.ClRuntime.call;
import static io.stepstream.gpu.cl.ClRuntime.check;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * An OpenCL context on one device with one in-order command queue, and the programs, kernels and buffers made in
 * it. Everything it created is released by {@link #close}. Not thread-safe: one owner thread.
 *
 * <p>Timestamps: the queue records none unless asked ({@link #timestamps(boolean)}), because on the H200 a queue
 * that records them ran batch-1 decode steps (~113 short kernels) 2-4% slower. Asking switches to a second,
 * timestamp-recording in-order queue of the same context (same buffers and kernels) after the current queue has
 * finished, so commands keep their order across the switch.
 *
 * <p>The calls a dispatcher makes per pass ({@link #setArgInt}, {@link #enqueue}) use exact method handle
 * invocations on preallocated native memory, so they allocate nothing.
 */
public final class ClQueue implements AutoCloseable {
    private final ClRuntime.Fn f = ClRuntime.fn();
    private final ClDevice device;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment context;
    /** The queue without timestamps; with {@link #ALWAYS_TIMESTAMPS} it records them too. */
    private final MemorySegment plainQueue;
    /** The timestamp-recording queue, made on the first {@link #timestamps(boolean) timestamps(true)}. */
    private MemorySegment timedQueue;
    /** Where commands go now: plainQueue or timedQueue. */
    private MemorySegment queue;
    private final List<MemorySegment> kernels = new ArrayList<>();
    private final List<MemorySegment> programs = new ArrayList<>();
    private final List<MemorySegment> buffers = new ArrayList<>();
    /** Scratch for the hot path: an 8-byte argument value, global and local size, one event. */
    private final MemorySegment argValue = arena.allocate(8, 8);
    private final MemorySegment globalSize = arena.allocate(JAVA_LONG);
    private final MemorySegment localSize = arena.allocate(JAVA_LONG);
    private final MemorySegment status = arena.allocate(JAVA_INT);
    private boolean closed;

    /**
     * {@code -Dstepstream.opencl.queueProfiling=true}: every queue records timestamps from the start, as before
     * session 8 (for A/B runs); default false: only after {@link #timestamps(boolean) timestamps(true)}.
     */
    public static final boolean ALWAYS_TIMESTAMPS = "true".equals(
            System.getProperty("stepstream.opencl.queueProfiling"));

    public ClQueue(ClDevice device) {
        this.device = device;
        MemorySegment props = arena.allocate(JAVA_LONG, 3);
        props.setAtIndex(JAVA_LONG, 0, ClRuntime.CL_CONTEXT_PLATFORM);
        props.setAtIndex(JAVA_LONG, 1, device.platform().address());
        props.setAtIndex(JAVA_LONG, 2, 0);
        MemorySegment ids = arena.allocate(ADDRESS);
        ids.set(ADDRESS, 0, device.id());
        MemorySegment ctx = handle(f.createContext, "clCreateContext", props, 1, ids, MemorySegment.NULL,
                MemorySegment.NULL, status);
        this.context = ctx;
        MemorySegment q;
        try {
            q = createQueue(ALWAYS_TIMESTAMPS);
        } catch (OpenClException e) {
            call(f.releaseContext, ctx);
            throw e;
        }
        this.plainQueue = q;
        this.queue = q;
        if (ALWAYS_TIMESTAMPS) {
            timedQueue = q;
        }
    }

    /** A context whose commands record timestamps from the start (probes that time every kernel by its event). */
    public static ClQueue timed(ClDevice device) {
        ClQueue q = new ClQueue(device);
        q.timestamps(true);
        return q;
    }

    private MemorySegment createQueue(boolean timestamps) {
        return handle(f.createCommandQueue, "clCreateCommandQueue", context, device.id(),
                timestamps ? ClRuntime.CL_QUEUE_PROFILING_ENABLE : 0L, status);
    }

    /**
     * Sends later commands to a queue that records timestamps (events can then be timed by {@link #eventStartEnd})
     * or to the plain one. A switch first waits for everything enqueued so far (the two in-order queues must not
     * overlap); no switch, no wait.
     */
    public void timestamps(boolean on) {
        if (on && timedQueue == null) {
            timedQueue = createQueue(true);
        }
        MemorySegment next = on ? timedQueue : plainQueue;
        if (next != queue) {
            finish();
            queue = next;
        }
    }

    /** Whether commands enqueued now record timestamps. */
    public boolean timestamps() {
        return queue == timedQueue;
    }

    public ClDevice device() {
        return device;
    }

    /** Invokes a create call whose last argument is the errcode_ret pointer; fails on a non-success code. */
    private MemorySegment handle(java.lang.invoke.MethodHandle h, String name, Object... args) {
        MemorySegment result;
        try {
            result = (MemorySegment) h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw new OpenClException(name + " failed: " + t, t);
        }
        check(status.get(JAVA_INT, 0), name);
        if (result.address() == 0) {
            throw new OpenClException(name + " returned no object");
        }
        return result;
    }

    /**
     * Compiles OpenCL C for this device with no build options (as Aparapi does). A failed build is an
     * OpenClException carrying the compiler's log.
     */
    public MemorySegment buildProgram(String source) {
        return buildProgram(source, null);
    }

    /** Compiles OpenCL C with build options (e.g. {@code -DTM=64}); null or blank means none. */
    public MemorySegment buildProgram(String source, String options) {
        MemorySegment opts = options == null || options.isBlank() ? MemorySegment.NULL
                : arena.allocateFrom(options, StandardCharsets.UTF_8);
        MemorySegment text = arena.allocateFrom(source, StandardCharsets.UTF_8);
        MemorySegment strings = arena.allocate(ADDRESS);
        strings.set(ADDRESS, 0, text);
        MemorySegment program = handle(f.createProgramWithSource, "clCreateProgramWithSource", context, 1, strings,
                MemorySegment.NULL, status);
        programs.add(program);
        MemorySegment ids = arena.allocate(ADDRESS);
        ids.set(ADDRESS, 0, device.id());
        int built = call(f.buildProgram, program, 1, ids, opts, MemorySegment.NULL, MemorySegment.NULL);
        if (built != ClRuntime.CL_SUCCESS) {
            throw new OpenClException("clBuildProgram" + (opts == MemorySegment.NULL ? "" : "(" + options + ")")
                    + " failed on " + device.name().strip() + ": "
                    + ClRuntime.errorName(built) + " (" + built + "); build log:\n" + buildLog(program));
        }
        return program;
    }

    /** The device's build log of a program this queue built (warnings; with -cl-nv-verbose ptxas' counts). */
    public String buildLog(MemorySegment program) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment size = a.allocate(JAVA_LONG);
            int s = call(f.getProgramBuildInfo, program, device.id(), ClRuntime.CL_PROGRAM_BUILD_LOG, 0L,
                    MemorySegment.NULL, size);
            if (s != ClRuntime.CL_SUCCESS) {
                return "(no log: " + ClRuntime.errorName(s) + ")";
            }
            MemorySegment log = a.allocate(size.get(JAVA_LONG, 0) + 1);
            call(f.getProgramBuildInfo, program, device.id(), ClRuntime.CL_PROGRAM_BUILD_LOG, size.get(JAVA_LONG, 0),
                    log, MemorySegment.NULL);
            return log.getString(0, StandardCharsets.UTF_8).strip();
        }
    }

    public MemorySegment createKernel(MemorySegment program, String name) {
        MemorySegment k = handle(f.createKernel, "clCreateKernel(" + name + ")", program,
                arena.allocateFrom(name, StandardCharsets.UTF_8), status);
        kernels.add(k);
        return k;
    }

    /** A read-write device buffer of {@code bytes} (at least 1). */
    public MemorySegment createBuffer(long bytes) {
        MemorySegment b = handle(f.createBuffer, "clCreateBuffer(" + bytes + " bytes)", context,
                ClRuntime.CL_MEM_READ_WRITE, Math.max(1, bytes), MemorySegment.NULL, status);
        buffers.add(b);
        return b;
    }

    public void releaseBuffer(MemorySegment buffer) {
        if (buffers.remove(buffer)) {
            check(call(f.releaseMemObject, buffer), "clReleaseMemObject");
        }
    }

    public void setArgBuffer(MemorySegment kernel, int index, MemorySegment buffer) {
        argValue.set(ADDRESS, 0, buffer);
        setArg(kernel, index, ADDRESS.byteSize(), argValue, "buffer");
    }

    /** A {@code __local} argument of {@code bytes}. */
    public void setArgLocal(MemorySegment kernel, int index, long bytes) {
        setArg(kernel, index, bytes, MemorySegment.NULL, "__local");
    }

    public void setArgInt(MemorySegment kernel, int index, int value) {
        argValue.set(JAVA_INT, 0, value);
        setArg(kernel, index, 4, argValue, "int");
    }

    public void setArgLong(MemorySegment kernel, int index, long value) {
        argValue.set(JAVA_LONG, 0, value);
        setArg(kernel, index, 8, argValue, "long");
    }

    public void setArgFloat(MemorySegment kernel, int index, float value) {
        setArgInt(kernel, index, Float.floatToRawIntBits(value));
    }

    public void setArgDouble(MemorySegment kernel, int index, double value) {
        setArgLong(kernel, index, Double.doubleToRawLongBits(value));
    }

    private void setArg(MemorySegment kernel, int index, long size, MemorySegment value, String what) {
        int s;
        try {
            s = (int) f.setKernelArg.invokeExact(kernel, index, size, value);
        } catch (Throwable t) {
            throw new OpenClException("clSetKernelArg failed: " + t, t);
        }
        if (s != ClRuntime.CL_SUCCESS) {
            check(s, "clSetKernelArg(" + index + ", " + what + ")");
        }
    }

    /**
     * Enqueues a 1D NDRange of {@code global} work items in groups of {@code local}; returns at once. With a
     * non-null {@code event} segment the call writes the pass's event there (the caller releases it).
     */
    public void enqueue(MemorySegment kernel, long global, long local, MemorySegment event) {
        globalSize.set(JAVA_LONG, 0, global);
        localSize.set(JAVA_LONG, 0, local);
        int s;
        try {
            s = (int) f.enqueueNDRangeKernel.invokeExact(queue, kernel, 1, MemorySegment.NULL, globalSize, localSize,
                    0, MemorySegment.NULL, event);
        } catch (Throwable t) {
            throw new OpenClException("clEnqueueNDRangeKernel failed: " + t, t);
        }
        if (s != ClRuntime.CL_SUCCESS) {
            check(s, "clEnqueueNDRangeKernel(global " + global + ", local " + local + ")");
        }
    }

    /** Writes {@code bytes} from native memory; the source must stay untouched until the queue has run it. */
    public void write(MemorySegment buffer, MemorySegment src, long bytes, boolean blocking) {
        transfer(f.enqueueWriteBuffer, "clEnqueueWriteBuffer", buffer, blocking, 0, bytes, src);
    }

    /** A blocking write straight from a Java array (a heap segment over it). */
    public void writeBlocking(MemorySegment buffer, MemorySegment heapSrc, long bytes) {
        transfer(f.enqueueWriteBufferHeap, "clEnqueueWriteBuffer", buffer, true, 0, bytes, heapSrc);
    }

    /** A blocking write of {@code bytes} from a Java array (a heap segment over it) to {@code offset} bytes into the buffer. */
    public void writeBlocking(MemorySegment buffer, long offset, MemorySegment heapSrc, long bytes) {
        transfer(f.enqueueWriteBufferHeap, "clEnqueueWriteBuffer", buffer, true, offset, bytes, heapSrc);
    }

    /** Sets the first {@code bytes} of the buffer to zero (blocking), a bounded native block of zeros at a time. */
    public void zero(MemorySegment buffer, long bytes) {
        long step = Math.min(bytes, 64L << 20);
        try (Arena zeros = Arena.ofConfined()) {
            MemorySegment src = zeros.allocate(Math.max(1, step), 8); // allocate zeroes the memory
            for (long at = 0; at < bytes; at += step) {
                transfer(f.enqueueWriteBuffer, "clEnqueueWriteBuffer", buffer, true, at, Math.min(step, bytes - at), src);
            }
        }
    }

    /** A blocking read into a Java array (a heap segment over it) or native memory: waits for all work before it. */
    public void readBlocking(MemorySegment buffer, MemorySegment dst, long bytes) {
        transfer(f.enqueueReadBufferHeap, "clEnqueueReadBuffer", buffer, true, 0, bytes, dst);
    }

    /** A blocking read of {@code bytes} from {@code offset} bytes into the buffer, into heap or native memory. */
    public void readBlocking(MemorySegment buffer, long offset, MemorySegment dst, long bytes) {
        transfer(f.enqueueReadBufferHeap, "clEnqueueReadBuffer", buffer, true, offset, bytes, dst);
    }

    /** A non-blocking read into native memory that must stay valid until {@link #finish}. */
    public void read(MemorySegment buffer, MemorySegment dst, long bytes) {
        transfer(f.enqueueReadBuffer, "clEnqueueReadBuffer", buffer, false, 0, bytes, dst);
    }

    /**
     * One clEnqueueRead/WriteBuffer of {@code bytes} at {@code offset} in the buffer, through the handle for native or heap
     * host memory (all four have the same C signature); no events. A transfer is rare next to the passes, so the
     * handle need not be a constant the JIT can inline.
     */
    private void transfer(MethodHandle enqueue, String call, MemorySegment buffer, boolean blocking, long offset,
                          long bytes, MemorySegment host) {
        int s;
        try {
            s = (int) enqueue.invokeExact(queue, buffer, blocking ? 1 : 0, offset, bytes, host, 0, MemorySegment.NULL,
                    MemorySegment.NULL);
        } catch (Throwable t) {
            throw new OpenClException(call + " failed: " + t, t);
        }
        check(s, call + "(" + bytes + " bytes" + (blocking ? ", blocking)" : ")"));
    }

    public void flush() {
        check(call(f.flush, queue), "clFlush");
    }

    public void finish() {
        int s;
        try {
            s = (int) f.finish.invokeExact(queue);
        } catch (Throwable t) {
            throw new OpenClException("clFinish failed: " + t, t);
        }
        check(s, "clFinish");
    }

    /** Device nanoseconds from the start to the end of a finished command's event. */
    public long[] eventStartEnd(MemorySegment event) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check(call(f.getEventProfilingInfo, event, ClRuntime.CL_PROFILING_COMMAND_START, 8L, v, MemorySegment.NULL),
                    "clGetEventProfilingInfo(START)");
            long start = v.get(JAVA_LONG, 0);
            check(call(f.getEventProfilingInfo, event, ClRuntime.CL_PROFILING_COMMAND_END, 8L, v, MemorySegment.NULL),
                    "clGetEventProfilingInfo(END)");
            return new long[]{start, v.get(JAVA_LONG, 0)};
        }
    }

    public void releaseEvent(MemorySegment event) {
        check(call(f.releaseEvent, event), "clReleaseEvent");
    }

    /** Waits for the queue, then releases every kernel, program and buffer made here, the queue and the context. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        call(f.finish, queue);
        if (timedQueue != null && timedQueue != plainQueue) {
            call(f.finish, timedQueue == queue ? plainQueue : timedQueue);
        }
        for (MemorySegment k : kernels) {
            call(f.releaseKernel, k);
        }
        for (MemorySegment p : programs) {
            call(f.releaseProgram, p);
        }
        for (MemorySegment b : buffers) {
            call(f.releaseMemObject, b);
        }
        kernels.clear();
        programs.clear();
        buffers.clear();
        call(f.releaseCommandQueue, plainQueue);
        if (timedQueue != null && timedQueue != plainQueue) {
            call(f.releaseCommandQueue, timedQueue);
        }
        call(f.releaseContext, context);
        arena.close();
    }
}
