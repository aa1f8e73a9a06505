package io.stepstream.engine.format.gguf;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Every kind of broken file fails with a ModelLoadException that names the file and the problem. */
class GgufMalformedTest {
    @TempDir
    Path dir;

    private ModelLoadException fails(byte[] bytes, String... fragments) throws IOException {
        Path file = dir.resolve("model.gguf");
        Files.write(file, bytes);
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> GgufFile.open(file).close());
        assertTrue(e.getMessage().startsWith(file + ": "), "names the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    /** The start of a file with {@code count} tensors and one metadata entry; the caller adds the infos. */
    private static RawGguf withTensorInfos(int count) {
        return RawGguf.header(3, count, 1).key("general.architecture", GgufValueType.STRING).str("llama");
    }

    /** The start of a file with no tensors and {@code count} metadata entries; the caller adds them. */
    private static RawGguf withMetadata(int count) {
        return RawGguf.header(3, 0, count);
    }

    @Test
    void headerProblems() throws IOException {
        fails(new byte[0], "truncated", "the header", "needs 24 bytes at byte 0, the file ends at 0");
        fails("GGUF\3\0".getBytes(), "truncated", "the header");
        byte[] ggml = RawGguf.header(3, 0, 0).toBytes();
        ggml[3] = 'L';
        fails(ggml, "not a GGUF file", "47 47 55 4c");
        fails(RawGguf.header(1, 0, 0).toBytes(), "unsupported GGUF version 1 (only 2 and 3)");
        fails(RawGguf.header(4, 0, 0).toBytes(), "unsupported GGUF version 4");
        fails(RawGguf.header(0x0300_0000, 0, 0).toBytes(), "big-endian GGUF (version 3) is not supported");
        fails(RawGguf.header(3, 1L << 40, 0).toBytes(), "tensor count 1099511627776 cannot fit");
        fails(RawGguf.header(3, 0, -1).toBytes(), "metadata count 18446744073709551615 cannot fit");
    }

    @Test
    void metadataProblems() throws IOException {
        fails(withMetadata(2).key("a", GgufValueType.UINT32).u32(1).toBytes(),
                "the header: metadata count 2 cannot fit in the 17 bytes left");
        fails(withMetadata(2).key("a", GgufValueType.UINT32).u32(1).str("bcdefghij").toBytes(),
                "truncated: metadata 'bcdefghij' value type needs 4 bytes at byte 58, the file ends at 58");
        fails(withMetadata(1).key("a", GgufValueType.UINT64).u32(1).toBytes(),
                "truncated: metadata 'a'", "value needs 8 bytes");
        fails(withMetadata(1).u64(1000).bytes("abcdefghij".getBytes()).toBytes(),
                "truncated: metadata entry #0", "key of 1000 bytes at byte 32 runs past the file end 42");
        fails(withMetadata(1).key("s", GgufValueType.STRING).u64(-2).toBytes(),
                "truncated: metadata 's'", "string value of 18446744073709551614 bytes");
        fails(withMetadata(1).key("a", GgufValueType.ARRAY).u32(GgufValueType.INT32.id()).u64(1L << 61).toBytes(),
                "metadata 'a'", "array of INT32 length 2305843009213693952 cannot fit");
        fails(withMetadata(1).key("a", GgufValueType.ARRAY).u32(GgufValueType.STRING.id()).u64(3)
                        .str("xxxxxxxx").str("y").toBytes(),
                "truncated: metadata 'a'", "string element length needs 8 bytes");
        fails(withMetadata(1).key("a", GgufValueType.ARRAY).u32(GgufValueType.ARRAY.id()).u64(5).toBytes(),
                "array of ARRAY length 5 cannot fit");
        RawGguf deep = withMetadata(1).key("deep", GgufValueType.ARRAY);
        for (int i = 0; i < 20; i++) {
            deep.u32(GgufValueType.ARRAY.id()).u64(1);
        }
        fails(deep.u32(GgufValueType.UINT8.id()).u64(0).toBytes(), "metadata 'deep'", "nested deeper than 16");
        fails(withMetadata(1).str("t").u32(13).u32(0).toBytes(), "metadata 't'", "unknown value type id 13");
        fails(withMetadata(1).key("a", GgufValueType.ARRAY).u32(99).u64(0).toBytes(),
                "unknown array element type id 99");
        fails(withMetadata(1).key("b", GgufValueType.BOOL).u8(2).toBytes(), "metadata 'b'", "neither 0 nor 1");
        fails(withMetadata(2).key("k", GgufValueType.UINT8).u8(1).key("k", GgufValueType.UINT8).u8(2).toBytes(),
                "metadata 'k'", "duplicate metadata key");
        fails(withMetadata(1).key("general.alignment", GgufValueType.UINT32).u32(48).toBytes(),
                "metadata 'general.alignment'", "power of two", "48");
        fails(withMetadata(1).key("general.alignment", GgufValueType.UINT32).u32(0).toBytes(), "power of two");
        fails(withMetadata(1).key("general.alignment", GgufValueType.STRING).str("32").toBytes(), "power of two");
    }

    @Test
    void tensorInfoProblems() throws IOException {
        fails(withTensorInfos(1).str("t").u32(5).toBytes(), "tensor 't'", "has 5 dimensions, at most 4");
        fails(withTensorInfos(1).tensorInfo("t", 0, 0, 1L << 32, 1L << 32).toBytes(),
                "tensor 't'", "absurd dims [4294967296, 4294967296] (more than 2^40 elements)");
        fails(withTensorInfos(1).tensorInfo("t", 0, 0, 1L << 21, 1L << 20).toBytes(), "more than 2^40 elements");
        fails(withTensorInfos(1).tensorInfo("t", 0, 0, -1L).toBytes(),
                "absurd dims [18446744073709551615] (a dimension above 2^40)");
        fails(withTensorInfos(1).tensorInfo("t", 23, 0, 32).toBytes(),
                "tensor 't'", "unsupported tensor type id 23 (IQ4_XS)");
        fails(withTensorInfos(1).tensorInfo("t", 3, 0, 32).toBytes(), "unsupported tensor type id 3 (Q4_1)");
        fails(withTensorInfos(1).tensorInfo("t", 1000, 0, 32).toBytes(), "id 1000 (not a ggml type)");
        fails(withTensorInfos(1).tensorInfo("t", -1, 0, 32).toBytes(), "id 4294967295 (not a ggml type)");
        fails(withTensorInfos(1).tensorInfo("t", TensorType.Q8_0.ggmlId(), 0, 16, 2).toBytes(),
                "row length (dims[0]) 16 is not a multiple of the Q8_0 block size 32");
        fails(withTensorInfos(1).tensorInfo("t", 0, 4, 8).toBytes(),
                "tensor 't'", "data offset 4 is not a multiple of the alignment 32");
        fails(withTensorInfos(1).tensorInfo("t", 0, -32, 8).toBytes(), "absurd data offset 18446744073709551584");
        fails(withTensorInfos(2).tensorInfo("t", 0, 0, 8).tensorInfo("t", 0, 32, 8).padTo(32)
                .bytes(new byte[64]).toBytes(), "tensor 't'", "duplicate tensor name");
        fails(withTensorInfos(2).tensorInfo("t", 0, 0, 8).toBytes(), "truncated: tensor info #1", "name length");
        fails(Arrays.copyOf(withTensorInfos(1).tensorInfo("t", 0, 0, 8).toBytes(), 70),
                "truncated: tensor info #0 name length needs 8 bytes at byte 69");
    }

    @Test
    void tensorDataPastTheEnd() throws IOException {
        RawGguf raw = withTensorInfos(2)
                .tensorInfo("token_embd.weight", 0, 0, 8)
                .tensorInfo("blk.0.attn_q.weight", TensorType.Q8_0.ggmlId(), 32, 64, 4)
                .padTo(32);
        long dataStart = raw.size();
        raw.bytes(new byte[32 + 8 * 34 - 1]); // one byte short
        long fileSize = raw.size();
        ModelLoadException e = fails(raw.toBytes());
        assertEquals(dir.resolve("model.gguf") + ": truncated: tensor 'blk.0.attn_q.weight' ends at byte "
                + (dataStart + 32 + 8 * 34) + " past the file end " + fileSize, e.getMessage());
        fails(withTensorInfos(1).tensorInfo("t", 0, 1L << 62, 8).toBytes(), "tensor 't' ends at byte", "past the file end");
        fails(withTensorInfos(1).tensorInfo("t", 0, 0x7FFF_FFFF_FFFF_FFE0L, 8).toBytes(),
                "tensor 't' ends at byte beyond 2^63");
    }

    @Test
    void missingOrUnreadableFiles() {
        Path missing = dir.resolve("nope.gguf");
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> GgufFile.open(missing));
        assertEquals(missing + ": no such file", e.getMessage());
        ModelLoadException d = assertThrows(ModelLoadException.class, () -> GgufFile.open(dir));
        assertTrue(d.getMessage().startsWith(dir + ": "), d.getMessage());
    }

