package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.ComputePool;
import io.stepstream.engine.cpu.VectorKernels;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A [rows x cols] weight matrix kept in its file encoding (one {@link TensorType}) in a memory segment: heap
 * or mapped, rows contiguous and row-major, each row {@code cols} elements (a whole number of blocks for the
 * quantized types). Quantized weights stay quantized: the matmul decodes each block into float vector lanes
 * as it goes, and never builds a dequantized copy.
 *
 * <p>Batch invariance: every output element is computed by one fixed sequence of operations per encoding:
 * fused multiply-adds over the vector chunks of its row in column order (F32, Q8_0: into one accumulator, in
 * every tile shape; Q6_K: into one, in its own chunk order; F16, BF16, Q4_0: into two, even and odd chunks,
 * then their sum; Q4_K: into two, low-nibble and high-nibble sub-blocks, then their sum), a fixed-order lane sum
 * ({@code reduceLanes} is avoided: its order differs between the interpreter and compiled code), then a scalar
 * tail (plain float types whose rows are not a whole number of vectors). How many tokens share the call and
 * how rows are split over threads change which results are computed together (four rows by four tokens, four
 * rows by one, one row by four, one by one), never how one result is computed; so a token's output is bitwise
 * the same alone or in any batch. Q8_0 from {@link #DECODE_ONCE_MIN_TOKENS} tokens (rows up to
 * {@link #DECODE_ONCE_MAX_COLS} columns) decodes each four-row tile once into float scratch and runs float tiles
 * over it ({@link DecodedTiles}): the same operations per element, so the same bits.
 *
 * <p>Integer dot ({@link #hasIntegerDot}: Q8_0 and Q4_0 with 16 float lanes): the activations quantized to Q8_0
 * per token row ({@link QuantizedRows}), exact integer products per block scaled into float lanes, one row at a time
 * (tokens four at a time or one); batch invariant in the same way.
 *
 * <p>To add an encoding: a subclass implementing the one-row tile shapes (and, for speed, the
 * four-row ones with {@link #hasRowTiles}) and the row decoder with
 * its own chunk decode written out in the loops, plus a case in {@link #of}. Keep the compiled tiles lean:
 * C2 stops inlining once a method passes its node budget, and a vector that crosses a call the JIT did not
 * inline is boxed on the heap, which costs more than the kernel (check the tier-4 lines of
 * {@code -XX:+PrintInlining} and the allocation rate; helpers under 35 bytecodes also inline at tier 3).
 */
public abstract sealed class WeightMatrix permits F32Matrix, F16Matrix, Bf16Matrix, Q8_0Matrix, Q4_0Matrix,
        Q4_KMatrix, Q6_KMatrix {
    /** Multiply-adds below which a matmul stays on the caller's thread (as the model's default threshold). */
    static final long PARALLEL_MIN_MACS = 1L << 18;
    /** Tokens per tile. */
    static final int TOKEN_TILE = 4;
    /** Rows per tile (encodings with {@link #hasRowTiles}); row splits over threads are rounded to it. */
    public static final int ROW_TILE = 4;

    private static final ThreadLocal<RowsTask> TASKS = ThreadLocal.withInitial(RowsTask::new);
    /** Per thread: where tiles store their accumulators for the fixed-order lane sums. */
    private static final ThreadLocal<float[]> LANE_SCRATCH =
            ThreadLocal.withInitial(() -> new float[ROW_TILE * TOKEN_TILE * Lanes.L]);
    /**
     * Tokens from which encodings with {@link #decodesExactly} decode each four-row tile once into float scratch
     * and run float tiles over it for every token (below: the encoding's own tiles, which decode a weight chunk
     * once per four tokens). Measured on 768-column Q8_0 rows (docs/benchmarks.md, CPU session 4): level at 8
     * tokens, 10-25% less CPU at 16 and 32. System property {@code stepstream.cpu.decodeOnceMinTokens}.
     */
    public static final int DECODE_ONCE_MIN_TOKENS =
            Integer.getInteger("stepstream.cpu.decodeOnceMinTokens", 16);
    /**
     * Widest rows for the decode-once path: a decoded tile (4 rows of floats, 16 KiB here) and a token group's
     * inputs (as large again) must share the L1 cache. Wider rows (2048 columns: 32 KiB a tile) ran 5-10%
     * slower decoded than the encoding's own tiles, whose Q8_0 rows are a quarter the size.
     */
    static final int DECODE_ONCE_MAX_COLS = 1024;
    /** Per thread (made once, on its first decode-once call): the decoded rows of one four-row tile. */
    private static final ThreadLocal<float[]> DECODE_SCRATCH =
            ThreadLocal.withInitial(() -> new float[ROW_TILE * DECODE_ONCE_MAX_COLS]);

    final TensorType type;
    final MemorySegment data;
    final int rows;
    final int cols;
    final long rowBytes;
    /** See {@link #DECODE_ONCE_MIN_TOKENS}; set only before the matrix is published ({@link #withDecodeOnceFrom}). */
    private int decodeOnceMinTokens = DECODE_ONCE_MIN_TOKENS;

    WeightMatrix(TensorType type, MemorySegment data, int rows, int cols) {
        this.type = type;
        this.data = data;
        this.rows = rows;
        this.cols = cols;
        this.rowBytes = type.bytesFor(cols);
    }

    /**
     * A matrix over {@code data}, which must hold exactly {@code rows} rows of {@code cols} elements of
     * {@code type} (little-endian, as GGUF stores them). With a compute pool, the segment must be readable
     * from the pool's threads (heap, global, auto or shared arena; not confined).
     */
    public static WeightMatrix of(TensorType type, MemorySegment data, int rows, int cols) {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(data, "data");
        if (rows < 1) {
            throw new IllegalArgumentException("rows must be >= 1, got " + rows);
        }
        if (cols < 1) {
            throw new IllegalArgumentException("cols must be >= 1, got " + cols);
        }
        if (cols % type.blockSize() != 0) {
            throw new IllegalArgumentException("cols (" + cols + ") of a " + type + " matrix must be a multiple of its "
                    + type.blockSize() + "-element block");
        }
        long expected = Math.multiplyExact(type.bytesFor(cols), (long) rows);
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("data holds " + data.byteSize() + " bytes but a " + rows + " x " + cols
                    + " " + type + " matrix takes " + expected + " bytes");
        }
        return switch (type) {
            case F32 -> new F32Matrix(data, rows, cols);
            case F16 -> new F16Matrix(data, rows, cols);
            case BF16 -> new Bf16Matrix(data, rows, cols);
            case Q8_0 -> new Q8_0Matrix(data, rows, cols);
            case Q4_0 -> new Q4_0Matrix(data, rows, cols);
            case Q4_K -> new Q4_KMatrix(data, rows, cols);
            case Q6_K -> new Q6_KMatrix(data, rows, cols);
        };
    }

    /** A float32 matrix over {@code data} (row-major, used in place: later writes to the array show through). */
    public static WeightMatrix f32(float[] data, int rows, int cols) {
        Objects.requireNonNull(data, "data");
        if (rows < 1 || cols < 1) {
            throw new IllegalArgumentException("rows and cols must be >= 1, got " + rows + " x " + cols);
        }
        if (data.length != (long) rows * cols) {
            throw new IllegalArgumentException("data has " + data.length + " floats but a " + rows + " x " + cols
                    + " matrix needs " + (long) rows * cols);
        }
        return of(TensorType.F32, MemorySegment.ofArray(data), rows, cols);
    }

    /**
     * A matrix over the same data whose matmuls take the decode-once path from {@code minTokens} tokens
     * ({@link Integer#MAX_VALUE}: never; the encoding's own tiles always). Outputs are bitwise the same either
     * way; this is for measuring the two paths side by side and for tests that compare them.
     */
    public final WeightMatrix withDecodeOnceFrom(int minTokens) {
        if (minTokens < 1) {
            throw new IllegalArgumentException("minTokens must be >= 1, got " + minTokens);
        }
        WeightMatrix m = of(type, data, rows, cols);
        m.decodeOnceMinTokens = minTokens;
        return m;
    }

    /** Whether matmuls of {@code tokens} tokens decode each weight row once into float scratch. */
    public final boolean decodesOnceAt(int tokens) {
        return tokens >= decodeOnceMinTokens && decodesExactly() && cols <= DECODE_ONCE_MAX_COLS
                && cols % Lanes.L == 0;
    }

    public final TensorType type() {
        return type;
    }

    public final int rows() {
        return rows;
    }

    public final int cols() {
        return cols;
    }

    /** The encoded weights (rows x bytes per row). */
    public final MemorySegment data() {
        return data;
    }

    /** Bytes of one encoded row. */
    public final long rowBytes() {
        return rowBytes;
    }

    /**
     * {@code out[outOffset + t*rows + r] = sum_c W[r][c] * x[xOffset + t*cols + c]} for every token
     * {@code t < tokens}: one pass over the weights for the whole batch, output rows split over {@code pool}
     * (null: all on the caller's thread). Allocates nothing.
     */
    public final void matmul(float[] x, int xOffset, int tokens, float[] out, int outOffset, ComputePool pool) {
        checkBatch(x, xOffset, tokens, out, outOffset);
        if (tokens == 0) {
            return;
        }
        long macs = (long) rows * cols * tokens;
        if (pool == null || pool.threads() == 1 || macs < PARALLEL_MIN_MACS) {
            tiles(x, xOffset, tokens, out, outOffset, 0, rows);
            return;
        }
        int grain = rowGrain(rows, pool.threads());
        RowsTask task = TASKS.get();
        task.set(this, x, xOffset, tokens, out, outOffset);
        try {
            pool.run(task, rows, grain, true);
        } finally {
            task.set(null, null, 0, 0, null, 0);
        }
    }

    /** The rows [r0, r1) of {@link #matmul}, on the caller's thread (for callers that split work themselves). */
    public final void matmulRows(float[] x, int xOffset, int tokens, float[] out, int outOffset, int r0, int r1) {
        checkBatch(x, xOffset, tokens, out, outOffset);
        if (r0 < 0 || r1 > rows || r0 > r1) {
            throw new IndexOutOfBoundsException("row range [" + r0 + ", " + r1 + ") is not within [0, " + rows + ")");
        }
        tiles(x, xOffset, tokens, out, outOffset, r0, r1);
    }

    /**
     * Whether {@link #matmul(QuantizedRows, float[], int, ComputePool)} works for this encoding (Q8_0 and Q4_0
     * on machines with at least 8 float lanes): integer dot products of the weight bytes with the activations
     * quantized to Q8_0, as llama.cpp computes these matmuls.
     */
    public boolean hasIntegerDot() {
        return false;
    }

    /**
     * {@code out[outOffset + t*rows + r] = sum over blocks of d_w * d_x * (exact int dot of the block)} for every
     * token row t of {@code x} (quantized from float activations with {@link QuantizedRows#quantize}): the
     * integer-dot form of {@link #matmul(float[], int, int, float[], int, ComputePool)}, one pass over the
     * weights for the whole batch, rows split over {@code pool} (null: the caller's thread). Allocates nothing.
     * Each token's result depends only on its own row of {@code x}, never on the batch or the row split.
     */
    public final void matmul(QuantizedRows x, float[] out, int outOffset, ComputePool pool) {
        checkQuantized(x, out, outOffset);
        int tokens = x.tokens();
        if (tokens == 0) {
            return;
        }
        long macs = (long) rows * cols * tokens;
        if (pool == null || pool.threads() == 1 || macs < PARALLEL_MIN_MACS) {
            intTiles(x, out, outOffset, 0, rows);
            return;
        }
        RowsTask task = TASKS.get();
        task.set(this, x, out, outOffset);
        try {
            pool.run(task, rows, rowGrain(rows, pool.threads()), true);
        } finally {
            task.set(null, null, 0, 0, null, 0);
        }
    }

    /** The rows [r0, r1) of {@link #matmul(QuantizedRows, float[], int, ComputePool)}, on the caller's thread. */
    public final void matmulRows(QuantizedRows x, float[] out, int outOffset, int r0, int r1) {
        checkQuantized(x, out, outOffset);
        if (r0 < 0 || r1 > rows || r0 > r1) {
            throw new IndexOutOfBoundsException("row range [" + r0 + ", " + r1 + ") is not within [0, " + rows + ")");
        }
        intTiles(x, out, outOffset, r0, r1);
    }

    private void checkQuantized(QuantizedRows x, float[] out, int outOffset) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(out, "out");
        if (!hasIntegerDot()) {
            throw new UnsupportedOperationException(type + " matrices have no integer-dot matmul on this machine"
                    + " (Q8_0 and Q4_0 with at least 8 float lanes do)");
        }
        if (x.cols() != cols) {
            throw new IllegalArgumentException("quantized activations have " + x.cols() + " columns, " + this
                    + " needs " + cols);
        }
        long outNeed = (long) x.tokens() * rows;
        if (outOffset < 0 || outOffset + outNeed > out.length) {
            throw new IndexOutOfBoundsException("out: " + x.tokens() + " token(s) of " + rows + " floats from offset "
                    + outOffset + " do not fit in an array of " + out.length);
        }
    }

    /**
     * The integer-dot tiles: one row at a time (its blocks stay in L1 while the tokens pass over them), tokens
     * four at a time, then one at a time. Only one-row kernels: four-row integer kernels went past C2's node
     * budget (each weight row read through a memory segment costs many nodes), and then their vectors were
     * boxed, five times slower. Both shapes compute an output element with the same arithmetic.
     */
    private void intTiles(QuantizedRows x, float[] out, int outOffset, int r0, int r1) {
        int tokens = x.tokens();
        int tokenQuads = tokens - tokens % TOKEN_TILE;
        byte[] xq = x.values();
        float[] xd = x.scales();
        int oStep = rows;
        float[] lanes = LANE_SCRATCH.get();
        for (int r = r0; r < r1; r++) {
            int t = 0;
            for (; t < tokenQuads; t += TOKEN_TILE) {
                intRowTokens4(r, xq, xd, t, out, outOffset + t * oStep + r, oStep, lanes);
            }
            for (; t < tokens; t++) {
                intRowToken(r, xq, xd, t, out, outOffset + t * oStep + r, lanes);
            }
        }
    }

    /**
     * Integer dot, row r times tokens t..t+3 of the quantized activations (values {@code xq}, scales
     * {@code xd}); token t+k's result to {@code out[o0 + k*oStep]}.
     */
    void intRowTokens4(int r, byte[] xq, float[] xd, int t, float[] out, int o0, int oStep, float[] lanes) {
        for (int k = 0; k < TOKEN_TILE; k++) {
            intRowToken(r, xq, xd, t + k, out, o0 + k * oStep, lanes);
        }
    }

    /** Integer dot, row r times token t, result to out[o]. */
    void intRowToken(int r, byte[] xq, float[] xd, int t, float[] out, int o, float[] lanes) {
        throw new UnsupportedOperationException(type + " has no integer-dot kernels");
    }

    /** Row {@code r} decoded to floats into {@code dst[dstOffset ..+ cols)} (for embedding lookups). */
    public final void decodeRow(int r, float[] dst, int dstOffset) {
        Objects.checkIndex(r, rows);
        Objects.checkFromIndexSize(dstOffset, cols, dst.length);
        decodeRowUnchecked(r, dst, dstOffset);
    }

    abstract void decodeRowUnchecked(int r, float[] dst, int dstOffset);

    /**
     * Rows per chunk when {@code rows} are split over {@code threads}: about four chunks per thread, so uneven
     * chunks still balance, rounded up to whole row tiles so that no chunk falls back to one-row kernels.
     */
    public static int rowGrain(int rows, int threads) {
        int grain = Math.max(1, rows / (threads * 4));
        return (grain + ROW_TILE - 1) / ROW_TILE * ROW_TILE;
    }

    /**
     * Encodings with {@link #rows4Tokens4} and {@link #rows4Token} kernels go four rows at a time: each chunk of
     * a token's activations is loaded once for four rows and each decoded weight chunk is used for four
     * tokens, so a tile does 16 multiply-adds per 8 vector loads (one row times four tokens: 4 per 5). Within
     * a tile, tokens four at a time, then one at a time; rows left over go one at a time. The tile's rows
     * (4 x cols) stay in L1/L2 while every token group passes over them, so weights are streamed from memory
     * once per call whatever the batch.
     *
     * <p>A tile's four rows are not neighbours: [r0, r1) is cut into four equal runs of whole-tile length and
     * tile i takes row i of each run. So the tiles read four long sequential streams, one per run, instead of
     * four streams 3 KB apart that stop after one short row each: on short rows (768 columns) the hardware
     * prefetcher keeps up with the former, not the latter, and batch-1 matmuls from memory ran ~1.5x faster
     * per thread (docs/benchmarks.md, CPU session 3). Which rows share a tile never changes how a row is
     * computed.
     */
    private void tiles(float[] x, int xOffset, int tokens, float[] out, int outOffset, int r0, int r1) {
        if (decodesOnceAt(tokens)) {
            decodedTiles(x, xOffset, tokens, out, outOffset, r0, r1);
            return;
        }
        int tokenQuads = tokens - tokens % TOKEN_TILE;
        int xStep = cols;
        int oStep = rows;
        float[] lanes = LANE_SCRATCH.get();
        int r = r0;
        if (hasRowTiles()) {
            int run = (r1 - r0) / ROW_TILE;
            for (int i = 0; i < run; i++) {
                int rr = r0 + i;
                int t = 0;
                for (; t < tokenQuads; t += TOKEN_TILE) {
                    rows4Tokens4(rr, run, x, xOffset + t * xStep, xStep, out, outOffset + t * oStep + rr, oStep,
                            lanes);
                }
                for (; t < tokens; t++) {
                    rows4Token(rr, run, x, xOffset + t * xStep, out, outOffset + t * oStep + rr, lanes);
                }
            }
            r = r0 + run * ROW_TILE;
        }
        for (; r < r1; r++) {
            int t = 0;
            for (; t < tokenQuads; t += TOKEN_TILE) {
                int xa = xOffset + t * xStep;
                int oa = outOffset + t * oStep + r;
                rowTimes4Tokens(r, x, xa, xa + xStep, xa + 2 * xStep, xa + 3 * xStep,
                        out, oa, oa + oStep, oa + 2 * oStep, oa + 3 * oStep, lanes);
            }
            for (; t < tokens; t++) {
                rowTimesToken(r, x, xOffset + t * xStep, out, outOffset + t * oStep + r, lanes);
            }
        }
    }

    /**
     * The decode-once path: the four-row tiles of {@link #tiles} (same rows: four equal runs of [r0, r1), tile i
     * takes row i of each), each tile's rows decoded to floats once into per-thread scratch (one decode per
     * weight for the whole call, where the encoding's own tiles decode each chunk once per four tokens), then
     * {@link DecodedTiles} over them for every token: four at a time, then one at a time. Rows left over go one
     * at a time the same way. The arithmetic per output element is the encoding's own (see
     * {@link #decodesExactly}). Decoding two tiles at a time (each token group's inputs read once per eight
     * rows) measured level with one, so the scratch stays one tile: 12 KiB for 768 columns.
     */
    private void decodedTiles(float[] x, int xOffset, int tokens, float[] out, int outOffset, int r0, int r1) {
        int tokenQuads = tokens - tokens % TOKEN_TILE;
        int xStep = cols;
        int oStep = rows;
        float[] lanes = LANE_SCRATCH.get();
        float[] w = DECODE_SCRATCH.get();
        int run = (r1 - r0) / ROW_TILE;
        for (int i = 0; i < run; i++) {
            int rr = r0 + i;
            for (int k = 0; k < ROW_TILE; k++) {
                decodeRowUnchecked(rr + k * run, w, k * cols);
            }
            int t = 0;
            for (; t < tokenQuads; t += TOKEN_TILE) {
                DecodedTiles.rows4Tokens4(w, 0, cols, x, xOffset + t * xStep, xStep, out, outOffset + t * oStep + rr,
                        oStep, run, lanes);
            }
            for (; t < tokens; t++) {
                DecodedTiles.rows4Token(w, 0, cols, x, xOffset + t * xStep, out, outOffset + t * oStep + rr, run,
                        lanes);
            }
        }
        for (int r = r0 + run * ROW_TILE; r < r1; r++) {
            decodeRowUnchecked(r, w, 0);
            int t = 0;
            for (; t < tokenQuads; t += TOKEN_TILE) {
                DecodedTiles.rowTimes4Tokens(w, 0, cols, x, xOffset + t * xStep, xStep, out,
                        outOffset + t * oStep + r, oStep, lanes);
            }
            for (; t < tokens; t++) {
                DecodedTiles.rowTimesToken(w, 0, cols, x, xOffset + t * xStep, out, outOffset + t * oStep + r,
                        lanes);
            }
        }
    }

    /**
     * Whether this encoding's kernels compute every output element exactly as {@link DecodedTiles} does over its
     * rows decoded by {@link #decodeRowUnchecked}: an exact decode of each chunk, one accumulator, {@code
     * w.fma(x, acc)} per chunk in column order, the fixed-order lane sum. Then decoding once and running float
     * tiles changes no output bit.
     */
    boolean decodesExactly() {
        return false;
    }

    /**
     * Whether this encoding has four-row kernels. They must compute every output element with exactly the
     * arithmetic of its one-row kernels (that is what keeps a token's output independent of the batch).
     */
    boolean hasRowTiles() {
        return false;
    }

    /**
     * Rows r, r+s, r+2s, r+3s ({@code s = rowStep}) times four tokens: token k's input at {@code x0 + k*xStep},
     * output of row r+i*s for token k to {@code out[o0 + k*oStep + i*s]}. {@code lanes} holds at least 16
     * vectors.
     */
    void rows4Tokens4(int r, int rowStep, float[] x, int x0, int xStep, float[] out, int o0, int oStep,
                      float[] lanes) {
        throw new UnsupportedOperationException(type + " has no four-row kernels");
    }

    /** Rows r + i*rowStep (i < 4) times one token (input at xAt), results to out[o + i*rowStep]. */
    void rows4Token(int r, int rowStep, float[] x, int xAt, float[] out, int o, float[] lanes) {
        throw new UnsupportedOperationException(type + " has no four-row kernels");
    }

    /**
     * One row times four tokens (inputs at x0..x3), results to out[o0..o3]. Per token the same arithmetic as
     * {@link #rowTimesToken} (the encoding's accumulators, see the class comment), stored to {@code lanes} and
     * summed there by {@link VectorKernels#sumLanes} (scalar code: inlining vector reductions too would push the
     * compiled tile over the JIT's node budget, and then vectors get boxed).
     */
    abstract void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                                  float[] out, int o0, int o1, int o2, int o3, float[] lanes);

    /** One row times one token (input at xAt), result to out[o]. */
    abstract void rowTimesToken(int r, float[] x, int xAt, float[] out, int o, float[] lanes);

    final long rowBase(int r) {
        return r * rowBytes;
    }

    private void checkBatch(float[] x, int xOffset, int tokens, float[] out, int outOffset) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(out, "out");
        if (tokens < 0) {
            throw new IllegalArgumentException("tokens must be >= 0, got " + tokens);
        }
        long xNeed = (long) tokens * cols;
        if (xOffset < 0 || xOffset + xNeed > x.length) {
            throw new IndexOutOfBoundsException("x: " + tokens + " token(s) of " + cols + " floats from offset "
                    + xOffset + " do not fit in an array of " + x.length);
        }
        long outNeed = (long) tokens * rows;
        if (outOffset < 0 || outOffset + outNeed > out.length) {
            throw new IndexOutOfBoundsException("out: " + tokens + " token(s) of " + rows + " floats from offset "
                    + outOffset + " do not fit in an array of " + out.length);
        }
    }

    @Override
    public String toString() {
        return type + "[" + rows + " x " + cols + "]";
    }

    /** The pool task of one matmul; one per calling thread, reused, so a call allocates nothing. */
    private static final class RowsTask implements ComputePool.RangeTask {
        private WeightMatrix w;
        private float[] x;
        private int xOffset;
        private int tokens;
        private float[] out;
        private int outOffset;
        private QuantizedRows quantized;

        void set(WeightMatrix w, QuantizedRows quantized, float[] out, int outOffset) {
            set(w, null, 0, 0, out, outOffset);
            this.quantized = quantized;
        }

        void set(WeightMatrix w, float[] x, int xOffset, int tokens, float[] out, int outOffset) {
            this.quantized = null;
            this.w = w;
            this.x = x;
            this.xOffset = xOffset;
            this.tokens = tokens;
            this.out = out;
            this.outOffset = outOffset;
        }

        @Override
        public void run(int from, int to, int worker) {
            if (quantized != null) {
                w.intTiles(quantized, out, outOffset, from, to);
                return;
            }
            w.tiles(x, xOffset, tokens, out, outOffset, from, to);
        }
    }
}
