package io.stepstream.engine.format.gguf;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * One GGUF metadata value, keeping its exact GGUF type so that a file read and written again is the same.
 * Scalars are records; arrays keep their elements in a primitive Java array of the element's width.
 */
public sealed interface GgufValue permits GgufValue.Int, GgufValue.Float32, GgufValue.Float64, GgufValue.Bool,
        GgufValue.Text, GgufValue.Array {

    GgufValueType type();

    /**
     * Any of the eight integer types. {@code value} is the number itself, except for UINT64 where it holds the
     * 64 raw bits (values above {@link Long#MAX_VALUE} are negative here; see {@link Long#toUnsignedString}).
     */
    record Int(GgufValueType type, long value) implements GgufValue {
        public Int {
            Objects.requireNonNull(type, "type");
            if (!type.isInteger()) {
                throw new IllegalArgumentException(type + " is not an integer type");
            }
            if (!fits(type, value)) {
                throw new IllegalArgumentException(value + " does not fit in " + type);
            }
        }

        static boolean fits(GgufValueType type, long v) {
            return switch (type) {
                case UINT8 -> v >= 0 && v <= 0xFF;
                case INT8 -> v >= Byte.MIN_VALUE && v <= Byte.MAX_VALUE;
                case UINT16 -> v >= 0 && v <= 0xFFFF;
                case INT16 -> v >= Short.MIN_VALUE && v <= Short.MAX_VALUE;
                case UINT32 -> v >= 0 && v <= 0xFFFF_FFFFL;
                case INT32 -> v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE;
                case UINT64, INT64 -> true;
                default -> false;
            };
        }

        /** True when this value, read as the number it stands for, lies in [min, max]. */
        boolean inRange(long min, long max) {
            if (type == GgufValueType.UINT64 && value < 0) {
                return false; // above Long.MAX_VALUE
            }
            return value >= min && value <= max;
        }

        @Override
        public String toString() {
            return type + ":" + (type == GgufValueType.UINT64 ? Long.toUnsignedString(value) : Long.toString(value));
        }
    }

    record Float32(float value) implements GgufValue {
        @Override
        public GgufValueType type() {
            return GgufValueType.FLOAT32;
        }
    }

    record Float64(double value) implements GgufValue {
        @Override
        public GgufValueType type() {
            return GgufValueType.FLOAT64;
        }
    }

    record Bool(boolean value) implements GgufValue {
        @Override
        public GgufValueType type() {
            return GgufValueType.BOOL;
        }
    }

    record Text(String value) implements GgufValue {
        public Text {
            Objects.requireNonNull(value, "value");
        }

        @Override
        public GgufValueType type() {
            return GgufValueType.STRING;
        }
    }

    static Int uint8(int v) {
        return new Int(GgufValueType.UINT8, v);
    }

    static Int int8(int v) {
        return new Int(GgufValueType.INT8, v);
    }

    static Int uint16(int v) {
        return new Int(GgufValueType.UINT16, v);
    }

    static Int int16(int v) {
        return new Int(GgufValueType.INT16, v);
    }

    static Int uint32(long v) {
        return new Int(GgufValueType.UINT32, v);
    }

    static Int int32(int v) {
        return new Int(GgufValueType.INT32, v);
    }

    /** {@code rawBits} as an unsigned 64-bit number. */
    static Int uint64(long rawBits) {
        return new Int(GgufValueType.UINT64, rawBits);
    }

    static Int int64(long v) {
        return new Int(GgufValueType.INT64, v);
    }

    static Float32 float32(float v) {
        return new Float32(v);
    }

    static Float64 float64(double v) {
        return new Float64(v);
    }

    static Bool bool(boolean v) {
        return new Bool(v);
    }

    static Text string(String v) {
        return new Text(v);
    }

    /**
     * A typed array. Elements are stored by width: byte[] for UINT8/INT8, short[] for UINT16/INT16, int[] for
     * UINT32/INT32, long[] for UINT64/INT64 (unsigned ones as raw bits), float[], double[], boolean[],
     * String[] and Array[] (arrays of arrays; each inner array has its own element type). Immutable: the
     * factories and accessors copy.
     */
    final class Array implements GgufValue {
        private final GgufValueType elementType;
        private final Object elements;

        private Array(GgufValueType elementType, Object elements) {
            this.elementType = elementType;
            this.elements = elements;
        }

        /** Wraps an array the reader just built and hands to nobody else (no copy). */
        static Array trusted(GgufValueType elementType, Object elements) {
            return new Array(elementType, elements);
        }

        /** An array of {@code elementType} holding a copy of {@code javaArray}, whose class must match the type. */
        public static Array of(GgufValueType elementType, Object javaArray) {
            Objects.requireNonNull(elementType, "elementType");
            Objects.requireNonNull(javaArray, "javaArray");
            Class<?> expected = storageClass(elementType);
            if (javaArray.getClass() != expected) {
                throw new IllegalArgumentException("an array of " + elementType + " is stored as "
                        + expected.getSimpleName() + ", got " + javaArray.getClass().getSimpleName());
            }
            Object copy = switch (javaArray) {
                case byte[] a -> a.clone();
                case short[] a -> a.clone();
                case int[] a -> a.clone();
                case long[] a -> a.clone();
                case float[] a -> a.clone();
                case double[] a -> a.clone();
                case boolean[] a -> a.clone();
                case String[] a -> {
                    for (String s : a) {
                        Objects.requireNonNull(s, "string element");
                    }
                    yield a.clone();
                }
                case Array[] a -> {
                    for (Array x : a) {
                        Objects.requireNonNull(x, "array element");
                    }
                    yield a.clone();
                }
                default -> throw new IllegalArgumentException("not an array: " + javaArray.getClass());
            };
            return new Array(elementType, copy);
        }

        static Class<?> storageClass(GgufValueType elementType) {
            return switch (elementType) {
                case UINT8, INT8 -> byte[].class;
                case UINT16, INT16 -> short[].class;
                case UINT32, INT32 -> int[].class;
                case UINT64, INT64 -> long[].class;
                case FLOAT32 -> float[].class;
                case FLOAT64 -> double[].class;
                case BOOL -> boolean[].class;
                case STRING -> String[].class;
                case ARRAY -> Array[].class;
            };
        }

        public static Array uint8s(byte... v) {
            return of(GgufValueType.UINT8, v);
        }

        public static Array int8s(byte... v) {
            return of(GgufValueType.INT8, v);
        }

        public static Array uint16s(short... v) {
            return of(GgufValueType.UINT16, v);
        }

        public static Array int16s(short... v) {
            return of(GgufValueType.INT16, v);
        }

        public static Array uint32s(int... rawBits) {
            return of(GgufValueType.UINT32, rawBits);
        }

        public static Array int32s(int... v) {
            return of(GgufValueType.INT32, v);
        }

        public static Array uint64s(long... rawBits) {
            return of(GgufValueType.UINT64, rawBits);
        }

        public static Array int64s(long... v) {
            return of(GgufValueType.INT64, v);
        }

        public static Array float32s(float... v) {
            return of(GgufValueType.FLOAT32, v);
        }

        public static Array float64s(double... v) {
            return of(GgufValueType.FLOAT64, v);
        }

        public static Array bools(boolean... v) {
            return of(GgufValueType.BOOL, v);
        }

        public static Array strings(List<String> v) {
            return of(GgufValueType.STRING, v.toArray(String[]::new));
        }

        public static Array arrays(List<Array> v) {
            return of(GgufValueType.ARRAY, v.toArray(Array[]::new));
        }

        @Override
        public GgufValueType type() {
            return GgufValueType.ARRAY;
        }

        public GgufValueType elementType() {
            return elementType;
        }

        public int length() {
            return java.lang.reflect.Array.getLength(elements);
        }

        /** The storage array itself, for the writer; never handed outside the package. */
        Object storage() {
            return elements;
        }

        /** A copy of the elements as the Java array type named in the class comment. */
        public Object toJavaArray() {
            return switch (elements) {
                case byte[] a -> a.clone();
                case short[] a -> a.clone();
                case int[] a -> a.clone();
                case long[] a -> a.clone();
                case float[] a -> a.clone();
                case double[] a -> a.clone();
                case boolean[] a -> a.clone();
                case String[] a -> a.clone();
                case Array[] a -> a.clone();
                default -> throw new IllegalStateException("unreachable");
            };
        }

        /**
         * Integer elements as the numbers they stand for (unsigned types zero-extended).
         *
         * @throws IllegalStateException when the elements are not integers or one does not fit in an int
         */
        public int[] ints() {
            long[] all = longs();
            int[] out = new int[all.length];
            for (int i = 0; i < all.length; i++) {
                if (all[i] != (int) all[i]) {
                    throw new IllegalStateException("element " + i + " = " + all[i] + " does not fit in an int");
                }
                out[i] = (int) all[i];
            }
            return out;
        }

        /**
         * Integer elements as the numbers they stand for.
         *
         * @throws IllegalStateException when the elements are not integers or a UINT64 exceeds Long.MAX_VALUE
         */
        public long[] longs() {
            boolean unsigned = elementType.isUnsigned();
            long[] out;
            switch (elements) {
                case byte[] a -> {
                    out = new long[a.length];
                    for (int i = 0; i < a.length; i++) {
                        out[i] = unsigned ? Byte.toUnsignedLong(a[i]) : a[i];
                    }
                }
                case short[] a -> {
                    out = new long[a.length];
                    for (int i = 0; i < a.length; i++) {
                        out[i] = unsigned ? Short.toUnsignedLong(a[i]) : a[i];
                    }
                }
                case int[] a -> {
                    out = new long[a.length];
                    for (int i = 0; i < a.length; i++) {
                        out[i] = unsigned ? Integer.toUnsignedLong(a[i]) : a[i];
                    }
                }
                case long[] a -> {
                    if (unsigned) {
                        for (int i = 0; i < a.length; i++) {
                            if (a[i] < 0) {
                                throw new IllegalStateException("element " + i + " = "
                                        + Long.toUnsignedString(a[i]) + " does not fit in a long");
                            }
                        }
                    }
                    out = a.clone();
                }
                default -> throw new IllegalStateException("an array of " + elementType + " has no integer elements");
            }
            return out;
        }

        /** FLOAT32 elements. */
        public float[] floats() {
            if (elements instanceof float[] a) {
                return a.clone();
            }
            throw new IllegalStateException("an array of " + elementType + " is not an array of FLOAT32");
        }

        /** FLOAT32 or FLOAT64 elements, widened to double. */
        public double[] doubles() {
            return switch (elements) {
                case double[] a -> a.clone();
                case float[] a -> {
                    double[] out = new double[a.length];
                    for (int i = 0; i < a.length; i++) {
                        out[i] = a[i];
                    }
                    yield out;
                }
                default -> throw new IllegalStateException("an array of " + elementType + " has no float elements");
            };
        }

        public boolean[] booleans() {
            if (elements instanceof boolean[] a) {
                return a.clone();
            }
            throw new IllegalStateException("an array of " + elementType + " is not an array of BOOL");
        }

        public List<String> strings() {
            if (elements instanceof String[] a) {
                return List.of(a);
            }
            throw new IllegalStateException("an array of " + elementType + " is not an array of STRING");
        }

        public List<Array> arrays() {
            if (elements instanceof Array[] a) {
                return List.of(a);
            }
            throw new IllegalStateException("an array of " + elementType + " is not an array of ARRAY");
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Array other && elementType == other.elementType
                    && Objects.deepEquals(elements, other.elements);
        }

        @Override
        public int hashCode() {
            return 31 * elementType.hashCode() + Arrays.deepHashCode(new Object[] {elements});
        }

        @Override
        public String toString() {
            int n = length();
            StringBuilder sb = new StringBuilder("ARRAY<").append(elementType).append(">[");
            for (int i = 0; i < Math.min(n, 8); i++) {
                sb.append(i == 0 ? "" : ", ").append(java.lang.reflect.Array.get(elements, i));
            }
            return sb.append(n > 8 ? ", ... (" + n + " elements)]" : "]").toString();
        }
    }
}
