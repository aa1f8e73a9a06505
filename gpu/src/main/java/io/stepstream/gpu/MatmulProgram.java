package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClQueue;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;

/**
 * matmul.cl built for one weight encoding and one {@link MatmulTiles} in a given queue's context, and the
 * {@link Pass}es made from it: a pass is one matmul with its epilogue (fixed shape, weights and outputs) as two
 * kernel objects, the matvec {@code mv} for up to {@code mvTokens} tokens and the tiled {@code mm} above.
 * A pass keeps the argument values it last set and sets only what changed (token count, layer, a rebound
 * buffer). Not thread-safe: the queue's owner thread.
 */
public final class MatmulProgram {
    public static final int EPI_QKV = 0;
    public static final int EPI_RESIDUAL = 1;
    public static final int EPI_SWIGLU = 2;
    public static final int EPI_STORE = 3;

    // Argument indices of matmul.cl's MATMUL_ARGS.
    public static final int ARG_W0 = 0;
    public static final int ARG_S0 = 1;
    public static final int ARG_W1 = 2;
    public static final int ARG_S1 = 3;
    public static final int ARG_W2 = 4;
    public static final int ARG_S2 = 5;
    private static final int ARG_LSTRIDE0 = 6;
    private static final int ARG_SPLIT1 = 9;
    private static final int ARG_SPLIT2 = 10;
    private static final int ARG_INTERLEAVE = 11;
    private static final int ARG_ROWS = 12;
    private static final int ARG_COLS = 13;
    public static final int ARG_IN = 14;
    private static final int ARG_N = 15;
    private static final int ARG_LAYER = 16;
    private static final int ARG_OP = 17;
    public static final int ARG_OUT = 18;
    private static final int ARG_OUT_STRIDE = 19;
    public static final int ARG_KV = 20;
    public static final int ARG_ROPE_COS = 21;
    public static final int ARG_ROPE_SIN = 22;
    public static final int ARG_TOKEN_POS = 23;
    public static final int ARG_TOKEN_SEQ = 24;
    public static final int ARG_BLOCK_TABLE = 25;
    private static final int ARG_HEAD_SIZE = 26;
    private static final int ARG_MAX_BLOCKS = 27;
    private static final int ARG_BLOCK_FLOATS = 28;
    private static final int ARG_KV_DIM = 29;
    private static final int ARGS = 30;
    /** The buffer arguments, in the order {@link Pass#bind} takes them. */
    public static final int[] BUFFER_ARGS = {ARG_W0, ARG_S0, ARG_W1, ARG_S1, ARG_W2, ARG_S2, ARG_IN, ARG_OUT, ARG_KV,
            ARG_ROPE_COS, ARG_ROPE_SIN, ARG_TOKEN_POS, ARG_TOKEN_SEQ, ARG_BLOCK_TABLE};

    private final ClQueue queue;
    private final MatmulTiles tiles;
    private final int wtype;
    private final MemorySegment program;

    public MatmulProgram(ClQueue queue, int wtype, MatmulTiles tiles) {
        if (wtype < Llama2Kernel.WT_F32 || wtype > Llama2Kernel.WT_Q8_0) {
            throw new IllegalArgumentException("weight encoding " + wtype + " is not F32 (0), F16 (1) or Q8_0 (2)");
        }
        tiles.check(queue.device());
        this.queue = queue;
        this.tiles = tiles;
        this.wtype = wtype;
        this.program = queue.buildProgram(source(), tiles.defines(wtype));
    }