    /** A file with metadata of every type and small tensors of every type. */
    private static byte[] validFile(Random rnd) {
        Map<String, GgufValue> metadata = GgufRoundTripTest.everyValueType(rnd);
        List<GgufRoundTripTest.Tensor> tensors = GgufRoundTripTest.tensorsOfEveryType(rnd).stream()
                .filter(t -> t.data().length < 2000).toList();
        return GgufRoundTripTest.writer(metadata, tensors).toByteArray();
    }

    @Test
    void truncatedAnywhereFailsCleanlyUnlessOnlyPaddingIsLost() {
        Random rnd = new Random(42);
        byte[] valid = validFile(rnd);
        GgufFile whole = GgufFile.parse("whole.gguf", MemorySegment.ofArray(valid));
        TensorInfo last = whole.tensors().getLast();
        long lastEnd = whole.dataOffset() + last.offset() + last.byteSize();
        assertTrue(lastEnd < valid.length, "the last tensor is padded");
        for (int trial = 0; trial < 200; trial++) {
            int cut = trial < 4 ? (int) lastEnd - 1 + trial : rnd.nextInt(valid.length);
            String name = "cut-at-" + cut + ".gguf";
            GgufFile parsed = parseOrLoadError(name, Arrays.copyOf(valid, cut), "truncation at " + cut);
            assertEquals(cut >= lastEnd, parsed != null, "truncation at " + cut + " of " + valid.length
                    + " (last tensor ends at " + lastEnd + ")");
        }
    }

