package io.stepstream.engine.bench;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * Vector API formulations of one Q8_0 x Q8_0 block dot (32 int8 weights times 32 int8 activations, exact int
 * products, then scaled by d_w * d_x into float lanes), over 512 rows x 2048 columns of weights in native memory
 * (ggml Q8_0 layout, fits in L2) and one activation row, one row at a time. Which formulation the matrix
 * kernels use comes from here (AVX-512 machine; the Vector API has no int8 or int16 dot-product operation):
 * <ul>
 *   <li>{@code floatDecode}: the old float path, int8 weights to floats, scale, FMA with float activations</li>
 *   <li>{@code shortHalves}: 32 bytes to 32 shorts, 16-bit products (|p| <= 128*127), the two 16-lane halves added
 *       in shorts (still fits), widened to 16 ints, converted and FMA'd with the block's scale</li>
 *   <li>{@code shortHalvesWide}: as shortHalves, activations already widened to shorts when quantized</li>
 *   <li>{@code shortPairShift}: 16-bit products reinterpreted as ints, the pair in each int summed by shifts</li>
 *   <li>{@code intDirect}: 16 bytes to 16 ints twice, 32-bit multiplies</li>
 *   <li>{@code weightMatrix} / {@code weightMatrixFloat}: the production kernels on the same bytes (integer dot
 *       with the activation quantization counted, and the float path)</li>
 * </ul>
 * Result on the 2-core Zen 4 VM (busy; us/op): floatDecode 90, intDirect 72, shortHalves 74, shortHalvesWide 80,
 * shortPairShift 74. All integer forms are within noise of each other and only ~20% ahead of the float decode in
 * this one-accumulator form; without an int8/int16 dot-product operation they cost about as many vector
 * operations per block as the float path. The kernels use shortPairShift: it needs no half-vector shape change,
 * which (with four rows per kernel) pushed C2 past its node budget.
 * <pre>
 * ./mvnw -q -B -pl engine -P jmh test-compile exec:exec -Djmh.args="Int8DotBenchmark -f 1 -wi 3 -i 5 -w 1s -r 1s"
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class Int8DotBenchmark {
    private static final VectorSpecies<Byte> B128 = ByteVector.SPECIES_128;
    private static final VectorSpecies<Byte> B256 = ByteVector.SPECIES_256;
    private static final VectorSpecies<Short> S256 = ShortVector.SPECIES_256;
    private static final VectorSpecies<Short> S512 = ShortVector.SPECIES_512;
    private static final VectorSpecies<Integer> I512 = IntVector.SPECIES_512;
    private static final VectorSpecies<Float> F512 = FloatVector.SPECIES_512;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    private static final int ROWS = 512;
    private static final int COLS = 2048;
    private static final int BLOCKS = COLS / 32;
    private static final long ROW_BYTES = BLOCKS * 34L;

    private MemorySegment w;
    private byte[] xq;
    private short[] xw;
    private float[] xd;
    private float[] xf;
    private final float[] out = new float[ROWS];

    private io.stepstream.engine.tensor.WeightMatrix matrix;
    private final io.stepstream.engine.tensor.QuantizedRows quantized = new io.stepstream.engine.tensor.QuantizedRows();

    /** The production kernels (WeightMatrix over the same bytes, activations quantized per call). */
    @Benchmark
    public float[] weightMatrix() {
        matrix.matmul(quantized.quantize(xf, 0, 1, COLS), out, 0, null);
        return out;
    }

    @Benchmark
    public float[] weightMatrixFloat() {
        matrix.matmul(xf, 0, 1, out, 0, null);
        return out;
    }

    @Setup
    public void setUp() {
        Random rnd = new Random(3);
        w = Arena.global().allocate(ROWS * ROW_BYTES, 64);
        for (long b = 0; b < ROWS * (long) BLOCKS; b++) {
            w.set(I16, b * 34, Float.floatToFloat16(0.001f + rnd.nextFloat() * 0.01f));
            for (int j = 0; j < 32; j++) {
                w.set(ValueLayout.JAVA_BYTE, b * 34 + 2 + j, (byte) (rnd.nextInt(255) - 127));
            }
        }
        matrix = io.stepstream.engine.tensor.WeightMatrix.of(io.stepstream.engine.tensor.TensorType.Q8_0, w, ROWS, COLS);
        xq = new byte[COLS];
        xw = new short[COLS];
        xf = new float[COLS];
        xd = new float[BLOCKS];
        for (int i = 0; i < COLS; i++) {
            xq[i] = (byte) (rnd.nextInt(255) - 127);
            xw[i] = xq[i];
        }
        for (int b = 0; b < BLOCKS; b++) {
            xd[b] = 0.01f + rnd.nextFloat();
            for (int j = 0; j < 32; j++) {
                xf[b * 32 + j] = xq[b * 32 + j] * xd[b];
            }
        }
    }

    @Benchmark
    public float[] floatDecode() {
        for (int r = 0; r < ROWS; r++) {
            long base = r * ROW_BYTES;
            FloatVector acc = FloatVector.zero(F512);
            for (int b = 0; b < BLOCKS; b++, base += 34) {
                float d = Float.float16ToFloat(w.get(I16, base));
                for (int j = 0; j < 32; j += 16) {
                    FloatVector wv = (FloatVector) ByteVector.fromMemorySegment(B128, w, base + 2 + j, LE)
                            .castShape(F512, 0);
                    acc = wv.mul(d).fma(FloatVector.fromArray(F512, xf, b * 32 + j), acc);
                }
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
        return out;
    }

    @Benchmark
    public float[] shortHalves() {
        for (int r = 0; r < ROWS; r++) {
            long base = r * ROW_BYTES;
            FloatVector acc = FloatVector.zero(F512);
            for (int b = 0; b < BLOCKS; b++, base += 34) {
                float s = Float.float16ToFloat(w.get(I16, base)) * xd[b];
                ShortVector wv = (ShortVector) ByteVector.fromMemorySegment(B256, w, base + 2, LE).castShape(S512, 0);
                ShortVector xv = (ShortVector) ByteVector.fromArray(B256, xq, b * 32).castShape(S512, 0);
                ShortVector p = wv.mul(xv);
                ShortVector h = ((ShortVector) p.reinterpretShape(S256, 0)).add((ShortVector) p.reinterpretShape(S256, 1));
                FloatVector f = (FloatVector) h.castShape(I512, 0).castShape(F512, 0);
                acc = f.fma(FloatVector.broadcast(F512, s), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
        return out;
    }

    @Benchmark
    public float[] shortHalvesWide() {
        for (int r = 0; r < ROWS; r++) {
            long base = r * ROW_BYTES;
            FloatVector acc = FloatVector.zero(F512);
            for (int b = 0; b < BLOCKS; b++, base += 34) {
                float s = Float.float16ToFloat(w.get(I16, base)) * xd[b];
                ShortVector wv = (ShortVector) ByteVector.fromMemorySegment(B256, w, base + 2, LE).castShape(S512, 0);
                ShortVector p = wv.mul(ShortVector.fromArray(S512, xw, b * 32));
                ShortVector h = ((ShortVector) p.reinterpretShape(S256, 0)).add((ShortVector) p.reinterpretShape(S256, 1));
                FloatVector f = (FloatVector) h.castShape(I512, 0).castShape(F512, 0);
                acc = f.fma(FloatVector.broadcast(F512, s), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
        return out;
    }

    @Benchmark
    public float[] shortPairShift() {
        for (int r = 0; r < ROWS; r++) {
            long base = r * ROW_BYTES;
            FloatVector acc = FloatVector.zero(F512);
            for (int b = 0; b < BLOCKS; b++, base += 34) {
                float s = Float.float16ToFloat(w.get(I16, base)) * xd[b];
                ShortVector wv = (ShortVector) ByteVector.fromMemorySegment(B256, w, base + 2, LE).castShape(S512, 0);
                IntVector p = wv.mul(ShortVector.fromArray(S512, xw, b * 32)).reinterpretAsInts();
                IntVector pair = p.lanewise(VectorOperators.ASHR, 16)
                        .add(p.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16));
                acc = ((FloatVector) pair.castShape(F512, 0)).fma(FloatVector.broadcast(F512, s), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
        return out;
    }

    @Benchmark
    public float[] intDirect() {
        for (int r = 0; r < ROWS; r++) {
            long base = r * ROW_BYTES;
            FloatVector acc = FloatVector.zero(F512);
            for (int b = 0; b < BLOCKS; b++, base += 34) {
                float s = Float.float16ToFloat(w.get(I16, base)) * xd[b];
                IntVector w0 = (IntVector) ByteVector.fromMemorySegment(B128, w, base + 2, LE).castShape(I512, 0);
                IntVector w1 = (IntVector) ByteVector.fromMemorySegment(B128, w, base + 18, LE).castShape(I512, 0);
                IntVector x0 = (IntVector) ByteVector.fromArray(B128, xq, b * 32).castShape(I512, 0);
                IntVector x1 = (IntVector) ByteVector.fromArray(B128, xq, b * 32 + 16).castShape(I512, 0);
                IntVector sum = w0.mul(x0).add(w1.mul(x1));
                acc = ((FloatVector) sum.castShape(F512, 0)).fma(FloatVector.broadcast(F512, s), acc);
            }
            out[r] = acc.reduceLanes(VectorOperators.ADD);
        }
        return out;
    }
}
