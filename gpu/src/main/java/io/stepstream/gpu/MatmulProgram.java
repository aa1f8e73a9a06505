package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * matmul.cl built for one weight encoding and one {@link MatmulTiles} in a given queue's context, and the
 * {@link Pass}es made from it: a pass is one matmul with its epilogue (fixed shape, weights and outputs) as kernel
 * objects: the matvec for up to {@code mvTokens} tokens, one kernel per token tier ({@code mv_t1, mv_t2, mv_t4,
 * mv_t8} below mvTokens and {@code mv_t<mvTokens>}; n tokens run on the smallest tier >= n, bitwise the same per
 * token in any tier), and the tiled {@code mm} above.
 * A pass keeps the argument values it last set and sets only what changed (token count, layer, a rebound
 * buffer). For F16 and Q8_0 weights with {@link TensorCores} on, and F32 weights with its {@code f32} on too (3xTF32),
 * the build also has the tensor-core kernels (mma.cl, then matmul.cl, then mmt.cl once per tile tier as
 * {@code mmt0, mmt1, ...}), which take the tiled passes of at least {@code minTokens} tokens (Q8_0: of passes whose
 * columns and layer strides are multiples of 32; F16: of 8; F32: of 4).
 * Not thread-safe: the queue's owner thread.
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
    private static final int ARG_KSPLIT = 30;
    private static final int ARG_PARTIAL = 31;
    private static final int ARG_COUNTERS = 32;
    /** The first model layer of the bound weight chunk (0: the weights hold every layer). */
    private static final int ARG_LAYER0 = 33;
    private static final int ARGS = 34;
    // The matvec kernels' extra arguments (mv.cl's MV_NORM_ARGS, after MATMUL_ARGS): the fused RMSNorm.
    public static final int ARG_NORM_X = 34;
    public static final int ARG_NORM_W = 35;
    public static final int ARG_NORM_ROW = 36;
    private static final int ARG_EPS = 37;
    private static final int ARG_NORM_MODE = 38;
    private static final int ARG_NORM_STRIDE = 39;
    private static final int ARG_NORM_STAGE = 40;
    private static final int MV_ARGS = 41;
    /**
     * System property: the one-token fused-norm matvec stages g * x in local memory once per group ({@code true},
     * the default) instead of loading g and x in every lane of every row ({@code false}). Read when a program is
     * built.
     */
    public static final String STAGE_NORM_PROPERTY = "stepstream.opencl.stageNorm";
    /** normMode values: no norm (read the input rows), norm of row t for token t, norm of row normRow[t]. */
    public static final int NORM_OFF = 0;
    public static final int NORM_ROWS = 1;
    public static final int NORM_ROW_INDEX = 2;
    /** Work items per group of the split-K reduction. */
    private static final int REDUCE_LOCAL = 64;
    /** The weight arguments (data and Q8_0 scales of the three segments), in the order {@link Pass#weights} takes them. */
    public static final int[] WEIGHT_ARGS = {ARG_W0, ARG_S0, ARG_W1, ARG_S1, ARG_W2, ARG_S2};
    /** The buffer arguments, in the order {@link Pass#bind} takes them. */
    public static final int[] BUFFER_ARGS = {ARG_W0, ARG_S0, ARG_W1, ARG_S1, ARG_W2, ARG_S2, ARG_IN, ARG_OUT, ARG_KV,
            ARG_ROPE_COS, ARG_ROPE_SIN, ARG_TOKEN_POS, ARG_TOKEN_SEQ, ARG_BLOCK_TABLE};

    private final ClQueue queue;
    private final MatmulTiles tiles;
    private final int wtype;
    private final MemorySegment program;
    private final TensorCores tensorCores;
    /** How mmt was built: null (not in the program), "emulated", or "mma.sync" (inline PTX). */
    private final String tensorCoreBuild;
    private static final System.Logger LOG = System.getLogger(MatmulProgram.class.getName());
    /** A failed PTX build is logged once per JVM, not once per program. */
    private static final AtomicBoolean PTX_FAILURE_LOGGED = new AtomicBoolean();
    /** Split-K partial sums, shared by every pass (the in-order queue serialises them); grown on demand. */
    private MemorySegment partial;
    private long partialFloats;
    /** mmt's split-K tile counters (zero between passes: the last group of a tile resets its own); grown on demand. */
    private MemorySegment counters;
    private long counterInts;
    /** What the matvecs' norm arguments point at until a hook binds the real buffers (never released). */
    private final MemorySegment noNorm;
    /** Whether the one-token fused-norm matvec stages g * x in local memory ({@value #STAGE_NORM_PROPERTY}). */
    private final boolean stageNorm;

    public MatmulProgram(ClQueue queue, int wtype, MatmulTiles tiles) {
        this(queue, wtype, tiles, TensorCores.fromSystemProperties());
    }

    /** As above, with the tensor-core choice given (for F32 weights only with its {@code f32} on). */
    public MatmulProgram(ClQueue queue, int wtype, MatmulTiles tiles, TensorCores requested) {
        this(queue, wtype, tiles, requested, KvCacheType.F32);
    }

    /** As above, for a KV pool of {@code kvCache} elements (the QKV epilogue's stores). */
    public MatmulProgram(ClQueue queue, int wtype, MatmulTiles tiles, TensorCores requested, KvCacheType kvCache) {
        if (wtype < Llama2Kernel.WT_F32 || wtype > Llama2Kernel.WT_Q8_0) {
            throw new IllegalArgumentException("weight encoding " + wtype + " is not F32 (0), F16 (1) or Q8_0 (2)");
        }
        tiles.check(queue.device());
        this.queue = queue;
        this.tiles = tiles;
        this.wtype = wtype;
        this.stageNorm = !"false".equals(System.getProperty(STAGE_NORM_PROPERTY, "true").strip());
        String defines = tiles.defines(wtype) + (stageNorm ? " -DMV_STAGE=1" : "") + kvCache.define();
        TensorCores tensorCores = requested.forWeights(wtype); // F32's own default tiers
        TensorCores effective = tensorCores;
        MemorySegment built = null;
        String kind = null;
        if (tensorCores.appliesTo(wtype)) {
            boolean emulated = tensorCores.mode() == TensorCores.Mode.EMULATE;
            long local = tensorCores.localBytes(emulated, wtype);
            if (local > queue.device().localMemBytes()) {
                throw new IllegalArgumentException(TensorCores.TILES_PROPERTY + ": " + local
                        + " bytes of local memory for mmt" + (wtype == Llama2Kernel.WT_F32 ? " of F32 weights" : "")
                        + "; " + queue.device().name().strip() + " has " + queue.device().localMemBytes());
            }
            String mmt = resource("mmt.cl");
            if (tensorCores.mode() == TensorCores.Mode.EMULATE) {
                built = queue.buildProgram(mmaSource() + "\n" + source() + tensorCores.kernelSource(mmt, wtype),
                        defines + tensorCores.defines(0, wtype));
                kind = "emulated";
            } else if (ClRuntime.nvComputeCapability(queue.device()) >= TensorCores.MIN_COMPUTE_CAPABILITY) {
                // Which spelling of the inline-asm keyword the driver's compiler takes is not documented: try both.
                // The split-K sums in the last group need a device-wide fence (PTX membar.gl, MMA_FENCE); should
                // that not build, the tiers fall back to mm_reduce (fr=0), which needs none.
                StringBuilder logs = new StringBuilder();
                for (int attempt = 0; attempt < 4 && built == null; attempt++) {
                    int spelling = 1 + attempt % 2;
                    TensorCores tc = attempt < 2 ? tensorCores : tensorCores.unfused();
                    try {
                        built = queue.buildProgram(mmaSource() + "\n" + source() + tc.kernelSource(mmt, wtype),
                                defines + tc.defines(spelling, wtype) + (attempt < 2 ? " -DMMA_FENCE=1" : ""));
                        kind = attempt < 2 ? "mma.sync" : "mma.sync (no fence: mm_reduce)";
                        effective = tc;
                    } catch (OpenClException e) {
                        logs.append(e.getMessage()).append('\n');
                    }
                }
                if (built == null && PTX_FAILURE_LOGGED.compareAndSet(false, true)) {
                    LOG.log(System.Logger.Level.WARNING, "tensor cores off: the inline-PTX matmul does not build on "
                            + queue.device().name().strip() + "; the matmuls stay on mm. " + logs);
                }
            }
        }
        this.program = built != null ? built : queue.buildProgram(source(), defines);
        this.tensorCoreBuild = kind;
        this.tensorCores = effective;
        this.partial = queue.createBuffer(Float.BYTES);
        this.partialFloats = 1;
        this.counters = zeroInts(1);
        this.counterInts = 1;
        this.noNorm = zeroInts(1);
    }

    /** The partial-sum buffer, at least {@code floats} long (a replaced buffer is freed once its users ran). */
    private MemorySegment partial(long floats) {
        if (floats > partialFloats) {
            queue.releaseBuffer(partial); // OpenCL keeps it until the enqueued kernels that use it have finished
            partial = queue.createBuffer(floats * Float.BYTES);
            partialFloats = floats;
        }
        return partial;
    }

    /** The tile counters, at least {@code ints} of them, all zero when new. */
    private MemorySegment counters(long ints) {
        if (ints > counterInts) {
            queue.releaseBuffer(counters);
            counters = zeroInts(ints);
            counterInts = ints;
        }
        return counters;
    }

    private MemorySegment zeroInts(long ints) {
        MemorySegment b = queue.createBuffer(ints * Integer.BYTES);
        queue.writeBlocking(b, MemorySegment.ofArray(new int[(int) ints]), ints * Integer.BYTES);
        return b;
    }

    /**
     * The OpenCL C of the kernels: kv.cl (the KV element macros), matmul.cl, then mv.cl once per matvec token tier ({@link MatmulTiles#mvTiers}:
     * 1, 2, 4, 8 below MV_TOKENS, guarded by the build's MV_TOKENS, and MV_TOKENS itself), as kernels
     * {@code mv_t<tokens>}, and again with the fused RMSNorm as {@code mv_t<tokens>n}.
     */
    public static String source() {
        String mv = resource("mv.cl");
        StringBuilder sb = new StringBuilder(resource("kv.cl")).append('\n').append(resource("matmul.cl"));
        for (int fused = 0; fused <= 1; fused++) {
            String variant = "\n#define MV_FUSED " + fused + "\n";
            for (int tier : MatmulTiles.MV_POWER_TIERS) {
                sb.append("\n#if MV_TOKENS > ").append(tier).append(variant).append("#define MVT ").append(tier)
                        .append('\n').append(mv).append("#undef MVT\n#undef MV_FUSED\n#endif\n");
            }
            sb.append(variant).append("#define MVT MV_TOKENS\n").append(mv).append("#undef MVT\n#undef MV_FUSED\n");
        }
        return sb.toString();
    }

    /** mma.cl: the tensor-core fragment operation (inline PTX or its emulation) and the probe's one-tile kernel. */
    public static String mmaSource() {
        return resource("mma.cl");
    }

    /** An OpenCL C resource next to this class. */
    static String resource(String name) {
        try (InputStream in = MatmulProgram.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("resource io/stepstream/gpu/" + name + " is missing from the classpath");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + name, e);
        }
    }

    /**
     * Whether this program multiplies with tensor cores, in words: "off", "emulated" or "mma.sync" (with the
     * mmt tile and the token threshold; "(3xtf32)" after them for F32 weights).
     */
    public String tensorCoreLabel() {
        return tensorCoreBuild == null ? "off" : tensorCoreBuild + " " + tensorCores.label() + " from "
                + tensorCores.minTokens() + " tokens" + (wtype == Llama2Kernel.WT_F32 ? " (3xtf32)" : "");
    }

    /** True when the program has the tensor-core kernel (built for the device's PTX or emulated). */
    public boolean hasTensorCores() {
        return tensorCoreBuild != null;
    }

    public TensorCores tensorCores() {
        return tensorCores;
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
     * into the bound weights (a chunk of layers: l is then the layer within it, {@link Pass#weights}). {@code outStride}: floats per token of the output. The rest feeds the QKV epilogue (0 elsewhere).
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
        /** The matvec kernels, one per token tier of {@link MatmulTiles#mvTiers()} (kernels[0 .. tiers)). */
        private final int[] mvTiers;
        private final MemorySegment mm;
        private final MemorySegment reduce;
        /** The tensor-core kernel, or null when the program has none or the shape does not suit it. */
        private final boolean mmt;
        private final MemorySegment[] kernels;
        private final long[][] boundBuffers;
        private final int[] lastN;
        private final int[] lastLayer;
        private final int[] lastLayer0;
        private final int[] lastSplit;
        /** The weight chunk bound by {@link #weights} (WEIGHT_ARGS order), or null: the ones {@link #bind} bound. */
        private MemorySegment[] chunk;
        /** The first model layer of that chunk (0 without one). */
        private int chunkLayer0;
        private int lastTier = -1;
        private boolean lastReduce;
        private int computeUnits;
        private int lastSplitUsed = 1;
        private boolean lastTensorCores;
        /** Index into mvTiers of the last matvec enqueue (-1: none yet). */
        private int lastMvTier = -1;
        private boolean lastRanMatvec;
        /** A forced matvec tier (token count) for probes, or 0: the smallest tier that holds n. */
        private int forcedMvTier;
        /** The fused RMSNorm's mode for the next matvec enqueues (NORM_OFF: read the input rows). */
        private int normMode = NORM_OFF;
        private final int[] lastNormMode;
        /** The most tokens this pass runs on the matvec (below the tiles' mvTokens for long-row passes). */
        private int matvecMaxTokens = Integer.MAX_VALUE;
        /** Index of mm in kernels; reduce follows it, then the tensor-core tiers. */
        private final int mmIndex;
        /** Index of the fused-norm matvec of tier 0 in kernels (the last mvTiers.length kernels). */
        private final int normIndex;
        /** See {@link #canFuseNorm()}. */
        private final boolean normStageFits;

        private Pass(Shape s) {
            this.shape = s;
            this.mvTiers = tiles.mvTiers();
            this.mmIndex = mvTiers.length;
            this.mm = queue.createKernel(program, "mm");
            this.reduce = queue.createKernel(program, "mm_reduce");
            // mmt loads 8 weights at a time (F32: 4, 16 bytes either way): every row must start on a multiple of
            // that; for Q8_0 on a multiple of 32, so that a row's scale blocks start with it and a K-slice holds
            // whole blocks
            int align = wtype == Llama2Kernel.WT_Q8_0 ? 32 : wtype == Llama2Kernel.WT_F32 ? 4 : 8;
            boolean aligned = s.cols() % align == 0 && s.lstride0() % align == 0 && s.lstride1() % align == 0
                    && s.lstride2() % align == 0;
            this.mmt = hasTensorCores() && aligned;
            int tiers = mmt ? tensorCores.tiles().size() : 0;
            this.normIndex = mmIndex + 2 + tiers;
            this.kernels = new MemorySegment[normIndex + mvTiers.length];
            for (int i = 0; i < mvTiers.length; i++) {
                kernels[i] = queue.createKernel(program, "mv_t" + mvTiers[i]);
                kernels[normIndex + i] = queue.createKernel(program, "mv_t" + mvTiers[i] + "n");
            }
            kernels[mmIndex] = mm;
            kernels[mmIndex + 1] = reduce;
            for (int i = 0; i < tiers; i++) {
                kernels[mmIndex + 2 + i] = queue.createKernel(program, "mmt" + i);
            }
            this.boundBuffers = new long[kernels.length][MV_ARGS];
            for (long[] b : boundBuffers) {
                java.util.Arrays.fill(b, -1); // nothing bound yet, not even NULL
            }
            this.lastNormMode = new int[mvTiers.length];
            this.lastN = new int[kernels.length];
            this.lastLayer = new int[kernels.length];
            this.lastLayer0 = new int[kernels.length];
            this.lastSplit = new int[kernels.length];
            java.util.Arrays.fill(lastN, -1);
            java.util.Arrays.fill(lastLayer, -1);
            java.util.Arrays.fill(lastLayer0, -1);
            this.computeUnits = queue.device().computeUnits();
            for (MemorySegment k : kernels) {
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
                queue.setArgInt(k, ARG_KSPLIT, 1);
            }
            java.util.Arrays.fill(lastSplit, 1);
            bind(ARG_PARTIAL, partial);
            bind(ARG_COUNTERS, counters);
            // The norm arguments of the matvecs must be set even when no norm runs: point them at a buffer that
            // lives as long as the program, until a hook binds the real ones.
            for (int i = 0; i < mvTiers.length; i++) {
                for (int k : new int[]{i, normIndex + i}) {
                    queue.setArgInt(kernels[k], ARG_NORM_MODE, NORM_OFF);
                    queue.setArgInt(kernels[k], ARG_NORM_STRIDE, 0);
                    queue.setArgFloat(kernels[k], ARG_EPS, 0f);
                }
            }
            bindNorm(noNorm, noNorm, noNorm, 0, 0f);
            // the staged one-token fused build keeps the cols of g * x in local memory; every other build none
            long stageBytes = (long) s.cols() * Float.BYTES;
            this.normStageFits = !stageNorm
                    || stageBytes + 2L * tiles.mvWg() * Float.BYTES <= queue.device().localMemBytes();
            for (int i = 0; i < mvTiers.length; i++) {
                boolean staged = stageNorm && mvTiers[i] == 1 && normStageFits;
                queue.setArgLocal(kernels[i], ARG_NORM_STAGE, 16);
                queue.setArgLocal(kernels[normIndex + i], ARG_NORM_STAGE, staged ? stageBytes : 16);
            }
        }

        /**
         * Whether the fused-norm matvec can run this pass: unless its program stages g * x and the pass's columns do
         * not fit the device's local memory (then the caller keeps the norm's own kernel).
         */
        public boolean canFuseNorm() {
            return normStageFits;
        }

        /**
         * Binds the fused RMSNorm's inputs of the matvec kernels: the residual stream {@code x}, the norm weights
         * (layer l starts {@code layerStride} floats in), the source-row index buffer of {@link #NORM_ROW_INDEX},
         * and eps. Whether a matvec enqueue uses them is {@link #normMode(int)}.
         */
        public void bindNorm(MemorySegment x, MemorySegment weights, MemorySegment rows, int layerStride, float eps) {
            for (int i = 0; i < mvTiers.length; i++) {
                for (int k : new int[]{i, normIndex + i}) {
                    bindOne(k, ARG_NORM_X, x);
                    bindOne(k, ARG_NORM_W, weights);
                    bindOne(k, ARG_NORM_ROW, rows);
                    queue.setArgInt(kernels[k], ARG_NORM_STRIDE, layerStride);
                    queue.setArgFloat(kernels[k], ARG_EPS, eps);
                }
            }
        }

        private void bindOne(int kernel, int arg, MemorySegment buffer) {
            MemorySegment b = reads(kernel, arg) ? buffer : MemorySegment.NULL;
            if (boundBuffers[kernel][arg] != b.address()) {
                queue.setArgBuffer(kernels[kernel], arg, b);
                boundBuffers[kernel][arg] = b.address();
            }
        }

        /**
         * Whether kernel {@code i} reads buffer argument {@code arg}. The matvecs get NULL for the buffers their pass
         * never touches (another op's epilogue inputs, the weight segments and scales it lacks, the split-K buffers,
         * the norm inputs of the plain build, the input rows of the fused one): on the H200 an enqueue costs ~0.35 us
         * more per bound buffer past ~8 (LaunchProbe: 19 buffers 10.5 us, 8 buffers 6.8 us), and a one-token step
         * is ~90 matvec enqueues. The tiled kernels keep every buffer.
         */
        private boolean reads(int i, int arg) {
            boolean fused = i >= normIndex;
            if (i >= mvTiers.length && !fused) {
                return true;
            }
            boolean second = shape.interleave() || shape.split1() < shape.rows();
            boolean third = !shape.interleave() && shape.split2() < shape.rows();
            boolean scales = wtype == Llama2Kernel.WT_Q8_0;
            return switch (arg) {
                case ARG_S0 -> scales;
                case ARG_W1 -> second;
                case ARG_S1 -> second && scales;
                case ARG_W2 -> third;
                case ARG_S2 -> third && scales;
                case ARG_IN -> !fused;
                case ARG_KV, ARG_ROPE_COS, ARG_ROPE_SIN, ARG_TOKEN_POS, ARG_TOKEN_SEQ, ARG_BLOCK_TABLE ->
                        shape.epilogue() == EPI_QKV;
                case ARG_PARTIAL, ARG_COUNTERS -> false;
                case ARG_NORM_X, ARG_NORM_W, ARG_NORM_ROW -> fused;
                default -> true;
            };
        }

        /**
         * The fused RMSNorm mode of the next matvec enqueues: {@link #NORM_OFF} (the input rows as they are),
         * {@link #NORM_ROWS} or {@link #NORM_ROW_INDEX} (the input rows made from the residual stream bound by
         * {@link #bindNorm}). Tiled kernels ignore it: a caller fuses only when {@link #usesMatvec} holds.
         */
        public void normMode(int mode) {
            if (mode < NORM_OFF || mode > NORM_ROW_INDEX) {
                throw new IllegalArgumentException("norm mode " + mode + " is not 0, 1 or 2");
            }
            this.normMode = mode;
        }

        /**
         * Forces the matvec tier (its token count, one of {@link MatmulTiles#mvTiers()}) for counts it holds, for
         * probes; 0 restores the default, the smallest tier that holds the count.
         */
        public void forceMvTier(int tokens) {
            if (tokens != 0 && java.util.Arrays.stream(mvTiers).noneMatch(t -> t == tokens)) {
                throw new IllegalArgumentException("matvec tier " + tokens + " is not one of "
                        + java.util.Arrays.toString(mvTiers));
            }
            this.forcedMvTier = tokens;
        }

        /** The matvec tier (token count) that runs {@code n} tokens. */
        public int mvTierFor(int n) {
            return mvTiers[mvTierIndex(n)];
        }

        private int mvTierIndex(int n) {
            for (int i = 0; i < mvTiers.length; i++) {
                if (forcedMvTier > 0 ? mvTiers[i] == forcedMvTier && n <= forcedMvTier : n <= mvTiers[i]) {
                    return i;
                }
            }
            // a forced tier below n: the smallest that holds it
            for (int i = 0; i < mvTiers.length; i++) {
                if (n <= mvTiers[i]) {
                    return i;
                }
            }
            throw new IllegalArgumentException(n + " tokens is more than the matvec's " + tiles.mvTokens());
        }

        /** The matvec token tiers of this pass's program, ascending. */
        public int[] mvTiers() {
            return mvTiers.clone();
        }

        /** Whether the last enqueue ran a matvec kernel. */
        public boolean lastRanMatvec() {
            return lastRanMatvec;
        }

        /** The tier (token count) of the last matvec enqueue, or 0 if none ran yet. */
        public int lastMvTier() {
            return lastMvTier < 0 ? 0 : mvTiers[lastMvTier];
        }

        public Shape shape() {
            return shape;
        }

        /** Binds a buffer argument (one of {@link #BUFFER_ARGS}) of both kernels, unless it is bound already. */
        public void bind(int arg, MemorySegment buffer) {
            for (int i = 0; i < kernels.length; i++) {
                bindOne(i, arg, buffer);
            }
        }

        /**
         * The weight chunk the next enqueues read ({@code buffers} in {@link #WEIGHT_ARGS} order) and the model layer it
         * starts at: an enqueue for layer l reads the chunk's layer l - firstLayer, while l still places KV rows and
         * picks norm weights. Only the kernel an enqueue runs gets the chunk's buffers, and only those that changed
         * (a chunk change costs a few setArg calls, not one per kernel of the pass). Never called, the weights are
         * the ones {@link #bind} bound, holding every layer.
         */
        public void weights(MemorySegment[] buffers, int firstLayer) {
            if (buffers.length != WEIGHT_ARGS.length || firstLayer < 0) {
                throw new IllegalArgumentException(buffers.length + " weight buffers (want " + WEIGHT_ARGS.length
                        + "), first layer " + firstLayer);
            }
            this.chunk = buffers;
            this.chunkLayer0 = firstLayer;
        }

        /**
         * Whether {@code n} tokens go to the matvec kernel: up to mvTokens, unless the tensor-core threshold is that
         * low (a threshold of 1 puts every count on mmt: with a fixed split-K, {@code ks=1}, a token's result is then
         * bitwise the same in any batch, which diffusion step batching wants).
         */
        public boolean usesMatvec(int n) {
            return n <= Math.min(tiles.mvTokens(), matvecMaxTokens) && !(mmt && n >= tensorCores.minTokens());
        }

        /** Caps the token counts that run on the matvec (more go to the tiled kernels); 0 never runs it. */
        public void matvecMaxTokens(int tokens) {
            if (tokens < 0) {
                throw new IllegalArgumentException("matvec token cap " + tokens + " < 0");
            }
            this.matvecMaxTokens = tokens;
        }

        /** Whether {@code n} tokens go to the tensor-core kernel. */
        public boolean usesTensorCores(int n) {
            return mmt && n >= tensorCores.minTokens();
        }

        /** Whether the last enqueue ran the tensor-core kernel. */
        public boolean lastUsedTensorCores() {
            return lastTensorCores;
        }

        /** The tensor-core tile the last enqueue ran, or null when it ran mv or mm. */
        public TensorCores.Tile lastTile() {
            return lastTensorCores ? tensorCores.tiles().get(lastTier) : null;
        }

        /**
         * Enqueues the pass for {@code n} tokens (input rows 0..n-1) of {@code layer}: the matvec kernel for up to
         * mvTokens tokens, else the tiled one. {@code event}: NULL or where to write the command's event.
         */
        public void enqueue(int n, int layer, MemorySegment event) {
            enqueue(n, layer, event, MemorySegment.NULL);
        }

        /**
         * As above; a split-K tiled matmul is two kernels, the tiled one (its event in {@code event}) and the
         * reduction with the epilogue (its event in {@code reduceEvent}, when not NULL).
         */
        public void enqueue(int n, int layer, MemorySegment event, MemorySegment reduceEvent) {
            enqueue(n, layer, event, () -> reduceEvent);
        }

        /** As above, asking for the reduction's event slot only when there is a reduction. */
        public void enqueue(int n, int layer, MemorySegment event,
                            java.util.function.Supplier<MemorySegment> reduceEvent) {
            if (n < 1) {
                throw new IllegalArgumentException("matmul of " + n + " tokens");
            }
            if (usesMatvec(n)) {
                int tier = mvTierIndex(n);
                // the fused-norm build of the tier when a norm is fused, else the plain one
                int which = normMode != NORM_OFF ? normIndex + tier : tier;
                prepare(which, n, layer, 1);
                if (normMode != NORM_OFF && lastNormMode[tier] != normMode) {
                    queue.setArgInt(kernels[which], ARG_NORM_MODE, normMode);
                    lastNormMode[tier] = normMode;
                }
                lastMvTier = tier;
                lastRanMatvec = true;
                long groups = (shape.rows() + tiles.mvRows() - 1) / tiles.mvRows();
                queue.enqueue(kernels[which], groups * tiles.mvWg(), tiles.mvWg(), event);
                lastSplitUsed = 1;
                lastTensorCores = false;
                lastReduce = false;
                return;
            }
            lastRanMatvec = false;
            lastTensorCores = usesTensorCores(n);
            int split;
            if (lastTensorCores) {
                lastTier = tensorCores.tierFor(n, shape.rows(), shape.cols(), computeUnits);
                TensorCores.Tile tile = tensorCores.tiles().get(lastTier);
                int tileGroups = ((shape.rows() + TensorCores.TM - 1) / TensorCores.TM) * ((n + tile.tn() - 1) / tile.tn());
                // a split fixed by the tier or the shape (not the token count) first: batch-invariant split-K
                int fixed = tensorCores.fixedSplit(lastTier, shape.rows(), shape.cols());
                split = fixed > 0 ? fixed : MatmulTiles.splitFor(tileGroups, shape.cols(), computeUnits, tile.tk(),
                        tiles.ks(), tile.occ(), TensorCores.MAX_SPLIT);
                if (split > 1) {
                    partial((long) split * n * shape.rows());
                    counters(tileGroups);
                }
                prepare(mmIndex + 2 + lastTier, n, layer, split);
                queue.enqueue(kernels[mmIndex + 2 + lastTier], (long) tileGroups * split * TensorCores.WG, TensorCores.WG, event);
                lastReduce = split > 1 && !tile.fusedReduce();
            } else {
                int tileGroups = ((shape.rows() + tiles.tm() - 1) / tiles.tm()) * ((n + tiles.tn() - 1) / tiles.tn());
                split = tiles.splitFor(tileGroups, shape.cols(), computeUnits);
                if (split > 1) {
                    partial((long) split * n * shape.rows());
                }
                prepare(mmIndex, n, layer, split);
                queue.enqueue(mm, (long) tileGroups * split * tiles.mmWg(), tiles.mmWg(), event);
                lastReduce = split > 1;
            }
            if (lastReduce) {
                prepare(mmIndex + 1, n, layer, split);
                long items = (long) (shape.rows() + 1) / 2 * n;
                queue.enqueue(reduce, (items + REDUCE_LOCAL - 1) / REDUCE_LOCAL * REDUCE_LOCAL, REDUCE_LOCAL,
                        reduceEvent.get());
            }
            lastSplitUsed = split;
        }

        /** Whether the last enqueue ran the split-K reduction as a second kernel (its event: reduceEvent). */
        public boolean lastReduceKernel() {
            return lastReduce;
        }

        /** Column slices of the last enqueue (1: no split-K). */
        public int lastSplit() {
            return lastSplitUsed;
        }

        /** Overrides the compute-unit count split-K sizes for (probes and tests). */
        public void computeUnits(int units) {
            this.computeUnits = units;
        }

        /** Sets the kernel's per-enqueue arguments that changed, and the current partial-sum buffer. */
        private void prepare(int which, int n, int layer, int split) {
            MemorySegment k = kernels[which];
            bindOne(which, ARG_PARTIAL, partial);
            bindOne(which, ARG_COUNTERS, counters);
            if (lastN[which] != n) {
                queue.setArgInt(k, ARG_N, n);
                lastN[which] = n;
            }
            if (lastLayer[which] != layer) {
                queue.setArgInt(k, ARG_LAYER, layer);
                lastLayer[which] = layer;
            }
            if (chunk != null) {
                for (int i = 0; i < WEIGHT_ARGS.length; i++) {
                    bindOne(which, WEIGHT_ARGS[i], chunk[i]);
                }
            }
            if (lastLayer0[which] != chunkLayer0) {
                queue.setArgInt(k, ARG_LAYER0, chunkLayer0);
                lastLayer0[which] = chunkLayer0;
            }
            if (lastSplit[which] != split) {
                queue.setArgInt(k, ARG_KSPLIT, split);
                lastSplit[which] = split;
            }
        }
    }
}
