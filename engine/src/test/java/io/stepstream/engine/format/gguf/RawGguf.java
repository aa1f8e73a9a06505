package io.stepstream.engine.format.gguf;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Builds GGUF bytes by hand, field by field, without the writer: for files the writer would refuse to
 * produce (malformed ones, version 2) and to check the writer's layout independently.
 */
final class RawGguf {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    static RawGguf header(int version, long tensorCount, long kvCount) {
        RawGguf g = new RawGguf();
        g.bytes("GGUF".getBytes(StandardCharsets.US_ASCII)).u32(version).u64(tensorCount).u64(kvCount);
        return g;
    }

    RawGguf u8(int v) {
        out.write(v);
        return this;
    }

    RawGguf u16(int v) {
        return le(v, 2);
    }

    RawGguf u32(long v) {
        return le(v, 4);
    }

    RawGguf u64(long v) {
        return le(v, 8);
    }

    RawGguf f32(float v) {
        return u32(Float.floatToRawIntBits(v));
    }

    RawGguf f64(double v) {
        return u64(Double.doubleToRawLongBits(v));
    }

    private RawGguf le(long v, int width) {
        for (int i = 0; i < width; i++) {
            out.write((int) (v >>> (8 * i)) & 0xFF);
        }
        return this;
    }

    RawGguf bytes(byte[] b) {
        out.writeBytes(b);
        return this;
    }

    RawGguf str(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        return u64(b.length).bytes(b);
    }

    /** A metadata entry: key, value type id, then the caller writes the value. */
    RawGguf key(String key, GgufValueType type) {
        return str(key).u32(type.id());
    }

    RawGguf tensorInfo(String name, int ggmlType, long offset, long... dims) {
        str(name).u32(dims.length);
        for (long d : dims) {
            u64(d);
        }
        return u32(ggmlType).u64(offset);
    }

    RawGguf padTo(int alignment) {
        while (out.size() % alignment != 0) {
            out.write(0);
        }
        return this;
    }

    int size() {
        return out.size();
    }

    byte[] toBytes() {
        return out.toByteArray();
    }
}
