package io.stepstream.engine.format.gguf;

import io.stepstream.engine.tensor.TensorType;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor of a GGUF file. {@code dims} are in GGUF (ggml) order: dims[0] varies fastest and is the row
 * length, so a [rows, cols] matrix in row-major terms has dims {cols, rows}. {@code offset} is relative to
 * the start of the file's data section, as stored in the file; {@code byteSize} is what the type's blocks
 * take for all elements (without alignment padding).
 */
public record TensorInfo(String name, TensorType type, long[] dims, long offset, long byteSize) {
    public TensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(type, "type");
        dims = dims.clone();
    }

    @Override
    public long[] dims() {
        return dims.clone();
    }

    public int nDims() {
        return dims.length;
    }

    /** dims[i], or 1 past the stored dimensions (ggml's convention). */
    public long dim(int i) {
        return i < dims.length ? dims[i] : 1;
    }

    public long elementCount() {
        long n = 1;
        for (long d : dims) {
            n *= d; // the reader and writer reject dims whose product overflows
        }
        return n;
    }

    /** Elements in one row: dims[0] (1 for a scalar). */
    public long rowLength() {
        return dim(0);
    }

    public long rowCount() {
        long row = rowLength();
        return row == 0 ? 0 : elementCount() / row;
    }

    public long rowBytes() {
        return type.bytesFor(rowLength());
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && name.equals(t.name) && type == t.type && Arrays.equals(dims, t.dims)
                && offset == t.offset && byteSize == t.byteSize;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, type, Arrays.hashCode(dims), offset, byteSize);
    }

    @Override
    public String toString() {
        return "TensorInfo[" + name + ", " + type + ", " + Arrays.toString(dims) + ", offset " + offset + ", "
                + byteSize + " bytes]";
    }
}
