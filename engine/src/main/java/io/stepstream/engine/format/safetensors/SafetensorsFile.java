package io.stepstream.engine.format.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.engine.ModelLoadException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * One safetensors file: {@code u64 little-endian header length N}, N bytes of JSON mapping each tensor name to
 * {@code {dtype, shape, data_offsets: [begin, end]}} (offsets relative to the byte after the header) plus an
 * optional {@code __metadata__} string map, then the tensor bytes. The file is memory-mapped (FFM) and every
 * tensor is checked before anything is returned: a known dtype, a shape whose byte size equals
 * {@code end - begin}, offsets inside the data section, and no two tensors sharing bytes. Tensors are slices of
 * the mapping: close the file only when their data is no longer read.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Headers larger than this are refused before any allocation (the reference reader uses the same cap). */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private final String name;
    private final Arena arena;
    private final SequencedMap<String, SafetensorsTensor> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(String name, Arena arena, MemorySegment bytes) {
        this.name = name;
        this.arena = arena;
        Map<String, String> meta = new LinkedHashMap<>();
        this.tensors = Collections.unmodifiableSequencedMap(parse(name, bytes, meta));
        this.metadata = Collections.unmodifiableMap(meta);
    }

    /** Maps the file read-only; the mapping lives until {@link #close()}. */
    public static SafetensorsFile open(Path file) {
        String name = file.toString();
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            return new SafetensorsFile(name, arena, mapped);
        } catch (IOException e) {
            arena.close();
            throw new ModelLoadException(name + ": cannot read safetensors file: " + e, e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** A safetensors file already in memory (an embedded resource); {@code name} is used in errors. */
    public static SafetensorsFile of(String name, byte[] bytes) {
        return new SafetensorsFile(name, null, MemorySegment.ofArray(bytes));
    }

    public String name() {
        return name;
    }

    /** Tensors in header order. */
    public SequencedMap<String, SafetensorsTensor> tensors() {
        return tensors;
    }

    /** The tensor called {@code tensorName}, or a {@link ModelLoadException} naming the file. */
    public SafetensorsTensor tensor(String tensorName) {
        SafetensorsTensor t = tensors.get(tensorName);
        if (t == null) {
            throw new ModelLoadException(name + ": no tensor named " + tensorName);
        }
        return t;
    }

    /** The header's {@code __metadata__} (empty when absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    @Override
    public void close() {
        if (arena != null) {
            arena.close();
        }
    }

    private static SequencedMap<String, SafetensorsTensor> parse(String file, MemorySegment bytes,
                                                                Map<String, String> metadata) {
        long size = bytes.byteSize();
        if (size < Long.BYTES) {
            throw new ModelLoadException(file + ": not a safetensors file: " + size
                    + " bytes, too short for the 8-byte header length");
        }
        long headerLength = bytes.get(U64, 0);
        if (headerLength < 2 || headerLength > MAX_HEADER_BYTES) {
            throw new ModelLoadException(file + ": bad safetensors header length " + Long.toUnsignedString(headerLength)
                    + " (must be 2.." + MAX_HEADER_BYTES + " bytes)");
        }
        if (headerLength > size - Long.BYTES) {
            throw new ModelLoadException(file + ": truncated safetensors file: the header claims " + headerLength
                    + " bytes but only " + (size - Long.BYTES) + " follow the length");
        }
        byte[] header = bytes.asSlice(Long.BYTES, headerLength).toArray(ValueLayout.JAVA_BYTE);
        JsonNode root;
        try {
            root = JSON.readTree(new String(header, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new ModelLoadException(file + ": safetensors header is not valid JSON: "
                    + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelLoadException(file + ": safetensors header must be a JSON object");
        }
        long dataStart = Long.BYTES + headerLength;
        long dataSize = size - dataStart;
        SequencedMap<String, SafetensorsTensor> tensors = new LinkedHashMap<>();
        List<long[]> ranges = new ArrayList<>(); // [begin, end, index into names]
        List<String> names = new ArrayList<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            String tensorName = field.getKey();
            JsonNode info = field.getValue();
            if (tensorName.equals("__metadata__")) {
                readMetadata(file, info, metadata);
                continue;
            }
            String where = file + ": tensor " + tensorName;
            if (!info.isObject()) {
                throw new ModelLoadException(where + ": header entry must be an object");
            }
            JsonNode dtypeNode = info.get("dtype");
            if (dtypeNode == null || !dtypeNode.isTextual()) {
                throw new ModelLoadException(where + ": missing or non-string \"dtype\"");
            }
            SafetensorsDtype dtype = SafetensorsDtype.parse(dtypeNode.asText(), where);
            long[] shape = longArray(info.get("shape"), "shape", -1, where);
            long[] offsets = longArray(info.get("data_offsets"), "data_offsets", 2, where);
            long begin = offsets[0];
            long end = offsets[1];
            if (end < begin) {
                throw new ModelLoadException(where + ": data_offsets [" + begin + ", " + end + "] end before they begin");
            }
            if (end > dataSize) {
                throw new ModelLoadException(where + ": data_offsets [" + begin + ", " + end
                        + "] run past the end of the data section (" + dataSize + " bytes); the file is truncated"
                        + " or the header is wrong");
            }
            long expected = byteSize(shape, dtype, where);
            if (end - begin != expected) {
                throw new ModelLoadException(where + ": " + dtype + " " + java.util.Arrays.toString(shape) + " needs "
                        + expected + " bytes but data_offsets [" + begin + ", " + end + "] hold " + (end - begin));
            }
            ranges.add(new long[]{begin, end, names.size()});
            names.add(tensorName);
            tensors.put(tensorName, new SafetensorsTensor(file, tensorName, dtype, shape,
                    bytes.asSlice(dataStart + begin, end - begin)));
        }
        // Sorted by start, a non-empty range overlaps an earlier one exactly when it starts before the furthest
        // end seen so far (empty tensors own no bytes and are skipped).
        ranges.sort(Comparator.<long[]>comparingLong(r -> r[0]).thenComparingLong(r -> r[1]));
        long[] furthest = null;
        for (long[] cur : ranges) {
            if (cur[1] == cur[0]) {
                continue;
            }
            if (furthest != null && cur[0] < furthest[1]) {
                throw new ModelLoadException(file + ": tensors " + names.get((int) furthest[2]) + " and "
                        + names.get((int) cur[2]) + " overlap in the data section");
            }
            if (furthest == null || cur[1] > furthest[1]) {
                furthest = cur;
            }
        }
        return tensors;
    }

    private static void readMetadata(String file, JsonNode info, Map<String, String> metadata) {
        if (!info.isObject()) {
            throw new ModelLoadException(file + ": __metadata__ must be an object of strings");
        }
        for (Map.Entry<String, JsonNode> m : info.properties()) {
            if (!m.getValue().isTextual()) {
                throw new ModelLoadException(file + ": __metadata__." + m.getKey() + " must be a string");
            }
            metadata.put(m.getKey(), m.getValue().asText());
        }
    }

    /** A JSON array of non-negative integers; {@code length} -1 means any length. */
    private static long[] longArray(JsonNode node, String key, int length, String where) {
        if (node == null || !node.isArray()) {
            throw new ModelLoadException(where + ": missing or non-array \"" + key + "\"");
        }
        if (length >= 0 && node.size() != length) {
            throw new ModelLoadException(where + ": \"" + key + "\" must have " + length + " entries, has "
                    + node.size());
        }
        long[] out = new long[node.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = node.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() < 0) {
                throw new ModelLoadException(where + ": \"" + key + "\" must hold non-negative integers, found " + v);
            }
            out[i] = v.asLong();
        }
        return out;
    }

    private static long byteSize(long[] shape, SafetensorsDtype dtype, String where) {
        long bytes = dtype.bytes();
        for (long d : shape) {
            try {
                bytes = Math.multiplyExact(bytes, d);
            } catch (ArithmeticException e) {
                throw new ModelLoadException(where + ": shape " + java.util.Arrays.toString(shape) + " is too large");
            }
        }
        return bytes;
    }
}