    @Test
    void flippedHeaderBytesFailCleanlyOrParse() {
        Random rnd = new Random(7);
        byte[] valid = validFile(rnd);
        long dataOffset = GgufFile.parse("whole.gguf", MemorySegment.ofArray(valid)).dataOffset();
        int parsedCount = 0;
        for (int trial = 0; trial < 400; trial++) {
            byte[] bytes = valid.clone();
            int flips = 1 + rnd.nextInt(3);
            StringBuilder what = new StringBuilder("trial " + trial + " flipped");
            for (int f = 0; f < flips; f++) {
                // half the time in the first 64 bytes (magic, version, counts, first key), else anywhere before the data
                int at = rnd.nextBoolean() ? rnd.nextInt(64) : rnd.nextInt((int) dataOffset);
                bytes[at] ^= (byte) (1 + rnd.nextInt(255));
                what.append(' ').append(at);
            }
            if (parseOrLoadError("flipped-" + trial + ".gguf", bytes, what.toString()) != null) {
                parsedCount++;
            }
        }
        assertTrue(parsedCount < 400, "most flips are caught");
    }

    /**
     * Parses {@code bytes}: returns the file when it parses (after reading every value and tensor through
     * the public API), null when it fails with a ModelLoadException naming it; any other throwable fails.
     */
    private static GgufFile parseOrLoadError(String name, byte[] bytes, String what) {
        GgufFile g;
        try {
            g = GgufFile.parse(name, MemorySegment.ofArray(bytes));
        } catch (ModelLoadException e) {
            assertTrue(e.getMessage().startsWith(name + ": "), what + ": " + e.getMessage());
            return null;
        } catch (Throwable t) {
            fail(what + ": " + t, t);
            return null;
        }
        try {
            for (Map.Entry<String, GgufValue> e : g.metadata().entrySet()) {
                assertTrue(e.getValue().toString() != null);
                try {
                    g.getLong(e.getKey());
                } catch (ModelLoadException expected) {
                    // not an integer (or too large): a clean refusal is fine
                }
            }
            for (TensorInfo t : g.tensors()) {
                MemorySegment data = g.tensorData(t);
                assertEquals(t.byteSize(), data.byteSize());
                if (t.byteSize() > 0 && t.elementCount() <= 1 << 20) {
                    Quants.dequantize(t.type(), data);
                }
            }
        } catch (Throwable t) {
            fail(what + ": parsed, but using it threw " + t, t);
        }
        return g;
    }
}
