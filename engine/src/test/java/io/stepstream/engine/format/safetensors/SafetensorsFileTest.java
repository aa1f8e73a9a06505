package io.stepstream.engine.format.safetensors;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.stepstream.engine.ModelLoadException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Reading well-formed safetensors files, and clear errors for malformed ones. */
class SafetensorsFileTest {
    private static void fails(byte[] bytes, String... fragments) {
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> SafetensorsFile.of("bad.safetensors", bytes));
        assertTrue(e.getMessage().startsWith("bad.safetensors: "), "names the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
    }

    private static float[] randomFloats(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * 10);
        }
        return a;
    }

    @Test
    void mappedFileRoundTripsF32AndMetadata(@TempDir Path dir) {
        SplittableRandom r = new SplittableRandom(1);
        float[] a = randomFloats(r, 12);
        float[] b = randomFloats(r, 5);
        Path file = new SafetensorsWriter().metadata("format", "pt").f32("a", a, 3, 4).f32("b", b, 5)
                .write(dir.resolve("m.safetensors"));
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(List.of("a", "b"), List.copyOf(f.tensors().keySet()));
            assertEquals("pt", f.metadata().get("format"));
            SafetensorsTensor t = f.tensor("a");
            assertEquals(SafetensorsDtype.F32, t.dtype());
            assertArrayEquals(new long[]{3, 4}, t.shape());
            assertEquals(12, t.elements());
            assertArrayEquals(a, t.requireShape(3, 4).toFloats());
            assertArrayEquals(b, f.tensor("b").toFloats());
            ModelLoadException e = assertThrows(ModelLoadException.class, () -> t.requireShape(4, 3));
            assertTrue(e.getMessage().contains("tensor a has shape [3, 4], expected [4, 3]"), e.getMessage());
            e = assertThrows(ModelLoadException.class, () -> f.tensor("c"));
            assertTrue(e.getMessage().contains("no tensor named c"), e.getMessage());
        }
    }

    @Test
    void halfAndBfloat16WidenExactly() {
        SplittableRandom r = new SplittableRandom(2);
        int n = 64;
        ByteBuffer f16 = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer bf16 = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        float[] expectF16 = new float[n];
        float[] expectBf16 = new float[n];
        for (int i = 0; i < n; i++) {
            float v = (float) (r.nextGaussian() * 100);
            short h = Float.floatToFloat16(v);
            f16.putShort(h);
            expectF16[i] = Float.float16ToFloat(h);
            int bits = Float.floatToRawIntBits(v) & 0xFFFF0000; // bf16 = the top 16 bits
            bf16.putShort((short) (bits >>> 16));
            expectBf16[i] = Float.intBitsToFloat(bits);
        }
        byte[] bytes = new SafetensorsWriter().raw("h", "F16", f16.array(), 8, 8).raw("b", "BF16", bf16.array(), n)
                .toBytes();
        try (SafetensorsFile f = SafetensorsFile.of("x", bytes)) {
            assertArrayEquals(expectF16, f.tensor("h").toFloats());
            assertArrayEquals(expectBf16, f.tensor("b").toFloats());
            assertEquals(SafetensorsDtype.BF16, f.tensor("b").dtype());
        }
        // A known value: bf16 0x3FC0 is 1.5, f16 0x3E00 is 1.5.
        byte[] one = new SafetensorsWriter().raw("h", "F16", new byte[]{0x00, 0x3E}, 1)
                .raw("b", "BF16", new byte[]{(byte) 0xC0, 0x3F}, 1).toBytes();
        try (SafetensorsFile f = SafetensorsFile.of("x", one)) {
            assertEquals(1.5f, f.tensor("h").toFloats()[0]);
            assertEquals(1.5f, f.tensor("b").toFloats()[0]);
        }
    }

    @Test
    void scalarsAndEmptyTensorsAreFine() {
        byte[] bytes = new SafetensorsWriter().f32("s", new float[]{7f}).f32("e", new float[0], 0, 3).toBytes();
        try (SafetensorsFile f = SafetensorsFile.of("x", bytes)) {
            assertEquals(0, f.tensor("s").rank());
            assertEquals(7f, f.tensor("s").toFloats()[0]);
            assertEquals(0, f.tensor("e").toFloats().length);
        }
    }

    @Test
    void truncatedOrLyingHeaderLength() {
        fails(new byte[5], "too short");
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000);
        fails(b.array(), "truncated", "1000");
        fails(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-1).array(), "header length");
        fails(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0).array(), "header length");
    }

    @Test
    void headerMustBeAJsonObject() {
        fails(SafetensorsWriter.assemble("{\"a\": ", new byte[0]), "not valid JSON");
        fails(SafetensorsWriter.assemble("[1, 2]", new byte[0]), "must be a JSON object");
        fails(SafetensorsWriter.assemble("{\"a\": 1, \"a\": 2}", new byte[0]), "not valid JSON", "a");
        fails(SafetensorsWriter.assemble("{\"a\": 5}", new byte[0]), "tensor a", "must be an object");
        fails(SafetensorsWriter.assemble("{\"__metadata__\": {\"k\": 1}}", new byte[0]), "__metadata__.k");
    }

    @Test
    void dtypesOutsideF32F16Bf16AreRefusedClearly() {
        fails(new SafetensorsWriter().raw("t", "I64", new byte[8], 1).toBytes(), "tensor t", "dtype I64 is not supported");
        fails(new SafetensorsWriter().raw("t", "F8_E4M3", new byte[1], 1).toBytes(), "not supported");
        fails(new SafetensorsWriter().raw("t", "Q4", new byte[1], 1).toBytes(), "unknown dtype \"Q4\"");
    }

    @Test
    void badShapesAndOffsets() {
        SafetensorsWriter w = new SafetensorsWriter().f32("a", new float[6], 2, 3);
        byte[] data = w.data();
        ObjectNode h = w.header();
        ((ObjectNode) h.get("a")).putArray("shape").add(2).add(4);
        fails(SafetensorsWriter.assemble(h.toString(), data), "tensor a", "needs 32 bytes", "hold 24");

        h = w.header();
        ((ObjectNode) h.get("a")).putArray("data_offsets").add(0).add(48);
        fails(SafetensorsWriter.assemble(h.toString(), new byte[24]), "run past the end of the data section");

        h = w.header();
        ((ObjectNode) h.get("a")).putArray("data_offsets").add(24).add(0);
        fails(SafetensorsWriter.assemble(h.toString(), data), "end before they begin");

        h = w.header();
        ((ObjectNode) h.get("a")).putArray("shape").add(2).add(-3);
        fails(SafetensorsWriter.assemble(h.toString(), data), "non-negative integers");

        h = w.header();
        ((ObjectNode) h.get("a")).putArray("data_offsets").add(0);
        fails(SafetensorsWriter.assemble(h.toString(), data), "data_offsets", "2 entries");

        h = w.header();
        ((ObjectNode) h.get("a")).remove("dtype");
        fails(SafetensorsWriter.assemble(h.toString(), data), "dtype");

        h = w.header();
        ((ObjectNode) h.get("a")).putArray("shape").add(Long.MAX_VALUE).add(4);
        fails(SafetensorsWriter.assemble(h.toString(), data), "too large");
    }

    @Test
    void overlappingTensorsAreRefused() {
        SafetensorsWriter w = new SafetensorsWriter().f32("a", new float[4], 4).f32("b", new float[4], 4);
        ObjectNode h = w.header();
        ((ObjectNode) h.get("b")).putArray("data_offsets").add(8).add(24);
        fails(SafetensorsWriter.assemble(h.toString(), w.data()), "tensors a and b overlap");
        // An overlap hidden behind an empty tensor: a spans everything, e is empty inside it, c inside a too.
        w = new SafetensorsWriter().f32("a", new float[8], 8).f32("e", new float[0], 0).f32("c", new float[2], 2);
        h = w.header();
        ((ObjectNode) h.get("e")).putArray("data_offsets").add(8).add(8);
        ((ObjectNode) h.get("c")).putArray("data_offsets").add(16).add(24);
        fails(SafetensorsWriter.assemble(h.toString(), w.data()), "tensors a and c overlap");
    }

    @Test
    void missingFileIsNamed(@TempDir Path dir) throws IOException {
        ModelLoadException e = assertThrows(ModelLoadException.class,
                () -> SafetensorsFile.open(dir.resolve("none.safetensors")));
        assertTrue(e.getMessage().contains("none.safetensors"), e.getMessage());
        Path empty = Files.write(dir.resolve("empty.safetensors"), new byte[0]);
        e = assertThrows(ModelLoadException.class, () -> SafetensorsFile.open(empty));
        assertTrue(e.getMessage().contains("empty.safetensors") && e.getMessage().contains("too short"), e.getMessage());
    }
}