    /** The OpenCL C of the kernels (a resource next to this class). */
    public static String source() {
        try (InputStream in = MatmulProgram.class.getResourceAsStream("matmul.cl")) {
            if (in == null) {
                throw new IllegalStateException("resource io/stepstream/gpu/matmul.cl is missing from the classpath");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read matmul.cl", e);
        }
    }

    public MatmulTiles tiles() {
        return tiles;
    }

    public int wtype() {
        return wtype;
    }

    /**
     * The shape of one matmul pass. Virtual rows map to up to three weight segments ({@code split1}, {@code split2}
     * are the first rows of segments 1 and 2; with {@code interleave} even rows are segment 0 and odd rows
     * segment 1, row r being row r/2 of its segment); layer l of segment s starts {@code lstride[s]} * l elements
     * in. {@code outStride}: floats per token of the output. The rest feeds the QKV epilogue (0 elsewhere).
     */
    public record Shape(int epilogue, int rows, int cols, int split1, int split2, boolean interleave, int lstride0,
                        int lstride1, int lstride2, int outStride, int headSize, int maxBlocksPerSeq, int blockFloats,
                        int kvDim) {
        public Shape {
            if (rows < 1 || cols < 4 || cols % 4 != 0) {
                throw new IllegalArgumentException("hand matmul needs rows >= 1 and columns a multiple of 4, got "
                        + rows + " x " + cols);
            }
        }

        /** One weight segment, no epilogue inputs beyond the output. */
        public static Shape plain(int epilogue, int rows, int cols, int lstride, int outStride) {
            return new Shape(epilogue, rows, cols, rows, rows, false, lstride, lstride, lstride, outStride, 0, 0, 0, 0);
        }
    }

    public Pass pass(Shape shape) {
        return new Pass(shape);
    }

    /** One matmul pass's two kernel objects, with the argument values they hold. */
    public final class Pass {
        private final Shape shape;
        private final MemorySegment mv;
        private final MemorySegment mm;
        private final long[][] boundBuffers = new long[2][ARGS];
        private final int[] lastN = {-1, -1};
        private final int[] lastLayer = {-1, -1};

        private Pass(Shape s) {
            this.shape = s;
            this.mv = queue.createKernel(program, "mv");
            this.mm = queue.createKernel(program, "mm");
            for (MemorySegment k : new MemorySegment[]{mv, mm}) {
                queue.setArgInt(k, ARG_LSTRIDE0, s.lstride0());
                queue.setArgInt(k, ARG_LSTRIDE0 + 1, s.lstride1());
                queue.setArgInt(k, ARG_LSTRIDE0 + 2, s.lstride2());
                queue.setArgInt(k, ARG_SPLIT1, s.split1());
                queue.setArgInt(k, ARG_SPLIT2, s.split2());
                queue.setArgInt(k, ARG_INTERLEAVE, s.interleave() ? 1 : 0);
                queue.setArgInt(k, ARG_ROWS, s.rows());
                queue.setArgInt(k, ARG_COLS, s.cols());
                queue.setArgInt(k, ARG_OP, s.epilogue());
                queue.setArgInt(k, ARG_OUT_STRIDE, s.outStride());
                queue.setArgInt(k, ARG_HEAD_SIZE, s.headSize());
                queue.setArgInt(k, ARG_MAX_BLOCKS, s.maxBlocksPerSeq());
                queue.setArgInt(k, ARG_BLOCK_FLOATS, s.blockFloats());
                queue.setArgInt(k, ARG_KV_DIM, s.kvDim());
            }
        }

        public Shape shape() {
            return shape;
        }

        /** Binds a buffer argument (one of {@link #BUFFER_ARGS}) of both kernels, unless it is bound already. */
        public void bind(int arg, MemorySegment buffer) {
            for (int i = 0; i < 2; i++) {
                if (boundBuffers[i][arg] != buffer.address()) {
                    queue.setArgBuffer(i == 0 ? mv : mm, arg, buffer);
                    boundBuffers[i][arg] = buffer.address();
                }
            }
        }

        /** Whether {@code n} tokens go to the matvec kernel. */
        public boolean usesMatvec(int n) {
            return n <= tiles.mvTokens();
        }

        /**
         * Enqueues the pass for {@code n} tokens (input rows 0..n-1) of {@code layer}: the matvec kernel for up to
         * mvTokens tokens, else the tiled one. {@code event}: NULL or where to write the command's event.
         */
        public void enqueue(int n, int layer, MemorySegment event) {
            if (n < 1) {
                throw new IllegalArgumentException("matmul of " + n + " tokens");
            }
            int which = usesMatvec(n) ? 0 : 1;
            MemorySegment k = which == 0 ? mv : mm;
            if (lastN[which] != n) {
                queue.setArgInt(k, ARG_N, n);
                lastN[which] = n;
            }
            if (lastLayer[which] != layer) {
                queue.setArgInt(k, ARG_LAYER, layer);
                lastLayer[which] = layer;
            }
            long groups;
            long local;
            if (which == 0) {
                groups = (shape.rows() + tiles.mvRows() - 1) / tiles.mvRows();
                local = tiles.mvWg();
            } else {
                groups = (long) ((shape.rows() + tiles.tm() - 1) / tiles.tm()) * ((n + tiles.tn() - 1) / tiles.tn());
                local = tiles.mmWg();
            }
            queue.enqueue(k, groups * local, local, event);
        }
    }
}
