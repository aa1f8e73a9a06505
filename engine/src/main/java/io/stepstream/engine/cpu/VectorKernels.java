package io.stepstream.engine.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API versions of the small kernels around the matmuls (the plain ones in {@link Kernels} stay as
 * references); only those that clearly beat the plain loop in SmallKernelsBenchmark (axpy did not: C2
 * auto-vectorizes the plain loop). The Vector API's own EXP is computed by a different routine in compiled code
 * than in the interpreter, so results would depend on JIT timing; {@link #expNonPositive} is an exp built from
 * IEEE add, multiply, fma and bit operations only, with a scalar twin, for the softmaxes that need speed.
 * Reductions never use {@code reduceLanes} for the same reason: its summation order is unspecified and differs
 * between the interpreter and compiled code. {@link #sum} adds lanes in one fixed tree order instead.
 */
public final class VectorKernels {
    /** The float species all CPU kernels use. */
    public static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    /** Lanes of a {@link #FLOATS} vector. */
    public static final int LANES = FLOATS.length();
    private static final int L = LANES;
    // Lane rotations for the pairwise sum; null where the vector has too few lanes (then that step is skipped).
    private static final VectorShuffle<Float> DOWN_8 = L >= 16 ? VectorShuffle.fromOp(FLOATS, i -> (i + 8) % L) : null;
    private static final VectorShuffle<Float> DOWN_4 = L >= 8 ? VectorShuffle.fromOp(FLOATS, i -> (i + 4) % L) : null;
    private static final VectorShuffle<Float> DOWN_2 = L >= 4 ? VectorShuffle.fromOp(FLOATS, i -> (i + 2) % L) : null;
    private static final VectorShuffle<Float> DOWN_1 = L >= 2 ? VectorShuffle.fromOp(FLOATS, i -> (i + 1) % L) : null;

    static {
        if (L > 16) {
            throw new ExceptionInInitializerError("float vectors wider than 16 lanes are not supported: " + FLOATS);
        }
    }

    private VectorKernels() {
    }

    /**
     * Sum of the lanes in a fixed pairwise order: (l0+l8)+(l4+l12)... for 16 lanes, the same on every tier.
     * Kept (with {@link #fold}) under the JIT's always-inline size, so the vector argument is never boxed.
     */
    public static float sum(FloatVector v) {
        return fold(fold(fold(fold(v, DOWN_8), DOWN_4), DOWN_2), DOWN_1).lane(0);
    }

    /**
     * The same fixed-order sum over lanes stored at {@code v[at ..+ LANES)} (overwritten), in scalar code: for
     * kernels whose compiled size leaves no room to inline vector reductions.
     */
    public static float sumLanes(float[] v, int at) {
        for (int half = L / 2; half >= 1; half >>= 1) {
            for (int i = 0; i < half; i++) {
                v[at + i] += v[at + i + half];
            }
        }
        return v[at];
    }

    /**
     * Whether {@link #sumTileLanes} adds in vector registers (16 or 8 float lanes) or with {@link #sumLanes} per
     * accumulator; the sums are bitwise the same either way. System property {@code stepstream.cpu.vectorLaneSums}
     * (default true), for before/after measurements.
     */
    public static final boolean VECTOR_TILE_SUMS =
            (L == 16 || L == 8) && Boolean.parseBoolean(System.getProperty("stepstream.cpu.vectorLaneSums", "true"));
    /** Accumulators of a 4 x 4 tile. */
    private static final int TILE = 16;
    // Two-vector permute indices of each level of the tile sum (level s at [s * L, (s + 1) * L)); see mergeIndex.
    private static final float[] MERGE_LOW = mergeIndices(false);
    private static final float[] MERGE_HIGH = mergeIndices(true);

    /**
     * The fixed-order lane sums of the 16 accumulators of a 4 x 4 tile stored at {@code lanes[j * LANES ..]}
     * (j < 16): afterwards {@code lanes[j]} is exactly {@code sumLanes(lanes, j * LANES)} of accumulator j as it
     * was (the rest of the first 16 vectors is overwritten). The kernels call this after storing their
     * accumulators, so no vector crosses the call and it makes no difference to them whether the JIT inlines it.
     */
    public static void sumTileLanes(float[] lanes) {
        if (VECTOR_TILE_SUMS) {
            sumTileInVectors(lanes);
        } else {
            for (int j = 0; j < TILE; j++) {
                lanes[j] = sumLanes(lanes, j * L); // lanes[j] lies in accumulators j' <= j, already summed
            }
        }
    }

    /**
     * {@link #sumTileLanes} in vector registers: the 16 sums' trees side by side. After level s a vector holds
     * n = 2^(s+1) accumulators' L / n partial sums, partial p of its accumulator a at lane p * n + a; each level
     * merges two such vectors (u with the lower accumulators, v with the upper) by gathering every partial p
     * with two-vector permutes into one vector and every partial p + half into another and adding them: partial
     * p + partial (p + half), exactly the operand pairs of {@link #sumLanes}, whose half runs L/2, ..., 1 as the
     * levels do. 15 vector adds and 30 permutes for 16 lanes (14 and 28 for 8) against 16 x 15 dependent scalar
     * adds through memory. Written out on purpose, past the JIT's inlining size for hot calls (FreqInlineSize,
     * 325 bytecodes): it stays one compiled method of its own, so it never changes how the kernels that call it
     * are compiled.
     */
    static void sumTileInVectors(float[] lanes) {
        VectorSpecies<Float> s = FLOATS;
        FloatVector low = FloatVector.fromArray(s, MERGE_LOW, 0);
        FloatVector high = FloatVector.fromArray(s, MERGE_HIGH, 0);
        FloatVector b0 = merge(low, high, FloatVector.fromArray(s, lanes, 0), FloatVector.fromArray(s, lanes, L));
        FloatVector b1 = merge(low, high, FloatVector.fromArray(s, lanes, 2 * L), FloatVector.fromArray(s, lanes, 3 * L));
        FloatVector b2 = merge(low, high, FloatVector.fromArray(s, lanes, 4 * L), FloatVector.fromArray(s, lanes, 5 * L));
        FloatVector b3 = merge(low, high, FloatVector.fromArray(s, lanes, 6 * L), FloatVector.fromArray(s, lanes, 7 * L));
        FloatVector b4 = merge(low, high, FloatVector.fromArray(s, lanes, 8 * L), FloatVector.fromArray(s, lanes, 9 * L));
        FloatVector b5 = merge(low, high, FloatVector.fromArray(s, lanes, 10 * L), FloatVector.fromArray(s, lanes, 11 * L));
        FloatVector b6 = merge(low, high, FloatVector.fromArray(s, lanes, 12 * L), FloatVector.fromArray(s, lanes, 13 * L));
        FloatVector b7 = merge(low, high, FloatVector.fromArray(s, lanes, 14 * L), FloatVector.fromArray(s, lanes, 15 * L));
        low = FloatVector.fromArray(s, MERGE_LOW, L);
        high = FloatVector.fromArray(s, MERGE_HIGH, L);
        FloatVector c0 = merge(low, high, b0, b1);
        FloatVector c1 = merge(low, high, b2, b3);
        FloatVector c2 = merge(low, high, b4, b5);
        FloatVector c3 = merge(low, high, b6, b7);
        low = FloatVector.fromArray(s, MERGE_LOW, 2 * L);
        high = FloatVector.fromArray(s, MERGE_HIGH, 2 * L);
        FloatVector d0 = merge(low, high, c0, c1);
        FloatVector d1 = merge(low, high, c2, c3);
        if (L == 8) {
            d0.intoArray(lanes, 0); // sums of accumulators 0..7, one per lane
            d1.intoArray(lanes, L); // 8..15
        } else {
            low = FloatVector.fromArray(s, MERGE_LOW, 3 * L);
            high = FloatVector.fromArray(s, MERGE_HIGH, 3 * L);
            merge(low, high, d0, d1).intoArray(lanes, 0);
        }
    }

    /** One level of {@link #sumTileInVectors}: the partials at the low and at the high indices, added. */
    private static FloatVector merge(FloatVector low, FloatVector high, FloatVector u, FloatVector v) {
        return low.selectFrom(u, v).add(high.selectFrom(u, v));
    }

    /**
     * Permute indices of every level (n = 1, 2, 4, ... accumulators per input vector, m = L / n partials): output
     * lane q = p * 2n + a takes accumulator a of u (a < n) or a - n of v, partial p (low) or p + m/2 (high);
     * indices at or above L pick from v.
     */
    private static float[] mergeIndices(boolean high) {
        int levels = Integer.numberOfTrailingZeros(L);
        float[] idx = new float[Math.max(levels, 1) * L];
        for (int level = 0; level < levels; level++) {
            int n = 1 << level;
            int m = L / n;
            for (int q = 0; q < L; q++) {
                int p = q / (2 * n);
                int a = q % (2 * n);
                int from = a < n ? 0 : L;
                idx[level * L + q] = from + (high ? p + m / 2 : p) * n + a % n;
            }
        }
        return idx;
    }

    private static FloatVector fold(FloatVector v, VectorShuffle<Float> rotation) {
        return rotation == null ? v : v.add(v.rearrange(rotation));
    }

    /**
     * sum_i a[aOffset + i] * b[bOffset + i] for i below n: lane-wise fused multiply-adds over whole vectors,
     * the fixed-order lane sum, then the remaining elements in order (for attention scores).
     */
    public static float dot(float[] a, int aOffset, float[] b, int bOffset, int n) {
        FloatVector acc = FloatVector.zero(FLOATS);
        int i = 0;
        for (int bound = n - n % L; i < bound; i += L) {
            acc = FloatVector.fromArray(FLOATS, a, aOffset + i).fma(FloatVector.fromArray(FLOATS, b, bOffset + i), acc);
        }
        float s = sum(acc);
        for (; i < n; i++) {
            s = Math.fma(a[aOffset + i], b[bOffset + i], s);
        }
        return s;
    }

    /**
     * RMSNorm of one row, o = weight * (x / sqrt(mean(x^2) + eps)), with the element formula of
     * {@link Kernels#rmsnorm}; only the sum of squares is ordered differently (vector lanes, fixed order).
     */
    public static void rmsnorm(float[] out, int outOffset, float[] x, int xOffset, float[] weight, int size,
                               float eps) {
        scaleRow(out, outOffset, x, xOffset, weight, size, rmsScale(dot(x, xOffset, x, xOffset, size), size, eps));
    }

    /**
     * {@link Kernels#rmsnorm} of rows [rowFrom, rowTo) of {@code size} floats (row r at {@code r * size} in both x
     * and out), bit for bit: four rows at a time, each row's sum of squares still one scalar chain in element order
     * (four chains side by side hide the add latency that one chain waits on), then the element formula on vectors.
     */
    public static void rmsnormRows(float[] out, float[] x, float[] weight, int size, float eps, int rowFrom,
                                   int rowTo) {
        int r = rowFrom;
        for (; r + 4 <= rowTo; r += 4) {
            int o0 = r * size;
            int o1 = o0 + size;
            int o2 = o1 + size;
            int o3 = o2 + size;
            float s0 = 0f;
            float s1 = 0f;
            float s2 = 0f;
            float s3 = 0f;
            for (int j = 0; j < size; j++) {
                float v0 = x[o0 + j];
                float v1 = x[o1 + j];
                float v2 = x[o2 + j];
                float v3 = x[o3 + j];
                s0 += v0 * v0;
                s1 += v1 * v1;
                s2 += v2 * v2;
                s3 += v3 * v3;
            }
            scaleRow(out, o0, x, o0, weight, size, rmsScale(s0, size, eps));
            scaleRow(out, o1, x, o1, weight, size, rmsScale(s1, size, eps));
            scaleRow(out, o2, x, o2, weight, size, rmsScale(s2, size, eps));
            scaleRow(out, o3, x, o3, weight, size, rmsScale(s3, size, eps));
        }
        for (; r < rowTo; r++) {
            Kernels.rmsnorm(out, r * size, x, r * size, weight, size, eps);
        }
    }

    /** 1 / sqrt(ss / size + eps), as {@link Kernels#rmsnorm} computes it. */
    private static float rmsScale(float ss, int size, float eps) {
        ss /= size;
        ss += eps;
        return 1f / (float) Math.sqrt(ss);
    }

    /** out[oo + j] = weight[j] * (scale * x[xo + j]) for j < size. */
    private static void scaleRow(float[] out, int oo, float[] x, int xo, float[] weight, int size, float scale) {
        int j = 0;
        for (int bound = size - size % L; j < bound; j += L) {
            FloatVector.fromArray(FLOATS, weight, j).mul(FloatVector.fromArray(FLOATS, x, xo + j).mul(scale))
                    .intoArray(out, oo + j);
        }
        for (; j < size; j++) {
            out[oo + j] = weight[j] * (scale * x[xo + j]);
        }
    }

    private static final VectorShuffle<Float> SWAP_PAIRS = VectorShuffle.fromOp(FLOATS, i -> i ^ 1);

    /**
     * Rotary embedding of one token's row of heads in place, pairs interleaved (2p, 2p + 1), bit for bit the
     * scalar a' = a*c - b*s, b' = a*s + b*c: with {@code cos[i]} = c and {@code sin[i]} = -s at 2p and s at 2p + 1
     * ({@code [at, at + headSize)} of the two arrays, the same for every head), x' = x*cos[i] + swap(x)*sin[i]
     * computes a*c + b*(-s) (the same as a*c - b*s: subtracting is adding the negation) and b*c + a*s (float
     * addition commutes). {@code width} (all heads) and {@code headSize} must be multiples of {@link #LANES}.
     */
    public static void ropeInterleaved(float[] row, int base, int width, float[] cos, float[] sin, int at,
                                       int headSize) {
        for (int h = 0; h < width; h += headSize) {
            for (int i = 0; i < headSize; i += L) {
                FloatVector v = FloatVector.fromArray(FLOATS, row, base + h + i);
                v.mul(FloatVector.fromArray(FLOATS, cos, at + i))
                        .add(v.rearrange(SWAP_PAIRS).mul(FloatVector.fromArray(FLOATS, sin, at + i)))
                        .intoArray(row, base + h + i);
            }
        }
    }

    // exp(x) = 2^k * e^r with k = round(x / ln 2), r = x - k ln 2 in two parts (Cody and Waite), e^r by its Taylor
    // polynomial to r^7 (truncation below 1e-7 relative on |r| <= ln2 / 2); below LOWEST the result is 0.
    private static final float LOG2E = 1.44269504f;
    private static final float LN2_HI = 0.693145752f;
    private static final float LN2_LO = 1.42860677e-6f;
    /** Adding 1.5 * 2^23 rounds a float of magnitude below 2^22 to an integer, to nearest even. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = 0x4B400000;
    private static final float LOWEST = -87.0f;
    private static final float C2 = 1f / 2;
    private static final float C3 = 1f / 6;
    private static final float C4 = 1f / 24;
    private static final float C5 = 1f / 120;
    private static final float C6 = 1f / 720;
    private static final float C7 = 1f / 5040;

    /** e^x for x <= 0 (softmax arguments), within a few ulp of Math.exp. */
    public static FloatVector expNonPositive(FloatVector x) {
        VectorSpecies<Float> s = FLOATS;
        FloatVector clamped = x.max(LOWEST);
        FloatVector t = clamped.fma(FloatVector.broadcast(s, LOG2E), FloatVector.broadcast(s, ROUNDER));
        FloatVector k = t.sub(ROUNDER);
        FloatVector r = k.fma(FloatVector.broadcast(s, -LN2_HI), clamped);
        r = k.fma(FloatVector.broadcast(s, -LN2_LO), r);
        FloatVector p = FloatVector.broadcast(s, C7).fma(r, FloatVector.broadcast(s, C6));
        p = p.fma(r, FloatVector.broadcast(s, C5));
        p = p.fma(r, FloatVector.broadcast(s, C4));
        p = p.fma(r, FloatVector.broadcast(s, C3));
        p = p.fma(r, FloatVector.broadcast(s, C2));
        p = p.fma(r, FloatVector.broadcast(s, 1f));
        p = p.fma(r, FloatVector.broadcast(s, 1f));
        FloatVector scale = t.reinterpretAsInts().sub(ROUNDER_BITS).add(127).lanewise(VectorOperators.LSHL, 23)
                .reinterpretAsFloats();
        return p.mul(scale).blend(FloatVector.zero(s), x.lt(LOWEST));
    }

    /** The scalar twin of {@link #expNonPositive(FloatVector)}: the same operations, so the same bits. */
    public static float expNonPositive(float x) {
        if (x < LOWEST) {
            return 0f;
        }
        float t = Math.fma(x, LOG2E, ROUNDER);
        float k = t - ROUNDER;
        float r = Math.fma(k, -LN2_HI, x);
        r = Math.fma(k, -LN2_LO, r);
        float p = Math.fma(C7, r, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = Math.fma(p, r, 1f);
        p = Math.fma(p, r, 1f);
        float scale = Float.intBitsToFloat(((Float.floatToRawIntBits(t) - ROUNDER_BITS) + 127) << 23);
        return p * scale;
    }

    /** Per thread: the exponentials of one stretch of a swiglu. */
    private static final int SWIGLU_STRETCH = 256;
    private static final ThreadLocal<float[]> SWIGLU_EXP = ThreadLocal.withInitial(() -> new float[SWIGLU_STRETCH]);

    /**
     * a[i] = silu(a[i]) * b[i] over [from, to), bit for bit {@link Kernels#swiglu}: per stretch of up to 256
     * elements, e = {@code (float) Math.exp(-a[i])} from {@link FloatExp#expInto}, then per element the same float
     * operations (1 + e, its reciprocal, times a[i], times b[i]) on vectors.
     */
    public static void swiglu(float[] a, float[] b, int from, int to) {
        float[] e = SWIGLU_EXP.get();
        for (int i = from; i < to; i += SWIGLU_STRETCH) {
            int n = Math.min(SWIGLU_STRETCH, to - i);
            FloatExp.expInto(a, i, n, true, 0f, e, 0);
            int k = 0;
            for (int bound = n - n % L; k < bound; k += L) {
                FloatVector v = FloatVector.fromArray(FLOATS, a, i + k);
                FloatVector g = FloatVector.fromArray(FLOATS, e, k).add(1f);
                v.mul(FloatVector.broadcast(FLOATS, 1f).div(g)).mul(FloatVector.fromArray(FLOATS, b, i + k))
                        .intoArray(a, i + k);
            }
            for (; k < n; k++) {
                float v = a[i + k];
                v *= 1f / (1f + e[k]);
                a[i + k] = v * b[i + k];
            }
        }
    }

    /**
     * In-place softmax over x[offset .. offset+size), bit for bit {@link Kernels#softmax}: the same maximum, each
     * e = {@code (float) Math.exp(x - max)} from {@link FloatExp#expInto}, the same left-to-right float sum, then
     * the divisions on vectors.
     */
    public static void softmax(float[] x, int offset, int size) {
        float max = x[offset];
        for (int i = 1; i < size; i++) {
            max = Math.max(max, x[offset + i]);
        }
        FloatExp.expInto(x, offset, size, false, max, x, offset);
        int end = offset + size;
        float sum = 0f;
        for (int j = offset; j < end; j++) {
            sum += x[j];
        }
        int j = offset;
        for (int bound = end - size % L; j < bound; j += L) {
            FloatVector.fromArray(FLOATS, x, j).div(sum).intoArray(x, j);
        }
        for (; j < end; j++) {
            x[j] /= sum;
        }
    }

    /** Query rows that {@link #tileScores} scores together, each key loaded once for them. */
    public static final int SCORE_TILE = 4;

    /**
     * Attention scores of up to {@link #SCORE_TILE} query rows against the keys of ascending ranges
     * [keyFrom[i], keyTo[i]): {@code scores[r * stride + n] = q_r . k_j / scaleDivisor}, n counting the kept keys
     * in order; returns their count. Row r's query starts at {@code q[qOffset[r]]}; key j at
     * {@code k[kvBase + j * kvStride]}. With a head size that is a multiple of {@link #LANES} the dot products run
     * on vectors (chunks in order, then {@link #sum}), else in a plain loop; either way a row's scores do not
     * depend on its tile mates or on how the keys are split into ranges. Rows past {@code rows} are not written.
     */
    public static int tileScores(int rows, float[] q, int[] qOffset, float[] k, int kvBase, int kvStride,
                                 int headSize, float scaleDivisor, int[] keyFrom, int[] keyTo, int ranges,
                                 float[] scores, int stride) {
        if (rows < 1 || rows > SCORE_TILE) {
            throw new IllegalArgumentException("rows must be in 1.." + SCORE_TILE + ", got " + rows);
        }
        // Missing rows repeat row 0: the same loads, results never written.
        int q0 = qOffset[0];
        int q1 = rows > 1 ? qOffset[1] : q0;
        int q2 = rows > 2 ? qOffset[2] : q0;
        int q3 = rows > 3 ? qOffset[3] : q0;
        boolean vector = headSize % LANES == 0;
        int n = 0;
        for (int r = 0; r < ranges; r++) {
            for (int j = keyFrom[r]; j < keyTo[r]; j++, n++) {
                int ko = kvBase + j * kvStride;
                if (!vector) {
                    for (int t = 0; t < rows; t++) {
                        float dot = 0f;
                        for (int d = 0; d < headSize; d++) {
                            dot += q[qOffset[t] + d] * k[ko + d];
                        }
                        scores[t * stride + n] = dot / scaleDivisor;
                    }
                    continue;
                }
                FloatVector a0 = FloatVector.zero(FLOATS);
                FloatVector a1 = a0;
                FloatVector a2 = a0;
                FloatVector a3 = a0;
                for (int i = 0; i < headSize; i += LANES) {
                    FloatVector kc = FloatVector.fromArray(FLOATS, k, ko + i);
                    a0 = FloatVector.fromArray(FLOATS, q, q0 + i).fma(kc, a0);
                    a1 = FloatVector.fromArray(FLOATS, q, q1 + i).fma(kc, a1);
                    a2 = FloatVector.fromArray(FLOATS, q, q2 + i).fma(kc, a2);
                    a3 = FloatVector.fromArray(FLOATS, q, q3 + i).fma(kc, a3);
                }
                scores[n] = sum(a0) / scaleDivisor;
                if (rows > 1) {
                    scores[stride + n] = sum(a1) / scaleDivisor;
                }
                if (rows > 2) {
                    scores[2 * stride + n] = sum(a2) / scaleDivisor;
                }
                if (rows > 3) {
                    scores[3 * stride + n] = sum(a3) / scaleDivisor;
                }
            }
        }
        return n;
    }
}
