package io.stepstream.engine.format.safetensors;

import io.stepstream.engine.ModelLoadException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One tensor of a safetensors file: its name, element type, shape (row-major, outermost first) and its bytes,
 * a slice of the file's mapping (valid while the file is open).
 *
 * @param file the file it came from, for error messages
 */
public record SafetensorsTensor(String file, String name, SafetensorsDtype dtype, long[] shape, MemorySegment data) {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Largest Java array. */
    private static final long MAX_ARRAY = Integer.MAX_VALUE - 16;

    public SafetensorsTensor {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long elements() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Fails with a message naming the tensor unless its shape is exactly {@code expected}. */
    public SafetensorsTensor requireShape(long... expected) {
        if (!Arrays.equals(shape, expected)) {
            throw new ModelLoadException(file + ": tensor " + name + " has shape " + Arrays.toString(shape)
                    + ", expected " + Arrays.toString(expected));
        }
        return this;
    }

    /** The elements widened to float32 (F16 and BF16 convert exactly), in storage order. */
    public float[] toFloats() {
        long n = elements();
        if (n > MAX_ARRAY) {
            throw new ModelLoadException(file + ": tensor " + name + " has " + n + " elements, more than a Java array"
                    + " holds");
        }
        float[] out = new float[(int) n];
        switch (dtype) {
            case F32 -> MemorySegment.copy(data, F32, 0, out, 0, out.length);
            case F16 -> {
                for (int i = 0; i < out.length; i++) {
                    out[i] = Float.float16ToFloat(data.getAtIndex(U16, i));
                }
            }
            case BF16 -> {
                // bfloat16 is the upper half of a float32.
                for (int i = 0; i < out.length; i++) {
                    out[i] = Float.intBitsToFloat((data.getAtIndex(U16, i) & 0xFFFF) << 16);
                }
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return name + " " + dtype + " " + Arrays.toString(shape) + " (" + file + ")";
    }
}
