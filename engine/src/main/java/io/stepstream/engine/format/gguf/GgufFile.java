package io.stepstream.engine.format.gguf;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.tensor.TensorType;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A GGUF file (version 2 or 3, little-endian), memory-mapped with the FFM API so files of any size map
 * without copying. The header, every metadata value and every tensor info are parsed and validated when the
 * file is opened; tensor data stays in the mapping and is handed out as {@link MemorySegment} slices, which
 * become invalid when the file is closed.
 *
 * <p>Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata (string key,
 * u32 value type, value), the tensor infos (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64
 * offset), padding to {@code general.alignment} (default 32), then the data section; each tensor's offset is
 * relative to the data section and a multiple of the alignment. Strings are a u64 byte length and UTF-8.
 *
 * <p>Every count, length and offset is checked against the bytes actually in the file before anything is
 * allocated for it, so a corrupt or hostile file fails with a {@link ModelLoadException} naming the file and
 * the problem, never with another exception or an absurd allocation.
 */
public final class GgufFile implements AutoCloseable {
    public static final int DEFAULT_ALIGNMENT = 32;
    public static final String ALIGNMENT_KEY = "general.alignment";
    /** ggml's GGML_MAX_DIMS. */
    public static final int MAX_DIMS = 4;
    /** More elements than this in one tensor (or one dimension) is taken for corruption. */
    public static final long MAX_ELEMENTS = 1L << 40;
    /** Arrays of arrays nested deeper than this are refused (recursion would otherwise follow the file). */
    public static final int MAX_ARRAY_NESTING = 16;
    /** "GGUF" read as a little-endian u32. */
    static final int MAGIC = 0x46554747;
    /** Largest Java array the JVM reliably allocates. */
    private static final long MAX_JAVA_ARRAY = Integer.MAX_VALUE - 16;
    private static final long MAX_ALIGNMENT = 1L << 30;

    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final String name;
    private final Arena arena;
    private final MemorySegment contents;
    private final int version;
    private final int alignment;
    private final long dataOffset;
    private final Map<String, GgufValue> metadata;
    private final List<TensorInfo> tensors;
    private final Map<String, TensorInfo> tensorsByName;
    private boolean closed;

    private GgufFile(String name, Arena arena, MemorySegment contents, Parser p) {
        this.name = name;
        this.arena = arena;
        this.contents = contents;
        this.version = p.version;
        this.alignment = p.alignment;
        this.dataOffset = p.dataOffset;
        this.metadata = Collections.unmodifiableMap(p.metadata);
        this.tensors = List.copyOf(p.tensors);
        this.tensorsByName = Collections.unmodifiableMap(p.tensorsByName);
    }

