package io.stepstream.engine.tensor;

/**
 * Element encodings of weight tensors, with ggml's type ids and block layouts (elements per block, bytes per
 * block). Quantized types store blocks of elements that share scales; a row's length must be a multiple of
 * the block size.
 */
public enum TensorType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),
    Q8_0(8, 32, 34),
    Q4_K(12, 256, 144),
    Q6_K(14, 256, 210),
    BF16(30, 1, 2);

    private final int ggmlId;
    private final int blockSize;
    private final int blockBytes;

    TensorType(int ggmlId, int blockSize, int blockBytes) {
        this.ggmlId = ggmlId;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    /** The id ggml and GGUF files use for this type. */
    public int ggmlId() {
        return ggmlId;
    }

    /** Elements per block (1 for plain float types). */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int blockBytes() {
        return blockBytes;
    }

    public boolean quantized() {
        return blockSize > 1;
    }

    /** Bytes taken by {@code elements} elements; elements must be a whole number of blocks. */
    public long bytesFor(long elements) {
        if (elements < 0 || elements % blockSize != 0) {
            throw new IllegalArgumentException(this + ": " + elements + " elements is not a whole number of "
                    + blockSize + "-element blocks");
        }
        return Math.multiplyExact(elements / blockSize, (long) blockBytes);
    }

    /** The type with this ggml id, or null when stepstream does not support it. */
    public static TensorType fromGgmlId(int id) {
        for (TensorType t : values()) {
            if (t.ggmlId == id) {
                return t;
            }
        }
        return null;
    }
}
