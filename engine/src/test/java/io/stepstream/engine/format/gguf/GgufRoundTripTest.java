package io.stepstream.engine.format.gguf;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GgufRoundTripTest {
    @TempDir
    Path dir;

    /** Metadata of every GGUF value type, extreme values, unicode, empty and nested arrays. */
    static Map<String, GgufValue> everyValueType(Random rnd) {
        Map<String, GgufValue> m = new LinkedHashMap<>();
        m.put("general.architecture", GgufValue.string("llama"));
        m.put("t.uint8", GgufValue.uint8(255));
        m.put("t.int8", GgufValue.int8(-128));
        m.put("t.uint16", GgufValue.uint16(65535));
        m.put("t.int16", GgufValue.int16(-32768));
        m.put("t.uint32", GgufValue.uint32(0xFFFF_FFFFL));
        m.put("t.int32", GgufValue.int32(Integer.MIN_VALUE));
        m.put("t.uint64", GgufValue.uint64(-1L)); // 2^64 - 1
        m.put("t.int64", GgufValue.int64(Long.MIN_VALUE));
        m.put("t.float32", GgufValue.float32(-0.0f));
        m.put("t.float32.small", GgufValue.float32(Float.MIN_VALUE));
        m.put("t.float64", GgufValue.float64(-2.5e300));
        m.put("t.bool.true", GgufValue.bool(true));
        m.put("t.bool.false", GgufValue.bool(false));
        m.put("t.string.unicode", GgufValue.string("héllo wörld ✓ 日本語 🙂 \u0000 end"));
        m.put("t.string.empty", GgufValue.string(""));
        m.put("t.ключ.unicode-key", GgufValue.string("x"));
        byte[] b = new byte[37];
        rnd.nextBytes(b);
        m.put("a.uint8", GgufValue.Array.uint8s(b));
        m.put("a.int8", GgufValue.Array.int8s((byte) -1, (byte) 127, (byte) -128));
        m.put("a.uint16", GgufValue.Array.uint16s((short) 0xFFFF, (short) 1));
        m.put("a.int16", GgufValue.Array.int16s((short) -2, Short.MAX_VALUE));
        m.put("a.uint32", GgufValue.Array.uint32s(-1, 7));
        m.put("a.int32", GgufValue.Array.int32s(rnd.ints(50).toArray()));
        m.put("a.uint64", GgufValue.Array.uint64s(-1L, 0L, 42L));
        m.put("a.int64", GgufValue.Array.int64s(rnd.longs(9).toArray()));
        float[] f = new float[33];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) rnd.nextGaussian() * 100;
        }
        f[0] = Float.NaN;
        f[1] = Float.NEGATIVE_INFINITY;
        m.put("a.float32", GgufValue.Array.float32s(f));
        m.put("a.float64", GgufValue.Array.float64s(rnd.doubles(5).toArray()));
        m.put("a.bool", GgufValue.Array.bools(true, false, true, true));
        m.put("a.string", GgufValue.Array.strings(List.of("<s>", "</s>", "▁the", "é", "", "🙂🙂")));
        m.put("a.empty", GgufValue.Array.int32s());
        m.put("a.nested", GgufValue.Array.arrays(List.of(
                GgufValue.Array.int32s(1, 2, 3),
                GgufValue.Array.strings(List.of("a", "bé")),
                GgufValue.Array.arrays(List.of(GgufValue.Array.float32s(1.5f), GgufValue.Array.bools())),
                GgufValue.Array.arrays(List.of()))));
        return m;
    }

    record Tensor(String name, TensorType type, long[] dims, byte[] data) {
    }

    /** Random bytes for one or more tensors of every type, in shapes of 1 to 4 dims. */
    static List<Tensor> tensorsOfEveryType(Random rnd) {
        List<Tensor> out = new ArrayList<>();
        int i = 0;
        for (TensorType type : TensorType.values()) {
            long[][] shapes = {{type.blockSize() * 3L, 2}, {type.blockSize()}, {type.blockSize(), 3, 2},
                    {type.blockSize() * 2L, 1, 2, 3}};
            for (long[] dims : shapes) {
                long elements = 1;
                for (long d : dims) {
                    elements *= d;
                }
                byte[] data = new byte[(int) type.bytesFor(elements)];
                rnd.nextBytes(data);
                out.add(new Tensor("blk." + (i++) + "." + type.name().toLowerCase() + ".weight", type, dims, data));
            }
        }
        return out;
    }

    static GgufWriter writer(Map<String, GgufValue> metadata, List<Tensor> tensors) {
        GgufWriter w = new GgufWriter();
        metadata.forEach(w::put);
        for (Tensor t : tensors) {
            w.addTensor(t.name(), t.type(), t.dims(), t.data());
        }
        return w;
    }

    @ParameterizedTest
    @ValueSource(ints = {32, 64})
    void everyMetadataTypeAndTensorTypeRoundTripsExactly(int alignment) throws IOException {
        Random rnd = new Random(alignment);
        Map<String, GgufValue> metadata = everyValueType(rnd);
        List<Tensor> tensors = tensorsOfEveryType(rnd);
        GgufWriter w = writer(metadata, tensors);
        if (alignment != 32) {
            w.alignment(alignment);
            metadata.put(GgufFile.ALIGNMENT_KEY, GgufValue.uint32(alignment));
        }
        Path file = dir.resolve("every.gguf");
        w.write(file);
        byte[] bytes = Files.readAllBytes(file);
        assertArrayEquals(w.toByteArray(), bytes, "write(Path) and toByteArray agree");
        assertFalse(Files.exists(dir.resolve("every.gguf.tmp")), "no temporary file left behind");

        try (GgufFile g = GgufFile.open(file)) {
            assertEquals(3, g.version());
            assertEquals(alignment, g.alignment());
            assertEquals(file.toString(), g.name());
            assertEquals(List.copyOf(metadata.keySet()), List.copyOf(g.metadata().keySet()), "key order");
            assertEquals(metadata, g.metadata());
            assertEquals(0, g.dataOffset() % alignment);
            assertEquals(tensors.size(), g.tensors().size());
            long expectedOffset = 0;
            for (int i = 0; i < tensors.size(); i++) {
                Tensor t = tensors.get(i);
                TensorInfo info = g.tensors().get(i);
                assertEquals(t.name(), info.name());
                assertEquals(t.type(), info.type());
                assertArrayEquals(t.dims(), info.dims());
                assertEquals(t.data().length, info.byteSize());
                assertEquals(expectedOffset, info.offset(), "tensors packed in order, each padded");
                assertEquals(0, info.offset() % alignment);
                assertEquals(info, g.tensor(t.name()));
                MemorySegment data = g.tensorData(info);
                assertArrayEquals(t.data(), data.toArray(ValueLayout.JAVA_BYTE), t.name());
                assertEquals(0, data.address() % alignment, "mapped tensor data is aligned in memory");
                expectedOffset += (t.data().length + alignment - 1) / alignment * alignment;
            }
            assertEquals(g.dataOffset() + expectedOffset, bytes.length, "file ends after the last padded tensor");

            // read -> write again gives the same bytes
            GgufWriter again = new GgufWriter();
            g.metadata().forEach(again::put);
            for (TensorInfo t : g.tensors()) {
                again.addTensor(t.name(), t.type(), t.dims(), g.tensorData(t));
            }
            assertArrayEquals(bytes, again.toByteArray());
        }
    }

    @Test
    void writerLayoutMatchesAHandBuiltFile() {
        float[] values = {1.5f, -2f, 3.25f, 0f};
        byte[] data = Quants.quantize(TensorType.F32, values);
        byte[] written = new GgufWriter()
                .putString("general.architecture", "llama")
                .put("n", GgufValue.Array.int16s((short) 3, (short) -4))
                .addTensor("w", TensorType.F32, new long[] {4}, data)
                .toByteArray();
        RawGguf raw = RawGguf.header(3, 1, 2)
                .key("general.architecture", GgufValueType.STRING).str("llama")
                .key("n", GgufValueType.ARRAY).u32(GgufValueType.INT16.id()).u64(2).u16(3).u16(-4)
                .tensorInfo("w", 0, 0, 4)
                .padTo(32);
        for (float v : values) {
            raw.f32(v);
        }
        raw.padTo(32);
        assertArrayEquals(raw.toBytes(), written);
    }

    @Test
    void handWrittenVersion2FileParses() throws IOException {
        RawGguf raw = RawGguf.header(2, 2, 4)
                .key("general.architecture", GgufValueType.STRING).str("llama")
                .key("llama.context_length", GgufValueType.UINT32).u32(2048)
                .key("llama.rope.freq_base", GgufValueType.FLOAT32).f32(10000f)
                .key("tokenizer.ggml.tokens", GgufValueType.ARRAY).u32(GgufValueType.STRING.id()).u64(3)
                .str("<unk>").str("a").str("b")
                .tensorInfo("token_embd.weight", 0, 0, 4, 2)
                .tensorInfo("output_norm.weight", 1, 32, 4)
                .padTo(32);
        long dataStart = raw.size();
        for (int i = 0; i < 8; i++) {
            raw.f32(i * 0.5f);
        }
        for (int i = 0; i < 4; i++) {
            raw.u16(Float.floatToFloat16(-i));
        }
        Path file = dir.resolve("v2.gguf");
        Files.write(file, raw.toBytes());
        try (GgufFile g = GgufFile.open(file)) {
            assertEquals(2, g.version());
            assertEquals(32, g.alignment());
            assertEquals(dataStart, g.dataOffset());
            assertEquals("llama", g.getString("general.architecture"));
            assertEquals(2048, g.getInt("llama.context_length"));
            assertEquals(10000f, g.getFloat("llama.rope.freq_base"));
            assertEquals(List.of("<unk>", "a", "b"), g.getStrings("tokenizer.ggml.tokens"));
            TensorInfo emb = g.tensor("token_embd.weight");
            assertEquals(4, emb.rowLength());
            assertEquals(2, emb.rowCount());
            float[] row1 = new float[4];
            Quants.dequantizeRow(emb, g.tensorData(emb), 1, row1, 0);
            assertArrayEquals(new float[] {2f, 2.5f, 3f, 3.5f}, row1);
            assertArrayEquals(new float[] {0f, -1f, -2f, -3f},
                    Quants.dequantize(TensorType.F16, g.tensorData("output_norm.weight")));
        }
    }

    @Test
    void typedGettersConvertOrFailNamingFileAndKey() {
        Map<String, GgufValue> m = everyValueType(new Random(1));
        GgufFile g = GgufFile.parse("typed.gguf", MemorySegment.ofArray(writer(m, List.of()).toByteArray()));
        assertEquals(255, g.getInt("t.uint8"));
        assertEquals(-128, g.getInt("t.int8"));
        assertEquals(65535, g.getInt("t.uint16"));
        assertEquals(0xFFFF_FFFFL, g.getLong("t.uint32"));
        assertEquals(Integer.MIN_VALUE, g.getInt("t.int32"));
        assertEquals(Long.MIN_VALUE, g.getLong("t.int64"));
        assertEquals(Float.MIN_VALUE, g.getFloat("t.float32.small"));
        assertEquals(-2.5e300, g.getDouble("t.float64"));
        assertTrue(g.getBool("t.bool.true"));
        assertFalse(g.getBool("t.bool.false"));
        assertEquals("héllo wörld ✓ 日本語 🙂 \u0000 end", g.getString("t.string.unicode"));
        assertEquals(7, g.getInt("absent", 7));
        assertEquals("d", g.getString("absent", "d"));
        assertFalse(g.containsKey("absent"));
        assertTrue(g.containsKey("t.uint64"));
        assertArrayEquals(new int[] {-1, 127, -128}, g.getInts("a.int8"));
        assertArrayEquals(new int[] {0xFFFF, 1}, g.getInts("a.uint16"));
        assertArrayEquals(new long[] {0xFFFF_FFFFL, 7}, g.getLongs("a.uint32"));
        assertEquals(List.of("<s>", "</s>", "▁the", "é", "", "🙂🙂"), g.getStrings("a.string"));
        assertEquals(33, g.getFloats("a.float32").length);
        GgufValue.Array nested = g.getArray("a.nested");
        assertEquals(GgufValueType.ARRAY, nested.elementType());
        assertEquals(List.of("a", "bé"), nested.arrays().get(1).strings());
        assertArrayEquals(new float[] {1.5f}, nested.arrays().get(2).arrays().get(0).floats());

        assertFails(() -> g.getInt("t.uint32"), "typed.gguf", "'t.uint32'", "does not fit in an int");
        assertFails(() -> g.getLong("t.uint64"), "typed.gguf", "'t.uint64'", "does not fit in a long");
        assertFails(() -> g.getInts("a.uint32"), "typed.gguf", "'a.uint32'", "does not fit in an int");
        assertFails(() -> g.getString("t.int32"), "typed.gguf", "'t.int32' is INT32, expected a string");
        assertFails(() -> g.getFloats("a.float64"), "typed.gguf", "an array of FLOAT64, expected an array of FLOAT32");
        assertFails(() -> g.getInts("a.string"), "typed.gguf", "'a.string'");
        assertFails(() -> g.getBool("general.architecture"), "typed.gguf", "expected a bool");
        assertFails(() -> g.getInt("llama.block_count"), "typed.gguf", "'llama.block_count' is missing");
        assertFails(() -> g.tensor("output.weight"), "typed.gguf", "no tensor named 'output.weight'");
    }

    @Test
    void dequantizeRowReadsTheRightRow() {
        Random rnd = new Random(5);
        for (TensorType type : TensorType.values()) {
            long[] dims = {type.blockSize() * 2L, 3};
            byte[] data = new byte[(int) type.bytesFor(dims[0] * dims[1])];
            rnd.nextBytes(data);
            if (type == TensorType.F16 || type == TensorType.BF16 || type == TensorType.F32) {
                float[] v = new float[(int) (dims[0] * dims[1])];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) rnd.nextGaussian();
                }
                data = Quants.quantize(type, v); // random bytes would hold NaNs, whose bits need not survive
            }
            GgufFile g = GgufFile.parse("rows.gguf", MemorySegment.ofArray(
                    new GgufWriter().addTensor("t", type, dims, data).toByteArray()));
            TensorInfo t = g.tensor("t");
            float[] all = Quants.dequantize(type, g.tensorData(t));
            for (int r = 0; r < 3; r++) {
                float[] row = new float[(int) dims[0] + 3];
                Quants.dequantizeRow(t, g.tensorData(t), r, row, 3);
                for (int i = 0; i < dims[0]; i++) {
                    assertEquals(Float.floatToRawIntBits(all[(int) (r * dims[0]) + i]),
                            Float.floatToRawIntBits(row[3 + i]), type + " row " + r);
                }
            }
        }
    }

    @Test
    void filesBeyond2GiBMapWhole() throws IOException {
        long offset = 5L << 30; // tensor data 5 GiB into the data section: past any int index
        RawGguf raw = RawGguf.header(3, 2, 1)
                .key("general.architecture", GgufValueType.STRING).str("llama")
                .tensorInfo("near", 0, 0, 8)
                .tensorInfo("far", 0, offset, 8)
                .padTo(32);
        long dataStart = raw.size();
        Path file = dir.resolve("sparse.gguf");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(file.toFile(), "rw")) {
            f.write(raw.toBytes());
            f.setLength(dataStart + offset + 32); // sparse: the gap takes no disk
            f.seek(dataStart + offset);
            f.write(Quants.quantize(TensorType.F32, new float[] {1, 2, 3, 4, 5, 6, 7, -8}));
        }
        try (GgufFile g = GgufFile.open(file)) {
            assertEquals(dataStart + offset + 32, g.size());
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6, 7, -8}, Quants.dequantize(TensorType.F32, g.tensorData("far")));
            assertArrayEquals(new float[8], Quants.dequantize(TensorType.F32, g.tensorData("near")));
        }
    }

    @Test
    void tensorDataIsUnusableAfterClose() throws IOException {
        Path file = dir.resolve("closed.gguf");
        new GgufWriter().addTensor("t", TensorType.F32, new long[] {1}, new byte[4]).write(file);
        GgufFile g = GgufFile.open(file);
        MemorySegment data = g.tensorData("t");
        g.close();
        g.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> data.get(ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void writerRefusesWhatItCannotWriteCorrectly() {
        GgufWriter w = new GgufWriter().addTensor("a", TensorType.F32, new long[] {2}, new byte[8]);
        assertThrows(IllegalArgumentException.class,
                () -> w.addTensor("a", TensorType.F32, new long[] {2}, new byte[8]), "duplicate");
        assertThrows(IllegalArgumentException.class,
                () -> w.addTensor("b", TensorType.F32, new long[] {3}, new byte[8]), "size mismatch");
        assertThrows(IllegalArgumentException.class,
                () -> w.addTensor("c", TensorType.Q8_0, new long[] {16, 2}, new byte[34]), "partial block row");
        assertThrows(IllegalArgumentException.class,
                () -> w.addTensor("d", TensorType.F32, new long[] {1, 1, 1, 1, 1}, new byte[4]), "5 dims");
        assertThrows(IllegalArgumentException.class,
                () -> w.addTensor("x".repeat(64), TensorType.F32, new long[] {1}, new byte[4]), "long name");
        assertThrows(IllegalArgumentException.class, () -> w.alignment(48));
        assertThrows(IllegalArgumentException.class, () -> w.put("general.alignment", GgufValue.int32(64)));
        assertThrows(IllegalArgumentException.class, () -> GgufValue.uint8(256));
        assertThrows(IllegalArgumentException.class, () -> GgufValue.uint32(-1));
        assertThrows(IllegalArgumentException.class, () -> GgufValue.Array.of(GgufValueType.INT32, new long[1]));
        assertEquals(32, w.alignment());
    }

    @Test
    void valuesCompareByContent() {
        assertEquals(GgufValue.Array.float32s(1f, Float.NaN), GgufValue.Array.float32s(1f, Float.NaN));
        assertNotEquals(GgufValue.Array.int32s(1), GgufValue.Array.uint32s(1));
        assertNotEquals(GgufValue.uint8(1), GgufValue.int8(1));
        assertEquals(GgufValue.Array.arrays(List.of(GgufValue.Array.strings(List.of("x")))),
                GgufValue.Array.arrays(List.of(GgufValue.Array.strings(List.of("x")))));
    }

    static void assertFails(Runnable r, String... fragments) {
        ModelLoadException e = assertThrows(ModelLoadException.class, r::run);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
    }
}
