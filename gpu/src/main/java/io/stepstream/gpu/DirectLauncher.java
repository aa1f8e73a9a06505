package io.stepstream.gpu;

import com.aparapi.Kernel;
import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs an Aparapi kernel class without Aparapi's dispatch: the OpenCL C Aparapi generates for it is built in
 * a context of our own ({@link ClQueue}), each {@code run} argument is bound to a device buffer made from the
 * Java field of the same name (or to the field's value), and {@link #launch} enqueues pass 0..P-1 setting
 * only {@code passid} between them, with no wait in between: the device runs the passes back to back in its
 * in-order queue and the host meets it once, at the blocking {@link #get} of the results.
 *
 * <p>Same argument semantics as {@link KernelLauncher}'s explicit mode: an array goes to the device on the
 * first launch that sees it (or on {@link #put}) and afterwards only on {@code put}; a field assigned a new
 * array gets a new buffer on the next put or launch; primitives are sent when they change; {@code __local}
 * arrays are sized from their Java field. Small puts are asynchronous (copied into a native staging area
 * first), large ones blocking. Counts launches and passes; optionally times every pass with profiling events.
 * Not thread-safe: one device thread.
 */
public final class DirectLauncher implements PassLauncher {
    /** Puts up to this many bytes are staged and enqueued without waiting. */
    static final long STAGED_PUT_BYTES = 1 << 20;
    /** The host flushes the queue every this many passes, so the device starts while it still enqueues. */
    private static final int FLUSH_EVERY = 32;
    /** Labels of profiled kernels are 0..MAX_LABELS-1. */
    public static final int MAX_LABELS = 32;

    private final Kernel kernel;
    private final ClDevice device;
    private final ClQueue queue;
    private final String source;
    private final List<AparapiSource.Arg> args;
    private final MemorySegment clKernel;
    private final Binding[] bindings;
    private final int passIdArg;
    private final Arena arena = Arena.ofShared();
    private long launches;
    private long passes;
    /** Increments whenever the host has waited for the whole queue: staging areas older than that are free. */
    private long syncEpoch;
    private boolean profiling;
    private MemorySegment events = MemorySegment.NULL;
    private int eventCapacity;
    private int pendingEvents;
    /** Passes of the launch whose events are pending (a pass may add extra events). */
    private int pendingPasses;
    private long profiledKernelNanos;
    private long profiledSpanNanos;
    private long profiledPasses;
    /** The label of each pending event (what kind of pass or kernel it timed; -1: none). */
    private int[] eventLabels = new int[0];
    /** Kernel nanoseconds of profiled events by label (labels 0..MAX_LABELS-1). */
    private final long[] labelNanos = new long[MAX_LABELS];
    private java.util.function.IntUnaryOperator passLabel = p -> -1;
    private boolean disposed;
    private PassHook passHook;
    /** Passes of the launch in progress (or the last one): a hook may look ahead at the schedule within it. */
    private int launchPassCount;
    /** Increments whenever an argument gets a new device buffer. */
    private long bufferEpoch;

    /**
     * Takes over passes of a launch: called for every pass after the arguments are synced; returning true means
     * the hook enqueued its own kernel for that pass (in this launcher's queue, writing the pass's event to
     * {@code event} when it is not NULL) and the Aparapi {@code run} pass is skipped. A hook may also take a pass
     * and enqueue nothing (leaving {@code event} unwritten): the pass then has no profiled time.
     */
    public interface PassHook {
        boolean enqueue(int pass, MemorySegment event);
    }

    /** What one argument of {@code run} is bound to. */
    private static final class Binding {
        final AparapiSource.Arg arg;
        final Field field;
        final int elementBytes;
        Object array;
        MemorySegment buffer;
        long bytes;
        MemorySegment staging;
        long stagingEpoch = -1;
        long lastBits;
        boolean set;
        /** Bound to a buffer of its own size with no Java mirror ({@link #deviceOnly}): never uploaded or read. */
        boolean deviceOnly;

        Binding(AparapiSource.Arg arg, Field field, int elementBytes) {
            this.arg = arg;
            this.field = field;
            this.elementBytes = elementBytes;
        }
    }

    public DirectLauncher(Kernel kernel, ClDevice device) {
        this.kernel = kernel;
        this.device = device;
        this.source = AparapiSource.generate(kernel);
        if (Boolean.getBoolean("stepstream.opencl.showSource")) {
            System.err.println("// OpenCL C generated by Aparapi for " + kernel.getClass().getName() + "\n" + source);
        }
        this.args = AparapiSource.parseRunArgs(source);
        this.bindings = new Binding[args.size()];
        int passId = -1;
        for (AparapiSource.Arg a : args) {
            if (a.name().equals("passid")) {
                passId = a.index();
                continue;
            }
            bindings[a.index()] = bind(kernel.getClass(), a);
        }
        this.passIdArg = passId;
        this.queue = new ClQueue(device);
        try {
            MemorySegment program = queue.buildProgram(source);
            this.clKernel = queue.createKernel(program, "run");
        } catch (RuntimeException e) {
            queue.close();
            throw e;
        }
    }

    /** The binding of one argument: its field, checked against the C type Aparapi declared for it. */
    private static Binding bind(Class<?> type, AparapiSource.Arg a) {
        Field field = field(type, a.fieldName());
        Class<?> t = field.getType();
        int bytes = AparapiSource.elementBytes(a.type());
        if (a.isArrayLength()) {
            if (!t.isArray() || a.pointer() || !a.type().equals("int")) {
                throw new OpenClException(a.name() + ": a length argument of a non-array field " + field);
            }
            return new Binding(a, field, bytes);
        }
        Class<?> element = a.pointer() ? t.getComponentType() : t;
        if (element == null || !matches(element, a.type())) {
            throw new OpenClException("kernel argument '" + a.type() + (a.pointer() ? " *" : " ") + a.name()
                    + "' does not match field " + field + " (only primitives and primitive arrays are supported)");
        }
        return new Binding(a, field, bytes);
    }

    private static boolean matches(Class<?> java, String c) {
        return (java == float.class && c.equals("float")) || (java == int.class && c.equals("int"))
                || (java == char.class && c.equals("unsigned short")) || (java == byte.class && c.equals("char"))
                || (java == short.class && c.equals("short")) || (java == long.class && c.equals("long"))
                || (java == double.class && c.equals("double"));
    }

    private static Field field(Class<?> type, String name) {
        for (Class<?> c = type; c != null && c != Kernel.class; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                return f;
            } catch (NoSuchFieldException e) {
                // look in the superclass
            }
        }
        throw new OpenClException("generated kernel argument '" + name + "' has no field in " + type.getName());
    }

    public ClDevice device() {
        return device;
    }

    /** The queue (and context) the passes run in: other programs built there share this launcher's buffers. */
    public ClQueue queue() {
        return queue;
    }

    /** Changes whenever some field got a new device buffer: a hook re-reads {@link #buffer} only then. */
    public long bufferEpoch() {
        return bufferEpoch;
    }

    /** Installs (or with null removes) the hook that may enqueue its own kernel instead of a pass. */
    /** Passes of the launch being enqueued (the last launch's between launches); 0 before the first. */
    public int passesThisLaunch() {
        return launchPassCount;
    }

    public void passHook(PassHook hook) {
        this.passHook = hook;
    }

    /**
     * The device buffer now bound to the kernel field {@code fieldName}; it changes when the field gets an array
     * of another size (so callers compare it on each use). Fails if the field is no buffer argument or was never
     * put or launched.
     */
    public MemorySegment buffer(String fieldName) {
        Binding b = bufferBinding(fieldName);
        if (b.buffer == null) {
            throw new IllegalStateException("kernel field " + fieldName + " has no device buffer yet");
        }
        return b.buffer;
    }

    /**
     * Binds kernel field {@code fieldName} to a zero-filled device buffer of {@code bytes} that has no Java mirror
     * (the field keeps a placeholder array, which must not be replaced): for device state larger than a Java array,
     * such as a KV pool over 2 GiB. Hooks reach it through {@link #buffer}; {@code put} and {@code get} of the
     * placeholder fail, and the Aparapi-translated passes must not index it.
     */
    public MemorySegment deviceOnly(String fieldName, long bytes) {
        Binding b = bufferBinding(fieldName);
        Object placeholder = get(b.field);
        requireArray(b, placeholder);
        if (b.buffer != null) {
            queue.finish();
            syncEpoch++;
            queue.releaseBuffer(b.buffer);
        }
        b.buffer = queue.createBuffer(bytes);
        queue.zero(b.buffer, bytes);
        bufferEpoch++;
        b.bytes = bytes;
        b.staging = null;
        b.array = placeholder;
        b.deviceOnly = true;
        queue.setArgBuffer(clKernel, b.arg.index(), b.buffer);
        return b.buffer;
    }

    /** Bytes of field {@code fieldName}'s device-only buffer ({@link #deviceOnly}), or -1 if it mirrors a Java array. */
    public long deviceOnlyBytes(String fieldName) {
        Binding b = bufferBinding(fieldName);
        return b.deviceOnly ? b.bytes : -1;
    }

    /** The binding of kernel field {@code fieldName}, which must be a global buffer argument. */
    private Binding bufferBinding(String fieldName) {
        for (Binding b : bindings) {
            if (b != null && b.arg.pointer() && b.arg.space() != AparapiSource.Space.LOCAL
                    && b.field.getName().equals(fieldName)) {
                return b;
            }
        }
        throw new IllegalArgumentException("kernel field " + fieldName + " is not a buffer argument of "
                + kernel.getClass().getSimpleName());
    }

    /** The OpenCL C this launcher built. */
    public String source() {
        return source;
    }

    /** The parsed parameters of {@code run}, in order. */
    public List<AparapiSource.Arg> args() {
        return args;
    }

    @Override
    public long launches() {
        return launches;
    }

    /** Kernel enqueues since creation (passes of all launches). */
    @Override
    public long passes() {
        return passes;
    }

    @Override
    public String dispatchName() {
        return Dispatch.DIRECT.label();
    }

    /**
     * With profiling on, every pass gets an event; when the host next waits ({@link #get} or {@link #finish})
     * their device times are added up: kernel time (sum of pass durations) and span (first start to last end).
     */
    @Override
    public void profile(boolean on) {
        finish();
        queue.timestamps(on);
        profiling = on;
    }

    /** Nanoseconds on the device of profiled passes: {kernel sum, span first start..last end, passes}. */
    @Override
    public long[] profiledNanos() {
        return new long[]{profiledKernelNanos, profiledSpanNanos, profiledPasses};
    }

    /**
     * Labels each pass's profiled kernel time ({@code label(pass)} in 0..MAX_LABELS-1, or -1 for none): a step's
     * owner passes its op schedule, so {@link #profiledLabelNanos} splits the kernel time by op.
     */
    public void passLabels(java.util.function.IntUnaryOperator label) {
        this.passLabel = label;
    }

    /** Kernel nanoseconds of profiled events by label (a copy; index = label). */
    @Override
    public long[] profiledLabelNanos() {
        return labelNanos.clone();
    }

    /**
     * For a hook that enqueues a second kernel within a pass (a split-K reduction): the event slot to time it
     * under {@code label}, or NULL when not profiling. Call it just before that enqueue.
     */
    public MemorySegment extraEvent(int label) {
        return profiling ? nextEvent(label) : MemorySegment.NULL;
    }

    private MemorySegment nextEvent(int label) {
        if (pendingEvents == eventCapacity) {
            int capacity = Math.max(64, 2 * eventCapacity);
            MemorySegment grown = arena.allocate(ValueLayout.ADDRESS, capacity);
            if (pendingEvents > 0) {
                MemorySegment.copy(events, 0, grown, 0, pendingEvents * ValueLayout.ADDRESS.byteSize());
            }
            events = grown;
            eventLabels = java.util.Arrays.copyOf(eventLabels, capacity);
            eventCapacity = capacity;
        }
        eventLabels[pendingEvents] = label;
        // NULL until an enqueue fills it: a hook may take a pass and enqueue nothing for it (see collectProfile).
        events.setAtIndex(ValueLayout.ADDRESS, pendingEvents, MemorySegment.NULL);
        return events.asSlice(pendingEvents++ * ValueLayout.ADDRESS.byteSize(), ValueLayout.ADDRESS.byteSize());
    }

    @Override
    public void launch(int globalSize, int localSize, int passCount) {
        if (passCount < 1) {
            throw new IllegalArgumentException("passes must be >= 1, got " + passCount);
        }
        if (localSize < 1 || globalSize % localSize != 0) {
            throw new IllegalArgumentException("global size " + globalSize + " is not a multiple of local size "
                    + localSize);
        }
        syncArguments();
        if (pendingEvents > 0) {
            collectProfile();
        }
        launchPassCount = passCount;
        for (int p = 0; p < passCount; p++) {
            MemorySegment event = profiling ? nextEvent(passLabel.applyAsInt(p)) : MemorySegment.NULL;
            if (passHook == null || !passHook.enqueue(p, event)) {
                if (passIdArg >= 0) {
                    queue.setArgInt(clKernel, passIdArg, p);
                }
                queue.enqueue(clKernel, globalSize, localSize, event);
            }
            if (p % FLUSH_EVERY == 0) {
                queue.flush();
            }
        }
        queue.flush();
        pendingPasses = profiling ? passCount : 0;
        launches++;
        passes += passCount;
    }

    /** Binds every array whose field changed (uploading it), sizes local arrays, sends changed primitives. */
    private void syncArguments() {
        for (Binding b : bindings) {
            if (b == null) {
                continue;
            }
            Object value = get(b.field);
            AparapiSource.Arg a = b.arg;
            if (a.isArrayLength()) {
                int length = value == null ? 0 : java.lang.reflect.Array.getLength(value);
                setPrimitive(b, length);
            } else if (a.space() == AparapiSource.Space.LOCAL) {
                if (value != b.array) {
                    requireArray(b, value);
                    queue.setArgLocal(clKernel, a.index(), (long) java.lang.reflect.Array.getLength(value)
                            * b.elementBytes);
                    b.array = value;
                }
            } else if (a.pointer()) {
                if (value != b.array) {
                    requireArray(b, value);
                    requireMirrored(b);
                    rebind(b, value);
                    upload(b);
                }
            } else {
                setPrimitive(b, bitsOf(value));
            }
        }
    }

    private void requireArray(Binding b, Object value) {
        if (value == null) {
            throw new OpenClException(kernel.getClass().getSimpleName() + "." + b.field.getName()
                    + " is null but the kernel reads it");
        }
    }

    private void requireMirrored(Binding b) {
        if (b.deviceOnly) {
            throw new OpenClException(kernel.getClass().getSimpleName() + "." + b.field.getName() + " lives on the device"
                    + " only (" + b.bytes + " bytes, no Java mirror): it cannot be put, read or given a new array");
        }
    }

    private void setPrimitive(Binding b, long bits) {
        if (b.set && b.lastBits == bits) {
            return;
        }
        int index = b.arg.index();
        switch (b.elementBytes) {
            case 8 -> queue.setArgLong(clKernel, index, bits);
            case 4 -> queue.setArgInt(clKernel, index, (int) bits);
            default -> throw new OpenClException("primitive kernel argument " + b.arg + " of " + b.elementBytes
                    + " bytes is not supported");
        }
        b.lastBits = bits;
        b.set = true;
    }

    private static long bitsOf(Object v) {
        return switch (v) {
            case Integer i -> i;
            case Float f -> Float.floatToRawIntBits(f) & 0xFFFFFFFFL;
            case Long l -> l;
            case Double d -> Double.doubleToRawLongBits(d);
            default -> throw new OpenClException("unsupported primitive kernel field value " + v);
        };
    }

    private Object get(Field f) {
        try {
            return f.get(kernel);
        } catch (IllegalAccessException e) {
            throw new OpenClException("cannot read kernel field " + f + ": " + e, e);
        }
    }

    /** Gives the binding a device buffer for {@code array} (a new one unless the size is the same). */
    private void rebind(Binding b, Object array) {
        long bytes = (long) java.lang.reflect.Array.getLength(array) * b.elementBytes;
        if (b.buffer == null || bytes != b.bytes) {
            if (b.buffer != null) {
                queue.finish(); // a pending command may still use the old buffer or staging area
                syncEpoch++;
                queue.releaseBuffer(b.buffer);
            }
            b.buffer = queue.createBuffer(bytes);
            bufferEpoch++;
            b.bytes = bytes;
            b.staging = null;
            queue.setArgBuffer(clKernel, b.arg.index(), b.buffer);
        }
        b.array = array;
    }

    /** Sends the binding's array to its buffer: staged and asynchronous when small, else blocking. */
    private void upload(Binding b) {
        if (b.bytes <= STAGED_PUT_BYTES) {
            if (b.staging == null) {
                b.staging = arena.allocate(Math.max(1, b.bytes), 8);
            } else if (b.stagingEpoch == syncEpoch) {
                finish(); // the previous asynchronous write from this staging area may not have run yet
            }
            MemorySegment.copy(heap(b.array), 0, b.staging, 0, b.bytes);
            queue.write(b.buffer, b.staging, b.bytes, false);
            b.stagingEpoch = syncEpoch;
        } else {
            queue.writeBlocking(b.buffer, heap(b.array), b.bytes);
        }
    }

    private static MemorySegment heap(Object array) {
        return switch (array) {
            case float[] a -> MemorySegment.ofArray(a);
            case int[] a -> MemorySegment.ofArray(a);
            case char[] a -> MemorySegment.ofArray(a);
            case byte[] a -> MemorySegment.ofArray(a);
            case short[] a -> MemorySegment.ofArray(a);
            case long[] a -> MemorySegment.ofArray(a);
            case double[] a -> MemorySegment.ofArray(a);
            default -> throw new OpenClException("unsupported kernel array " + array.getClass().getSimpleName());
        };
    }

    private void putArray(Object array) {
        for (Binding b : bindings) {
            if (b != null && b.arg.pointer() && b.arg.space() != AparapiSource.Space.LOCAL && get(b.field) == array) {
                requireMirrored(b);
                rebind(b, array);
                upload(b);
            }
        }
    }

    @Override
    public void put(float[] a) {
        putArray(a);
    }

    @Override
    public void put(int[] a) {
        putArray(a);
    }

    @Override
    public void put(char[] a) {
        putArray(a);
    }

    @Override
    public void put(byte[] a) {
        putArray(a);
    }

    /** Reads the array back from the device after everything enqueued so far: the host's one wait of a step. */
    @Override
    public void get(float[] a) {
        get(a, 0, a, 0, a.length);
    }

    /** Only the elements asked for cross the bus, straight into {@code dst} (no staging copy in {@code a}). */
    @Override
    public void get(float[] a, int from, float[] dst, int dstFrom, int count) {
        java.util.Objects.checkFromIndexSize(from, count, a.length);
        java.util.Objects.checkFromIndexSize(dstFrom, count, dst.length);
        for (Binding b : bindings) {
            if (b != null && b.array == a && b.buffer != null) {
                requireMirrored(b);
                if (count > 0) {
                    queue.readBlocking(b.buffer, (long) from * Float.BYTES,
                            MemorySegment.ofArray(dst).asSlice((long) dstFrom * Float.BYTES), (long) count * Float.BYTES);
                } else {
                    queue.finish();
                }
                syncEpoch++;
                if (pendingEvents > 0) {
                    collectProfile();
                }
                return;
            }
        }
        throw new IllegalArgumentException("get: the array is not bound to a kernel buffer (never put or launched)");
    }

    /** Waits for everything enqueued. */
    @Override
    public void finish() {
        queue.finish();
        syncEpoch++;
        if (pendingEvents > 0) {
            collectProfile();
        }
    }

    private void collectProfile() {
        queue.finish();
        long first = Long.MAX_VALUE;
        long last = Long.MIN_VALUE;
        long sum = 0;
        for (int p = 0; p < pendingEvents; p++) {
            MemorySegment e = events.getAtIndex(ValueLayout.ADDRESS, p);
            if (e.address() == 0) {
                continue; // a pass a hook took without enqueuing anything
            }
            long[] se = queue.eventStartEnd(e);
            queue.releaseEvent(e);
            sum += se[1] - se[0];
            int label = eventLabels[p];
            if (label >= 0 && label < MAX_LABELS) {
                labelNanos[label] += se[1] - se[0];
            }
            first = Math.min(first, se[0]);
            last = Math.max(last, se[1]);
        }
        profiledKernelNanos += sum;
        profiledSpanNanos += first == Long.MAX_VALUE ? 0 : last - first;
        profiledPasses += pendingPasses;
        pendingEvents = 0;
        pendingPasses = 0;
    }

    @Override
    public void dispose() {
        if (disposed) {
            return;
        }
        disposed = true;
        try {
            if (pendingEvents > 0) {
                collectProfile();
            }
        } finally {
            queue.close();
            arena.close();
        }
    }
}
