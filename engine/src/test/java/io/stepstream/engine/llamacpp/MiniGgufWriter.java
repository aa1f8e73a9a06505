package io.stepstream.engine.llamacpp;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A minimal GGUF v3 writer for tests: metadata of the scalar, string and array types llama.cpp's vocabularies use,
 * and optional F32 tensors, so llama.cpp can load files we make ourselves. Test scope only, until the engine's
 * GGUF writer exists.
 */
public final class MiniGgufWriter {
    private static final int ALIGNMENT = 32;
    private static final int T_UINT32 = 4;
    private static final int T_INT32 = 5;
    private static final int T_FLOAT32 = 6;
    private static final int T_BOOL = 7;
    private static final int T_STRING = 8;
    private static final int T_ARRAY = 9;
    private static final int GGML_F32 = 0;

    private final Map<String, byte[]> kv = new LinkedHashMap<>();
    private final List<Tensor> tensors = new ArrayList<>();

    private record Tensor(String name, long[] dims, float[] data) {
    }

    public MiniGgufWriter string(String key, String value) {
        Buf b = new Buf().u32(T_STRING).str(value);
        kv.put(key, b.bytes());
        return this;
    }

    public MiniGgufWriter u32(String key, int value) {
        kv.put(key, new Buf().u32(T_UINT32).u32(value).bytes());
        return this;
    }

    public MiniGgufWriter i32(String key, int value) {
        kv.put(key, new Buf().u32(T_INT32).u32(value).bytes());
        return this;
    }

    public MiniGgufWriter f32(String key, float value) {
        kv.put(key, new Buf().u32(T_FLOAT32).f32(value).bytes());
        return this;
    }

    public MiniGgufWriter bool(String key, boolean value) {
        kv.put(key, new Buf().u32(T_BOOL).u8(value ? 1 : 0).bytes());
        return this;
    }

    public MiniGgufWriter strings(String key, List<String> values) {
        Buf b = new Buf().u32(T_ARRAY).u32(T_STRING).u64(values.size());
        values.forEach(b::str);
        kv.put(key, b.bytes());
        return this;
    }

    public MiniGgufWriter floats(String key, float[] values) {
        Buf b = new Buf().u32(T_ARRAY).u32(T_FLOAT32).u64(values.length);
        for (float v : values) {
            b.f32(v);
        }
        kv.put(key, b.bytes());
        return this;
    }

    public MiniGgufWriter ints(String key, int[] values) {
        Buf b = new Buf().u32(T_ARRAY).u32(T_INT32).u64(values.length);
        for (int v : values) {
            b.u32(v);
        }
        kv.put(key, b.bytes());
        return this;
    }

    /** An F32 tensor; dims in ggml order (ne0 first: the row length). */
    public MiniGgufWriter tensor(String name, float[] data, long... dims) {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        if (n != data.length) {
            throw new IllegalArgumentException(name + ": " + data.length + " floats for dims " + java.util.Arrays.toString(dims));
        }
        tensors.add(new Tensor(name, dims.clone(), data));
        return this;
    }

    public void write(Path file) throws IOException {
        Buf head = new Buf();
        head.u32(0x46554747).u32(3).u64(tensors.size()).u64(kv.size());
        for (Map.Entry<String, byte[]> e : kv.entrySet()) {
            head.str(e.getKey());
            head.out.writeBytes(e.getValue());
        }
        long offset = 0;
        for (Tensor t : tensors) {
            head.str(t.name).u32(t.dims.length);
            for (long d : t.dims) {
                head.u64(d);
            }
            head.u32(GGML_F32).u64(offset);
            offset = align(offset + 4L * t.data.length);
        }
        try (OutputStream out = Files.newOutputStream(file)) {
            byte[] h = head.bytes();
            out.write(h);
            out.write(new byte[(int) (align(h.length) - h.length)]);
            for (Tensor t : tensors) {
                ByteBuffer bb = ByteBuffer.allocate(4 * t.data.length).order(ByteOrder.LITTLE_ENDIAN);
                bb.asFloatBuffer().put(t.data);
                out.write(bb.array());
                long len = 4L * t.data.length;
                out.write(new byte[(int) (align(len) - len)]);
            }
        }
    }

    private static long align(long n) {
        return (n + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    private static final class Buf {
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        private final ByteBuffer scratch = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);

        Buf u8(int v) {
            out.write(v);
            return this;
        }

        Buf u32(int v) {
            out.write(scratch.clear().putInt(v).array(), 0, 4);
            return this;
        }

        Buf u64(long v) {
            out.write(scratch.clear().putLong(v).array(), 0, 8);
            return this;
        }

        Buf f32(float v) {
            out.write(scratch.clear().putFloat(v).array(), 0, 4);
            return this;
        }

        Buf str(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            out.writeBytes(b);
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }
}
