package io.stepstream.engine.format.gguf;

/**
 * Types of GGUF metadata values, with the ids the file format uses. Tensor element types are not here: they
 * are {@link io.stepstream.engine.tensor.TensorType}.
 */
public enum GgufValueType {
    UINT8(0, 1),
    INT8(1, 1),
    UINT16(2, 2),
    INT16(3, 2),
    UINT32(4, 4),
    INT32(5, 4),
    FLOAT32(6, 4),
    BOOL(7, 1),
    /** u64 byte length, then UTF-8 bytes (no terminator). */
    STRING(8, 8),
    /** u32 element type, u64 count, then the elements; arrays may hold arrays. */
    ARRAY(9, 12),
    UINT64(10, 8),
    INT64(11, 8),
    FLOAT64(12, 8);

    private static final GgufValueType[] BY_ID = values();

    private final int id;
    private final int minBytes;

    GgufValueType(int id, int minBytes) {
        this.id = id;
        this.minBytes = minBytes;
    }

    /** The id stored in the file. */
    public int id() {
        return id;
    }

    /**
     * The fewest bytes one value of this type takes in a file: its exact size for numbers and bools, the
     * length prefix for strings, the type and count header for arrays. Used to reject counts that cannot fit.
     */
    public int minBytes() {
        return minBytes;
    }

    public boolean isInteger() {
        return switch (this) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> true;
            default -> false;
        };
    }

    public boolean isUnsigned() {
        return this == UINT8 || this == UINT16 || this == UINT32 || this == UINT64;
    }

    /** The type with this id, or null when the id is not a GGUF value type. */
    public static GgufValueType fromId(long id) {
        // ids are dense 0..12 and the constants are declared in id order
        return id >= 0 && id < BY_ID.length ? BY_ID[(int) id] : null;
    }
}
