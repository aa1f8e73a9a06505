package io.stepstream.engine.format.gguf;

import io.stepstream.engine.tensor.TensorType;

import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Writes GGUF version 3 files (little-endian): metadata of every GGUF value type and tensors, each tensor's
 * data starting at a multiple of the alignment ({@code general.alignment}, default 32) and padded to it, as
 * ggml writes them. Collect metadata and tensors, then {@link #write(Path)}; tensor data is read from the
 * given segments only then, so they must stay alive until the file is written.
 *
 * <p>What {@link GgufFile} reads back is exactly what was put in: the same keys in the same order with the
 * same value types and values, the same tensors with the same bytes.
 */
public final class GgufWriter {
    public static final int VERSION = 3;
    /** ggml keeps tensor names in a 64-byte buffer with a terminating NUL. */
    public static final int MAX_TENSOR_NAME_BYTES = 63;
    private static final int COPY_CHUNK = 1 << 20;

    private final Map<String, GgufValue> metadata = new LinkedHashMap<>();
    private final List<PendingTensor> tensors = new ArrayList<>();
    private final Set<String> tensorNames = new HashSet<>();

    private record PendingTensor(String name, TensorType type, long[] dims, MemorySegment data) {
    }

    /** Sets {@code key} (a key set before keeps its place); {@code general.alignment} must be a power-of-two UINT32. */
    public GgufWriter put(String key, GgufValue value) {
        Objects.requireNonNull(key, "key");
        Objects.requireNonNull(value, "value");
        if (key.equals(GgufFile.ALIGNMENT_KEY)) {
            if (!(value instanceof GgufValue.Int i) || i.type() != GgufValueType.UINT32 || i.value() == 0
                    || Long.bitCount(i.value()) != 1 || i.value() > (1L << 30)) {
                throw new IllegalArgumentException(GgufFile.ALIGNMENT_KEY
                        + " must be a UINT32 power of two up to 2^30, got " + value);
            }
        }
        metadata.put(key, value);
        return this;
    }

    public GgufWriter putString(String key, String value) {
        return put(key, GgufValue.string(value));
    }

    public GgufWriter putUInt32(String key, long value) {
        return put(key, GgufValue.uint32(value));
    }

    public GgufWriter putInt32(String key, int value) {
        return put(key, GgufValue.int32(value));
    }

    public GgufWriter putUInt64(String key, long value) {
        return put(key, GgufValue.uint64(value));
    }

    public GgufWriter putFloat32(String key, float value) {
        return put(key, GgufValue.float32(value));
    }

    public GgufWriter putBool(String key, boolean value) {
        return put(key, GgufValue.bool(value));
    }

    public GgufWriter putArray(String key, GgufValue.Array value) {
        return put(key, value);
    }

    /** Sets {@code general.alignment}. */
    public GgufWriter alignment(int alignment) {
        return put(GgufFile.ALIGNMENT_KEY, GgufValue.uint32(alignment));
    }

    public int alignment() {
        return metadata.get(GgufFile.ALIGNMENT_KEY) instanceof GgufValue.Int i ? (int) i.value()
                : GgufFile.DEFAULT_ALIGNMENT;
    }

    /**
     * Adds a tensor. {@code dims} are in GGUF order (dims[0] is the row length, a multiple of the type's block
     * size); {@code data} must hold exactly the bytes the type takes for that many elements.
     */
    public GgufWriter addTensor(String name, TensorType type, long[] dims, MemorySegment data) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(data, "data");
        long[] d = dims.clone();
        int nameBytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (nameBytes > MAX_TENSOR_NAME_BYTES) {
            throw new IllegalArgumentException("tensor name '" + name + "' is " + nameBytes + " bytes; ggml allows "
                    + MAX_TENSOR_NAME_BYTES);
        }
        if (tensorNames.contains(name)) {
            throw new IllegalArgumentException("duplicate tensor name '" + name + "'");
        }
        if (d.length > GgufFile.MAX_DIMS) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + d.length + " dims, at most "
                    + GgufFile.MAX_DIMS);
        }
        long elements = 1;
        for (long x : d) {
            if (x < 0 || (x != 0 && elements > GgufFile.MAX_ELEMENTS / x)) {
                throw new IllegalArgumentException("tensor '" + name + "' has bad dims " + java.util.Arrays.toString(d));
            }
            elements *= x;
        }
        long rowLength = d.length == 0 ? 1 : d[0];
        if (rowLength % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor '" + name + "': row length " + rowLength
                    + " is not a multiple of the " + type + " block size " + type.blockSize());
        }
        long expected = type.bytesFor(elements);
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + elements + " " + type + " elements take "
                    + expected + " bytes, data has " + data.byteSize());
        }
        tensorNames.add(name);
        tensors.add(new PendingTensor(name, type, d, data));
        return this;
    }

    /** Adds a tensor whose bytes are {@code data} (not copied: leave it unchanged until written). */
    public GgufWriter addTensor(String name, TensorType type, long[] dims, byte[] data) {
        return addTensor(name, type, dims, MemorySegment.ofArray(data));
    }

    /** Writes the file through a temporary sibling that is moved into place when complete. */
    public void write(Path file) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(tmp), COPY_CHUNK)) {
                writeTo(out);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    public byte[] toByteArray() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try {
            writeTo(bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e); // a ByteArrayOutputStream does not fail
        }
        return bytes.toByteArray();
    }

    public void writeTo(OutputStream stream) throws IOException {
        int alignment = alignment();
        LittleEndianOut out = new LittleEndianOut(stream);
        out.u32(GgufFile.MAGIC);
        out.u32(VERSION);
        out.u64(tensors.size());
        out.u64(metadata.size());
        for (Map.Entry<String, GgufValue> e : metadata.entrySet()) {
            out.string(e.getKey());
            out.u32(e.getValue().type().id());
            value(out, e.getValue());
        }
        long offset = 0;
        for (PendingTensor t : tensors) {
            out.string(t.name());
            out.u32(t.dims().length);
            for (long d : t.dims()) {
                out.u64(d);
            }
            out.u32(t.type().ggmlId());
            out.u64(offset);
            offset += padded(t.data().byteSize(), alignment);
        }
        out.padTo(alignment);
        for (PendingTensor t : tensors) {
            out.segment(t.data());
            out.padTo(alignment);
        }
        stream.flush();
    }

    private static long padded(long n, int alignment) {
        return (n + alignment - 1) / alignment * alignment;
    }

    private static void value(LittleEndianOut out, GgufValue v) throws IOException {
        switch (v) {
            case GgufValue.Int i -> out.integer(i.type(), i.value());
            case GgufValue.Float32 f -> out.u32(Float.floatToRawIntBits(f.value()));
            case GgufValue.Float64 f -> out.u64(Double.doubleToRawLongBits(f.value()));
            case GgufValue.Bool b -> out.u8(b.value() ? 1 : 0);
            case GgufValue.Text t -> out.string(t.value());
            case GgufValue.Array a -> array(out, a);
        }
    }

    private static void array(LittleEndianOut out, GgufValue.Array a) throws IOException {
        out.u32(a.elementType().id());
        out.u64(a.length());
        switch (a.storage()) {
            case byte[] x -> out.bytes(x);
            case short[] x -> out.elements(MemorySegment.ofArray(x), ValueLayout.JAVA_SHORT, GgufFile.U16);
            case int[] x -> out.elements(MemorySegment.ofArray(x), ValueLayout.JAVA_INT, GgufFile.U32);
            case long[] x -> out.elements(MemorySegment.ofArray(x), ValueLayout.JAVA_LONG, GgufFile.U64);
            case float[] x -> out.elements(MemorySegment.ofArray(x), ValueLayout.JAVA_FLOAT, GgufFile.F32);
            case double[] x -> out.elements(MemorySegment.ofArray(x), ValueLayout.JAVA_DOUBLE, GgufFile.F64);
            case boolean[] x -> {
                for (boolean b : x) {
                    out.u8(b ? 1 : 0);
                }
            }
            case String[] x -> {
                for (String s : x) {
                    out.string(s);
                }
            }
            case GgufValue.Array[] x -> {
                for (GgufValue.Array inner : x) {
                    array(out, inner);
                }
            }
            default -> throw new IllegalStateException("unreachable");
        }
    }

    /** Little-endian primitives over a stream, counting bytes so padding can be computed. */
    private static final class LittleEndianOut {
        private final OutputStream out;
        private final byte[] scratch = new byte[8];
        private long written;

        LittleEndianOut(OutputStream out) {
            this.out = out;
        }

        void u8(int v) throws IOException {
            out.write(v);
            written++;
        }

        void u32(int v) throws IOException {
            fixed(v, 4);
        }

        void u64(long v) throws IOException {
            fixed(v, 8);
        }

        void integer(GgufValueType type, long v) throws IOException {
            fixed(v, type.minBytes());
        }

        private void fixed(long v, int width) throws IOException {
            for (int i = 0; i < width; i++) {
                scratch[i] = (byte) (v >>> (8 * i));
            }
            out.write(scratch, 0, width);
            written += width;
        }

        void bytes(byte[] b) throws IOException {
            out.write(b);
            written += b.length;
        }

        void string(String s) throws IOException {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            bytes(b);
        }

        /** Elements of a Java array, re-encoded little-endian. */
        void elements(MemorySegment src, ValueLayout javaLayout, ValueLayout fileLayout) throws IOException {
            long count = src.byteSize() / javaLayout.byteSize();
            MemorySegment le = MemorySegment.ofArray(new byte[(int) src.byteSize()]);
            MemorySegment.copy(src, javaLayout, 0, le, fileLayout, 0, count);
            segment(le);
        }

        void segment(MemorySegment data) throws IOException {
            long size = data.byteSize();
            byte[] chunk = new byte[(int) Math.min(COPY_CHUNK, Math.max(size, 1))];
            for (long off = 0; off < size; off += chunk.length) {
                int n = (int) Math.min(chunk.length, size - off);
                MemorySegment.copy(data, ValueLayout.JAVA_BYTE, off, chunk, 0, n);
                out.write(chunk, 0, n);
            }
            written += size;
        }

        void padTo(int alignment) throws IOException {
            int pad = (int) ((alignment - written % alignment) % alignment);
            for (int i = 0; i < pad; i++) {
                u8(0);
            }
        }
    }
}
