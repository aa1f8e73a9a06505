package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Species and decoders the weight kernels share. Every decoder turns stored elements into exact float32 lanes
 * (no rounding happens while decoding), so the only rounding in a matmul is in its multiply-adds.
 */
final class Lanes {
    static final VectorSpecies<Float> FLOATS = VectorKernels.FLOATS;
    /** Float lanes per vector. */
    static final int L = FLOATS.length();
    static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(L * 16));
    static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
    /**
     * Byte lanes loaded for one float vector: L, but at least 8 because there is no byte vector narrower than
     * 64 bits (with 4 float lanes, 8 bytes are loaded and half of them converted).
     */
    static final int BL = Math.max(L, 8);
    static final VectorSpecies<Byte> BYTES = VectorSpecies.of(byte.class, VectorShape.forBitSize(BL * 8));

    /**
     * Integer dot: a block's 32 int8 values widened to 32 shorts (one 512-bit vector), their 16-bit products
     * folded to 16 exact pair sums as 16 float lanes. Only with 16 float lanes (AVX-512): one block is then one
     * vector and the kernels need no inner chunk loop; other machines keep the float path.
     */
    static final boolean INT_DOT = L == 16;
    static final VectorSpecies<Byte> BYTES_2L = VectorSpecies.of(byte.class, VectorShape.forBitSize(L * 16));
    static final VectorSpecies<Short> SHORTS_2L = VectorSpecies.of(short.class, VectorShape.forBitSize(L * 32));

    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    private static final int F32_EXPONENT_BIAS_GAP = (127 - 15) << 23;

    static {
        if (32 % L != 0) {
            throw new ExceptionInInitializerError("float vectors of " + L + " lanes do not divide a 32-element block");
        }
        if (INT_DOT) {
            // Run each shape change of the integer-dot kernels once at class initialization, so that the lazily
            // made parts of their species exist before C2 compiles a kernel (a "missing constant" in
            // -XX:+PrintIntrinsics leaves the conversion a call, and the vectors around it boxed).
            pairSums(widen2L(ByteVector.zero(BYTES_2L)).mul(widen2L(ByteVector.zero(BYTES_2L))));
            shortsToFloats(widen(ByteVector.zero(BYTES)));
        }
    }

    private Lanes() {
    }

    /**
     * float16 bits (one per short lane) to floats, exactly as {@link Float#float16ToFloat}. Subnormals go through
     * an int-to-float conversion and a multiply by 2^-24 rather than through float32 subnormal arithmetic, which
     * is slow on x86 and would be hit often: small weights are common. Split into pieces small enough that the
     * JIT always inlines them (a vector passed to a call that is not inlined is boxed).
     */
    static FloatVector f16ToFloats(ShortVector halves) {
        IntVector h = (IntVector) halves.castShape(INTS, 0);
        return f16Magnitude(h.and(0x7FFF)).or(f16Sign(h)).reinterpretAsFloats();
    }

    private static IntVector f16Sign(IntVector h) {
        return h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
    }

    /** float32 bits of a float16 magnitude (sign cleared). */
    private static IntVector f16Magnitude(IntVector m) {
        return f16NormalOrSpecial(m).blend(f16Subnormal(m), m.compare(VectorOperators.LT, 0x400));
    }

    /** Normal: re-bias the exponent; inf/NaN (exponent 31): re-bias twice so it becomes 255, NaNs made quiet. */
    private static IntVector f16NormalOrSpecial(IntVector m) {
        return f16Special(f16Rebiased(m).add(F32_EXPONENT_BIAS_GAP, m.compare(VectorOperators.GE, 0x7C00)), m);
    }

    private static IntVector f16Rebiased(IntVector m) {
        return m.lanewise(VectorOperators.LSHL, 13).add(F32_EXPONENT_BIAS_GAP);
    }

    private static IntVector f16Special(IntVector bits, IntVector m) {
        return bits.lanewise(VectorOperators.OR, 0x0040_0000, m.compare(VectorOperators.GT, 0x7C00));
    }

    private static IntVector f16Subnormal(IntVector m) {
        return ((FloatVector) m.castShape(FLOATS, 0)).mul(0x1p-24f).reinterpretAsInts();
    }

    /** bfloat16 bits to floats: they are the upper half of a float32. */
    static FloatVector bf16ToFloats(ShortVector halves) {
        return ((IntVector) halves.castShape(INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    static float f16(MemorySegment data, long offset) {
        return Float.float16ToFloat(data.get(I16_LE, offset));
    }

    /**
     * Signed byte lanes [at, at + L) of a block as floats. {@code bytes} was loaded from the block's aligned
     * position {@code at - at % BL}; with fewer than 8 float lanes the right part of it is converted.
     */
    static FloatVector bytesToFloats(ByteVector bytes, int at) {
        return (FloatVector) bytes.castShape(FLOATS, (at % BL) / L);
    }

    /** Offset of the byte vector that holds lane {@code at} of a block (see {@link #bytesToFloats}). */
    static int byteLoadStart(int at) {
        return at - at % BL;
    }

    /** L shorts as L floats, through ints (the two widening steps the float16 decoder uses too). */
    static FloatVector shortsToFloats(ShortVector shorts) {
        return (FloatVector) shorts.castShape(INTS, 0).castShape(FLOATS, 0);
    }

    /** 2L signed bytes as 2L shorts. */
    static ShortVector widen2L(ByteVector bytes) {
        return (ShortVector) bytes.castShape(SHORTS_2L, 0);
    }

    /** L signed bytes as L shorts. */
    static ShortVector widen(ByteVector bytes) {
        return (ShortVector) bytes.castShape(SHORTS, 0);
    }

    /**
     * 2L 16-bit products folded to L floats: lane i is products[2i] + products[2i + 1], exact (int8 times int8
     * with one side in [-127, 127] is at most 16256 in magnitude, and the sum is an integer below 2^24, exact as
     * a float). The pair is read from the int view of the products: its high half by an arithmetic shift, its
     * low half by shifting up and back; no cross-lane shuffles and no shape change (the half-vector
     * reinterpretation this replaced blew C2's node budget in the four-row kernels, and then vectors got boxed).
     */
    static FloatVector pairSums(ShortVector products) {
        IntVector p = products.reinterpretAsInts();
        IntVector high = p.lanewise(VectorOperators.ASHR, 16);
        return (FloatVector) high.add(p.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16))
                .castShape(FLOATS, 0);
    }
}