    /** Maps and parses {@code file}; the mapping lives until {@link #close()}. */
    public static GgufFile open(Path file) {
        String name = file.toString();
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment contents = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
            return new GgufFile(name, arena, contents, new Parser(name, contents).parse());
        } catch (NoSuchFileException e) {
            arena.close();
            throw new ModelLoadException(name + ": no such file", e);
        } catch (IOException e) {
            arena.close();
            throw new ModelLoadException(name + ": cannot read: " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Parses GGUF bytes already in memory (a heap or native segment the caller keeps alive); {@code name}
     * is used in error messages. Closing the result does not free {@code contents}.
     */
    public static GgufFile parse(String name, MemorySegment contents) {
        return new GgufFile(name, null, contents, new Parser(name, contents).parse());
    }

    /** The path (or name) given when opening; every error message starts with it. */
    public String name() {
        return name;
    }

    public int version() {
        return version;
    }

    public int alignment() {
        return alignment;
    }

    /** Byte offset of the data section in the file. */
    public long dataOffset() {
        return dataOffset;
    }

    public long size() {
        return contents.byteSize();
    }

    /** All metadata in file order. */
    public Map<String, GgufValue> metadata() {
        return metadata;
    }

    public boolean containsKey(String key) {
        return metadata.containsKey(key);
    }

    /** The value of {@code key}; a missing key is a load error. */
    public GgufValue get(String key) {
        GgufValue v = metadata.get(key);
        if (v == null) {
            throw new ModelLoadException(name + ": metadata key '" + key + "' is missing");
        }
        return v;
    }

    public String getString(String key) {
        return switch (get(key)) {
            case GgufValue.Text t -> t.value();
            case GgufValue other -> throw wrongType(key, other, "a string");
        };
    }

    public String getString(String key, String defaultValue) {
        return containsKey(key) ? getString(key) : defaultValue;
    }

    /** Any integer type whose value fits in an int. */
    public int getInt(String key) {
        return (int) integer(key, Integer.MIN_VALUE, Integer.MAX_VALUE, "an int");
    }

    public int getInt(String key, int defaultValue) {
        return containsKey(key) ? getInt(key) : defaultValue;
    }

    /** Any integer type whose value fits in a long. */
    public long getLong(String key) {
        return integer(key, Long.MIN_VALUE, Long.MAX_VALUE, "a long");
    }

    public long getLong(String key, long defaultValue) {
        return containsKey(key) ? getLong(key) : defaultValue;
    }

    /** A FLOAT32, or a FLOAT64 rounded to float. */
    public float getFloat(String key) {
        return switch (get(key)) {
            case GgufValue.Float32 f -> f.value();
            case GgufValue.Float64 f -> (float) f.value();
            case GgufValue other -> throw wrongType(key, other, "a float");
        };
    }

    public float getFloat(String key, float defaultValue) {
        return containsKey(key) ? getFloat(key) : defaultValue;
    }

    /** A FLOAT64, or a FLOAT32 widened. */
    public double getDouble(String key) {
        return switch (get(key)) {
            case GgufValue.Float32 f -> f.value();
            case GgufValue.Float64 f -> f.value();
            case GgufValue other -> throw wrongType(key, other, "a float");
        };
    }

    public boolean getBool(String key) {
        return switch (get(key)) {
            case GgufValue.Bool b -> b.value();
            case GgufValue other -> throw wrongType(key, other, "a bool");
        };
    }

    public boolean getBool(String key, boolean defaultValue) {
        return containsKey(key) ? getBool(key) : defaultValue;
    }

    public GgufValue.Array getArray(String key) {
        return switch (get(key)) {
            case GgufValue.Array a -> a;
            case GgufValue other -> throw wrongType(key, other, "an array");
        };
    }

    /** An array of any integer type whose elements fit in an int. */
    public int[] getInts(String key) {
        GgufValue.Array a = getArray(key);
        try {
            return a.ints();
        } catch (IllegalStateException e) {
            throw new ModelLoadException(name + ": metadata '" + key + "': " + e.getMessage(), e);
        }
    }

    /** An array of any integer type whose elements fit in a long. */
    public long[] getLongs(String key) {
        GgufValue.Array a = getArray(key);
        try {
            return a.longs();
        } catch (IllegalStateException e) {
            throw new ModelLoadException(name + ": metadata '" + key + "': " + e.getMessage(), e);
        }
    }

    /** An array of FLOAT32. */
    public float[] getFloats(String key) {
        GgufValue.Array a = getArray(key);
        if (a.elementType() != GgufValueType.FLOAT32) {
            throw wrongType(key, a, "an array of FLOAT32");
        }
        return a.floats();
    }

    /** An array of STRING. */
    public List<String> getStrings(String key) {
        GgufValue.Array a = getArray(key);
        if (a.elementType() != GgufValueType.STRING) {
            throw wrongType(key, a, "an array of STRING");
        }
        return a.strings();
    }

    private long integer(String key, long min, long max, String what) {
        GgufValue v = get(key);
        if (!(v instanceof GgufValue.Int i)) {
            throw wrongType(key, v, "an integer");
        }
        if (!i.inRange(min, max)) {
            throw new ModelLoadException(name + ": metadata '" + key + "' = " + i + " does not fit in " + what);
        }
        return i.value();
    }

    private ModelLoadException wrongType(String key, GgufValue v, String expected) {
        String found = v instanceof GgufValue.Array a ? "an array of " + a.elementType() : v.type().toString();
        return new ModelLoadException(name + ": metadata '" + key + "' is " + found + ", expected " + expected);
    }

    /** All tensors in file order. */
    public List<TensorInfo> tensors() {
        return tensors;
    }

    public boolean hasTensor(String tensorName) {
        return tensorsByName.containsKey(tensorName);
    }

    public Optional<TensorInfo> findTensor(String tensorName) {
        return Optional.ofNullable(tensorsByName.get(tensorName));
    }

    /** The tensor named {@code tensorName}; a missing tensor is a load error. */
    public TensorInfo tensor(String tensorName) {
        TensorInfo t = tensorsByName.get(tensorName);
        if (t == null) {
            throw new ModelLoadException(name + ": no tensor named '" + tensorName + "'");
        }
        return t;
    }

    /** The bytes of a tensor of this file: a read-only slice of the mapping, valid until close. */
    public MemorySegment tensorData(TensorInfo t) {
        if (!t.equals(tensorsByName.get(t.name()))) {
            throw new IllegalArgumentException(t + " is not a tensor of " + name);
        }
        return contents.asSlice(dataOffset + t.offset(), t.byteSize()).asReadOnly();
    }

    public MemorySegment tensorData(String tensorName) {
        return tensorData(tensor(tensorName));
    }

    /** Unmaps the file; tensor data segments handed out before become inaccessible. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (arena != null) {
                arena.close();
            }
        }
    }

    @Override
    public String toString() {
        return "GgufFile[" + name + ", v" + version + ", " + metadata.size() + " metadata, " + tensors.size()
                + " tensors]";
    }

    /** ggml's name for a tensor type id, for messages about types stepstream does not read. */
    static String ggmlTypeName(long id) {
        String[] names = {"F32", "F16", "Q4_0", "Q4_1", "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0", "Q5_1",
                "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS",
                "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
                "Q4_0_4_4 (removed)", "Q4_0_4_8 (removed)", "Q4_0_8_8 (removed)", "TQ1_0", "TQ2_0",
                "IQ4_NL_4_4 (removed)", "IQ4_NL_4_8 (removed)", "IQ4_NL_8_8 (removed)", "MXFP4"};
        return id >= 0 && id < names.length ? names[(int) id] : "not a ggml type";
    }

    /** One pass over the file; {@code context} says what is being read, for messages. */
    private static final class Parser {
        private final String file;
        private final MemorySegment seg;
        private final long size;
        private long pos;
        private String context = "the header";
        private long tensorCount;

        int version;
        int alignment = DEFAULT_ALIGNMENT;
        long dataOffset;
        final Map<String, GgufValue> metadata = new LinkedHashMap<>();
        final List<TensorInfo> tensors = new ArrayList<>();
        final Map<String, TensorInfo> tensorsByName = new HashMap<>();

        Parser(String file, MemorySegment seg) {
            this.file = file;
            this.seg = seg;
            this.size = seg.byteSize();
        }

        Parser parse() {
            readHeaderAndMetadata();
            readTensorInfos();
            checkTensorData();
            return this;
        }

        private void readHeaderAndMetadata() {
            if (size >= 4 && seg.get(U32, 0) != MAGIC) {
                byte[] first = seg.asSlice(0, 4).toArray(ValueLayout.JAVA_BYTE);
                throw invalid("not a GGUF file: it starts with bytes " + hex(first) + ", not \"GGUF\"");
            }
            need(24, "(magic, version and counts)");
            pos = 4;
            int v = seg.get(U32, pos);
            pos += 4;
            if (v != 2 && v != 3) {
                int swapped = Integer.reverseBytes(v);
                if (swapped >= 1 && swapped <= 3) {
                    throw invalid("big-endian GGUF (version " + swapped + ") is not supported");
                }
                throw invalid("unsupported GGUF version " + Integer.toUnsignedString(v) + " (only 2 and 3)");
            }
            version = v;
            long tensorCount = u64();
            long kvCount = u64();
            // smallest possible tensor info: empty name (8), n_dims (4), type (4), offset (8)
            checkCount(tensorCount, 24, "tensor count");
            // smallest possible metadata entry: empty key (8), value type (4), a one-byte value
            checkCount(kvCount, 13, "metadata count");

            for (long i = 0; i < kvCount; i++) {
                context = "metadata entry #" + i;
                String key = string("key");
                context = "metadata '" + key + "'";
                GgufValueType type = valueType(u32("value type"), "value type");
                GgufValue value = value(type, 0);
                if (metadata.putIfAbsent(key, value) != null) {
                    throw invalid("duplicate metadata key");
                }
            }
            GgufValue a = metadata.get(ALIGNMENT_KEY);
            if (a != null) {
                context = "metadata '" + ALIGNMENT_KEY + "'";
                if (!(a instanceof GgufValue.Int i) || !i.inRange(1, MAX_ALIGNMENT) || Long.bitCount(i.value()) != 1) {
                    throw invalid("the alignment must be a power of two integer up to 2^30, found " + a);
                }
                alignment = (int) i.value();
            }
            this.tensorCount = tensorCount;
        }

        private void readTensorInfos() {
            for (long i = 0; i < tensorCount; i++) {
                context = "tensor info #" + i;
                String name = string("name");
                context = "tensor '" + name + "'";
                long nDims = u32("n_dims");
                if (nDims > MAX_DIMS) {
                    throw invalid("has " + nDims + " dimensions, at most " + MAX_DIMS + " are supported");
                }
                need(8 * nDims, "dims");
                long[] dims = new long[(int) nDims];
                for (int d = 0; d < nDims; d++) {
                    dims[d] = u64();
                }
                long elements = elementCount(dims);
                long typeId = u32("type");
                TensorType type = TensorType.fromGgmlId((int) typeId);
                if (typeId > Integer.MAX_VALUE || type == null) {
                    throw invalid("unsupported tensor type id " + typeId + " (" + ggmlTypeName(typeId) + ")");
                }
                long rowLength = nDims == 0 ? 1 : dims[0];
                if (rowLength % type.blockSize() != 0) {
                    throw invalid("row length (dims[0]) " + rowLength + " is not a multiple of the " + type
                            + " block size " + type.blockSize());
                }
                long byteSize = type.bytesFor(elements);
                long offset = u64("offset");
                if (offset < 0) {
                    throw invalid("absurd data offset " + Long.toUnsignedString(offset));
                }
                if (offset % alignment != 0) {
                    throw invalid("data offset " + offset + " is not a multiple of the alignment " + alignment);
                }
                TensorInfo t = new TensorInfo(name, type, dims, offset, byteSize);
                if (tensorsByName.putIfAbsent(name, t) != null) {
                    throw invalid("duplicate tensor name");
                }
                tensors.add(t);
            }
            long pad = (alignment - pos % alignment) % alignment;
            dataOffset = pos + pad;
        }

        private long elementCount(long[] dims) {
            long n = 1;
            for (long d : dims) {
                if (d < 0 || d > MAX_ELEMENTS) {
                    throw invalid("absurd dims " + unsignedDims(dims) + " (a dimension above 2^40)");
                }
                if (d != 0 && n > MAX_ELEMENTS / d) {
                    throw invalid("absurd dims " + unsignedDims(dims) + " (more than 2^40 elements)");
                }
                n *= d;
            }
            return n;
        }

        private void checkTensorData() {
            for (TensorInfo t : tensors) {
                context = "tensor '" + t.name() + "'";
                long end;
                try {
                    end = Math.addExact(Math.addExact(dataOffset, t.offset()), t.byteSize());
                } catch (ArithmeticException e) {
                    end = -1;
                }
                if (end < 0 || end > size) {
                    throw truncated("ends at byte " + (end < 0 ? "beyond 2^63" : Long.toString(end))
                            + " past the file end " + size);
                }
            }
        }

        private GgufValue value(GgufValueType type, int depth) {
            return switch (type) {
                case UINT8 -> new GgufValue.Int(type, Byte.toUnsignedLong(u8("value")));
                case INT8 -> new GgufValue.Int(type, u8("value"));
                case UINT16 -> new GgufValue.Int(type, Short.toUnsignedLong(u16("value")));
                case INT16 -> new GgufValue.Int(type, u16("value"));
                case UINT32 -> new GgufValue.Int(type, u32("value"));
                case INT32 -> new GgufValue.Int(type, (int) u32("value"));
                case UINT64, INT64 -> new GgufValue.Int(type, u64("value"));
                case FLOAT32 -> new GgufValue.Float32(Float.intBitsToFloat((int) u32("value")));
                case FLOAT64 -> new GgufValue.Float64(Double.longBitsToDouble(u64("value")));
                case BOOL -> new GgufValue.Bool(bool(u8("value")));
                case STRING -> new GgufValue.Text(string("string value"));
                case ARRAY -> array(depth);
            };
        }

        private GgufValue.Array array(int depth) {
            if (depth >= MAX_ARRAY_NESTING) {
                throw invalid("arrays nested deeper than " + MAX_ARRAY_NESTING);
            }
            GgufValueType elementType = valueType(u32("array element type"), "array element type");
            long count = u64("array length");
            checkCount(count, elementType.minBytes(), "array of " + elementType + " length");
            int n = (int) count;
            Object elements = switch (elementType) {
                case UINT8, INT8 -> copy(new byte[n], ValueLayout.JAVA_BYTE, n);
                case UINT16, INT16 -> copy(new short[n], U16, 2L * n);
                case UINT32, INT32 -> copy(new int[n], U32, 4L * n);
                case UINT64, INT64 -> copy(new long[n], U64, 8L * n);
                case FLOAT32 -> copy(new float[n], F32, 4L * n);
                case FLOAT64 -> copy(new double[n], F64, 8L * n);
                case BOOL -> {
                    boolean[] a = new boolean[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = bool(u8("bool element"));
                    }
                    yield a;
                }
                case STRING -> {
                    String[] a = new String[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = string("string element");
                    }
                    yield a;
                }
                case ARRAY -> {
                    GgufValue.Array[] a = new GgufValue.Array[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = array(depth + 1);
                    }
                    yield a;
                }
            };
            return GgufValue.Array.trusted(elementType, elements);
        }

        /** Bulk copy of little-endian elements into {@code dst}; checkCount has bounded byteCount already. */
        private Object copy(Object dst, ValueLayout layout, long byteCount) {
            need(byteCount, "array elements");
            MemorySegment.copy(seg, layout, pos, dst, 0, java.lang.reflect.Array.getLength(dst));
            pos += byteCount;
            return dst;
        }

        /** A count of items of at least {@code minBytes} each must fit in what is left of the file. */
        private void checkCount(long count, int minBytes, String what) {
            long left = size - pos;
            if (count < 0 || count > left / minBytes) {
                throw invalid(what + " " + Long.toUnsignedString(count) + " cannot fit in the " + left
                        + " bytes left after byte " + pos + " (each takes at least " + minBytes + ")");
            }
            if (count > MAX_JAVA_ARRAY) {
                throw invalid(what + " " + count + " is more than a Java array holds");
            }
        }

        private GgufValueType valueType(long id, String what) {
            GgufValueType t = GgufValueType.fromId(id);
            if (t == null) {
                throw invalid("unknown " + what + " id " + id + " at byte " + (pos - 4));
            }
            return t;
        }

        private boolean bool(byte b) {
            if (b != 0 && b != 1) {
                throw invalid("bool byte " + b + " at byte " + (pos - 1) + " is neither 0 nor 1");
            }
            return b == 1;
        }

        private String string(String what) {
            long length = u64(what + " length");
            if (length < 0 || length > size - pos) {
                throw truncated(what + " of " + Long.toUnsignedString(length) + " bytes at byte " + pos
                        + " runs past the file end " + size);
            }
            if (length > MAX_JAVA_ARRAY) {
                throw invalid(what + " of " + length + " bytes is longer than a Java string holds");
            }
            byte[] bytes = new byte[(int) length];
            MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, pos, bytes, 0, bytes.length);
            pos += length;
            return new String(bytes, StandardCharsets.UTF_8);
        }

        private byte u8(String what) {
            need(1, what);
            return seg.get(ValueLayout.JAVA_BYTE, pos++);
        }

        private short u16(String what) {
            need(2, what);
            short v = seg.get(U16, pos);
            pos += 2;
            return v;
        }

        /** An unsigned 32-bit field, zero-extended. */
        private long u32(String what) {
            need(4, what);
            int v = seg.get(U32, pos);
            pos += 4;
            return Integer.toUnsignedLong(v);
        }

        private long u64(String what) {
            need(8, what);
            return u64();
        }

        /** A u64 whose 8 bytes were already checked to be there. */
        private long u64() {
            long v = seg.get(U64, pos);
            pos += 8;
            return v;
        }

        private void need(long n, String what) {
            if (n > size - pos) {
                throw truncated(what + " needs " + n + " bytes at byte " + pos + ", the file ends at " + size);
            }
        }

        private ModelLoadException truncated(String detail) {
            return new ModelLoadException(file + ": truncated: " + context + " " + detail);
        }

        private ModelLoadException invalid(String detail) {
            return new ModelLoadException(file + ": " + context + ": " + detail);
        }

        private static String hex(byte[] bytes) {
            StringBuilder sb = new StringBuilder();
            for (byte b : bytes) {
                sb.append(sb.isEmpty() ? "" : " ").append(String.format("%02x", b & 0xFF));
            }
            return sb.toString();
        }

        private static String unsignedDims(long[] dims) {
            String[] s = new String[dims.length];
            for (int i = 0; i < dims.length; i++) {
                s[i] = Long.toUnsignedString(dims[i]);
            }
            return Arrays.toString(s);
        }
    }
}
