package io.stepstream.engine.llama2;

import io.stepstream.engine.ModelLoadException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Sequential little-endian reader over a model file (or an embedded resource) of known size. Reads go
 * through one reusable chunk buffer, so a large checkpoint is never held twice in memory.
 */
final class ByteSource implements AutoCloseable {
    private static final int CHUNK = 1 << 20;

    private final String name;
    private final long size;
    private final ReadableByteChannel channel;
    private final ByteBuffer chunk = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
    private long position;

    private ByteSource(String name, long size, ReadableByteChannel channel) {
        this.name = name;
        this.size = size;
        this.channel = channel;
        this.chunk.limit(0); // read mode, nothing buffered yet
    }

    static ByteSource open(Path file) {
        try {
            FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
            return new ByteSource(file.toString(), ch.size(), ch);
        } catch (IOException e) {
            throw new ModelLoadException(file + ": cannot open: " + e, e);
        }
    }

    static ByteSource of(String name, byte[] bytes) {
        return new ByteSource(name, bytes.length,
                Channels.newChannel(new java.io.ByteArrayInputStream(bytes)));
    }

    String name() {
        return name;
    }

    long size() {
        return size;
    }

    long remaining() {
        return size - position;
    }

    int readInt(String what) {
        fill(Integer.BYTES, what);
        int v = chunk.getInt();
        position += Integer.BYTES;
        return v;
    }

    float readFloat(String what) {
        fill(Float.BYTES, what);
        float v = chunk.getFloat();
        position += Float.BYTES;
        return v;
    }

    byte[] readBytes(int n, String what) {
        if (n > remaining()) {
            throw truncated(n, what);
        }
        byte[] out = new byte[n];
        int done = 0;
        while (done < n) {
            int step = Math.min(CHUNK, n - done);
            fill(step, what);
            chunk.get(out, done, step);
            position += step;
            done += step;
        }
        return out;
    }

    void readFloats(float[] dst, int offset, int count, String what) {
        if ((long) count * Float.BYTES > remaining()) {
            throw truncated((long) count * Float.BYTES, what);
        }
        int done = 0;
        while (done < count) {
            int step = Math.min(CHUNK / Float.BYTES, count - done);
            fill(step * Float.BYTES, what);
            chunk.asFloatBuffer().get(dst, offset + done, step);
            chunk.position(chunk.position() + step * Float.BYTES);
            position += (long) step * Float.BYTES;
            done += step;
        }
    }

    /** Skips bytes the loader recomputes itself (llama2.c's stored RoPE tables). */
    void skip(long n, String what) {
        if (n > remaining()) {
            throw truncated(n, what);
        }
        long left = n;
        while (left > 0) {
            int step = (int) Math.min(CHUNK, left);
            fill(step, what);
            chunk.position(chunk.position() + step);
            position += step;
            left -= step;
        }
    }

    /** Makes at least n bytes (n <= CHUNK) readable; the buffer is always in read mode between calls. */
    private void fill(int n, String what) {
        if (chunk.remaining() >= n) {
            return;
        }
        if (n > remaining()) {
            throw truncated(n, what);
        }
        chunk.compact();
        try {
            while (chunk.position() < n) {
                if (channel.read(chunk) < 0) {
                    chunk.flip();
                    throw truncated(n, what);
                }
            }
        } catch (IOException e) {
            throw new ModelLoadException(name + ": read failed at byte " + position + ": " + e, e);
        }
        chunk.flip();
    }

    ModelLoadException truncated(long needed, String what) {
        return new ModelLoadException(name + ": truncated: " + what + " needs " + needed + " bytes at offset "
                + position + ", file has " + size);
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // read-only: nothing to lose
        }
    }
}
