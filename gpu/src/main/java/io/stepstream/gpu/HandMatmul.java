package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;

import java.lang.foreign.MemorySegment;

/**
 * The direct dispatch's hook that runs a step's matmul passes (QKV + RoPE + KV store, WO + residual, W1/W3 +
 * SwiGLU, W2 + residual, classifier) as matmul.cl kernels instead of the Aparapi pass, in the launcher's own
 * queue on the launcher's buffers; with {@code allPasses} the other passes too, as {@link HandStep}'s kernels
 * (else they stay Aparapi's). Each pass reads the schedule from the
 * kernel's host copy of {@code passOp}/{@code passLayer} (which always mirrors the device's) and the token
 * count from {@code k.tokens}; buffers are re-read only when the launcher rebound some field. A model whose weight
 * kinds are split by layers ({@link #weightChunks}) binds, per pass, the chunk holding the pass's layer.
 *
 * <p>With {@code allPasses}, an RMSNorm pass directly followed in its launch by its consumer (QKV, W1/W3,
 * classifier) that runs the 1-token matvec (any matvec with {@code on}) is fused into it ({@value #FUSE_NORM_PROPERTY}): the
 * norm pass enqueues nothing and the matvec reads the residual stream x with the norm weights instead of xb
 * (mv.cl); nothing else reads a norm's xb, so xb is simply not written then.
 */
final class HandMatmul implements DirectLauncher.PassHook {
    /**
     * System property forcing the matvec tier (token count) of every pass whose program has it, for A/B runs:
     * {@code auto} (the default: the smallest tier that holds the step's tokens) or a tier, e.g. 8.
     */
    static final String MV_TIER_PROPERTY = "stepstream.opencl.mvTier";
    /**
     * System property: fuse each RMSNorm into the matmul right after it in the schedule (attention norm into QKV,
     * FFN norm into W1/W3, final norm into the classifier), skipping the norm's own kernel: {@code auto} (the
     * default) where that matmul runs the 1-token matvec tier, {@code on} wherever it runs a matvec, {@code off}
     * never. H200, 1.1B: fused +1% (f32) / +3.5% (f16) tok/s at batch 1, but 20-25% slower at batches 4-8 (the
     * per-token sum of squares in an x-load-bound loop), hence auto = tier 1 only.
     */
    static final String FUSE_NORM_PROPERTY = "stepstream.opencl.fuseNorm";

    /** When norms fuse into the matvec after them ({@value #FUSE_NORM_PROPERTY}). */
    enum FuseNorm { AUTO, ON, OFF }
    private final DirectLauncher launcher;
    private final Llama2Kernel k;
    private final MatmulProgram program;
    /** The pass of each Llama2Kernel op, null for ops that are not matmuls. */
    private final MatmulProgram.Pass[] passes = new MatmulProgram.Pass[Llama2Kernel.OPS];
    /** The long-row matvec of each op whose rows are long enough, else null. */
    private final MatmulProgram.Pass[] longRowPasses = new MatmulProgram.Pass[Llama2Kernel.OPS];
    /** The pass each op enqueued last (its regular or its long-row one), null before. */
    private final MatmulProgram.Pass[] lastPass = new MatmulProgram.Pass[Llama2Kernel.OPS];
    private final MatmulTiles.LongRows longRows;
    private final MatmulProgram longRowProgram;
    /** Field names bound to each pass's buffer arguments (MatmulProgram.BUFFER_ARGS order). */
    private final String[][] fields = new String[Llama2Kernel.OPS][];
    private long boundEpoch = -1;
    private long enqueued;
    private long stepEnqueued;
    private long tensorCorePasses;
    /** The other passes as hand kernels too, or null (they stay Aparapi's). */
    private final HandStep step;
    private final MatmulProgram largeProgram;
    private int maxSplit = 1;
    /** Passes with long rows run the matvec up to this many tokens ({@link MatmulTiles#LONG_ROWS_MV_MAX_TOKENS_PROPERTY}). */
    private final int longRowMvMaxTokens;
    /** When norms are fused into the matvec of the pass after them ({@value #FUSE_NORM_PROPERTY}; OFF without a hand step). */
    private final FuseNorm fuseNorm;
    private long fusedNorms;
    /** The weight chunks of a model whose kinds are split by layers, or null (each kind one buffer). */
    private WeightChunks chunks;
    /** With chunks: each op's weight buffers (MatmulProgram.WEIGHT_ARGS order) per chunk, refreshed by bindAll. */
    private MemorySegment[][][] chunkWeights;
    /** The split-K reduction's event slot, timed under its own label when profiling. */
    private final java.util.function.Supplier<MemorySegment> reduceEvent;
    /** The persistent layer tail (null: not built) and whether it runs ({@link #persistentTail(boolean)}). */
    private final PersistentTail tail;
    private boolean tailOn;
    /** The schedule indices the last tail did the work of (after its WO pass), and the launch it ran in. */
    private long tailLaunch = -1;
    private int tailCoveredFrom;
    private int tailCoveredTo;
    /** A layer's schedule from its WO pass that one tail replaces (the next layer's norm + QKV may follow). */
    private static final int[] TAIL_OPS = {Llama2Kernel.OP_WO_RESIDUAL, Llama2Kernel.OP_RMSNORM_FFN,
            Llama2Kernel.OP_FFN_SWIGLU, Llama2Kernel.OP_W2_RESIDUAL};

    /**
     * @param tiles      the kernels' shape for passes of fewer than {@link MatmulTiles#LARGE_ROWS} rows
     * @param largeTiles for passes with at least that many rows (the W1/W3 and classifier passes of big models);
     *                   built as a second program unless equal to {@code tiles}
     * @param longRows   the matvec for passes with long weight rows at few tokens (a third program, built only
     *                   when some pass is long enough)
     */
    HandMatmul(DirectLauncher launcher, Llama2Kernel k, ModelConfig c, MatmulTiles tiles, MatmulTiles largeTiles,
               MatmulTiles.LongRows longRows, boolean allPasses, TensorCores tensorCores) {
        this(launcher, k, c, tiles, largeTiles, longRows, allPasses, tensorCores, KvCacheType.F32);
    }

    /** As above, every program built for a KV pool of {@code kvCache} elements. */
    HandMatmul(DirectLauncher launcher, Llama2Kernel k, ModelConfig c, MatmulTiles tiles, MatmulTiles largeTiles,
               MatmulTiles.LongRows longRows, boolean allPasses, TensorCores tensorCores, KvCacheType kvCache) {
        this.launcher = launcher;
        this.k = k;
        this.program = new MatmulProgram(launcher.queue(), k.wtype, tiles, tensorCores, kvCache);
        this.largeProgram = largeTiles.equals(tiles) ? program
                : new MatmulProgram(launcher.queue(), k.wtype, largeTiles, tensorCores, kvCache);
        this.longRows = longRows;
        boolean anyLong = longRows.covers(c.dim()) || longRows.covers(c.hiddenDim());
        // Built with the same tensor-core setting so that its matvec rounds activations as the others do (XH).
        this.longRowProgram = !anyLong ? null : longRows.tiles().equals(tiles) ? program
                : new MatmulProgram(launcher.queue(), k.wtype, longRows.tiles(), tensorCores, kvCache);
        this.step = allPasses ? new HandStep(launcher, k, kvCache) : null;
        this.longRowMvMaxTokens = longRowMvMaxTokensFromSystemProperty();
        this.reduceEvent = () -> launcher.extraEvent(OpTimes.MM_REDUCE);
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        String suffix = Llama2Kernel.weightFieldSuffix(k.wtype);
        add(Llama2Kernel.OP_QKV_ROPE, new MatmulProgram.Shape(MatmulProgram.EPI_QKV, dim + 2 * kvDim, dim, dim,
                dim + kvDim, false, dim * dim, kvDim * dim, kvDim * dim, dim, c.headSize(), k.maxBlocksPerSeq,
                k.blockFloats, kvDim), suffix, "wq", "wk", "wv", "xb", "q");
        add(Llama2Kernel.OP_WO_RESIDUAL, MatmulProgram.Shape.plain(MatmulProgram.EPI_RESIDUAL, dim, dim, dim * dim, dim),
                suffix, "wo", "wo", "wo", "xb", "x");
        add(Llama2Kernel.OP_FFN_SWIGLU, new MatmulProgram.Shape(MatmulProgram.EPI_SWIGLU, 2 * hidden, dim, 2 * hidden,
                2 * hidden, true, hidden * dim, hidden * dim, hidden * dim, hidden, 0, 0, 0, 0),
                suffix, "w1", "w3", "w3", "xb", "hb");
        add(Llama2Kernel.OP_W2_RESIDUAL, MatmulProgram.Shape.plain(MatmulProgram.EPI_RESIDUAL, dim, hidden,
                dim * hidden, dim), suffix, "w2", "w2", "w2", "hb", "x");
        add(Llama2Kernel.OP_LOGITS, MatmulProgram.Shape.plain(MatmulProgram.EPI_STORE, c.vocabSize(), dim, 0,
                c.vocabSize()), suffix, "cls", "cls", "cls", "xb", "logits");
        forceMvTier(mvTierFromSystemProperty());
        // Fusing replaces step.cl's norm kernel: only where the hand step runs the norms.
        this.fuseNorm = step == null ? FuseNorm.OFF : fuseNormFromSystemProperty();
        // The persistent tail replaces the one-token step's kernels from WO on: built only where it may run (hand step,
        // fused norms), rounding activations as the matvecs do (XH with tensor cores, except F32's 3xTF32).
        this.tail = step == null || fuseNorm == FuseNorm.OFF
                || !PersistentTail.enabledBySystemProperty(launcher.device(), k.wtype, c.dim())
                ? null : PersistentTail.create(launcher, k, tiles, program.hasTensorCores()
                        && k.wtype != Llama2Kernel.WT_F32, PersistentTail.Shape.fromSystemProperty(), kvCache);
        this.tailOn = tail != null;
    }

    /** The persistent tail, or null when it was not built ({@value PersistentTail#PROPERTY}, device, shapes). */
    PersistentTail tail() {
        return tail;
    }

    /** Turns the persistent tail on or off from the next launch on (tests A/B it in one model). */
    void persistentTail(boolean on) {
        if (on && tail == null) {
            throw new IllegalStateException("persistent tail: not built (" + PersistentTail.PROPERTY
                    + "=off, fused norms off, no hand step, or the device cannot run it)");
        }
        this.tailOn = on;
    }

    /** Whether op runs the one-token matvec tier (mv_t1 / mv_t1n, whose arithmetic the tail's phases repeat). */
    private boolean oneTokenMatvec(int op) {
        MatmulProgram.Pass p = passFor(op, 1);
        return p.usesMatvec(1) && p.mvTierFor(1) == 1;
    }

    /**
     * Whether the WO pass at schedule index {@code wo} of this launch starts a persistent tail: one token, the layer's
     * schedule goes on with its FFN norm, W1/W3 and W2, the FFN norm fuses into W1/W3, and WO, W1/W3 and W2 run the
     * one-token matvec. The attention before it has written xb whichever way it ran (its chunks merged in its own
     * launch or by attn_combine).
     */
    private boolean tailAt(int wo) {
        if (tail == null || !tailOn || k.tokens != 1 || wo + TAIL_OPS.length > launcher.passesThisLaunch()) {
            return false;
        }
        for (int i = 0; i < TAIL_OPS.length; i++) {
            if (k.passOp[wo + i] != TAIL_OPS[i] || k.passLayer[wo + i] != k.passLayer[wo]) {
                return false;
            }
        }
        return fusedNormAt(wo + 1) && oneTokenMatvec(Llama2Kernel.OP_WO_RESIDUAL)
                && oneTokenMatvec(Llama2Kernel.OP_FFN_SWIGLU) && oneTokenMatvec(Llama2Kernel.OP_W2_RESIDUAL);
    }

    /** Whether the tail starting at WO pass {@code wo} also runs the next layer's attention norm + QKV (fused). */
    private boolean tailNextAt(int wo) {
        int norm = wo + TAIL_OPS.length;
        return norm + 1 < launcher.passesThisLaunch() && k.passOp[norm] == Llama2Kernel.OP_RMSNORM_ATT
                && k.passLayer[norm] == k.passLayer[wo] + 1 && fusedNormAt(norm)
                && oneTokenMatvec(Llama2Kernel.OP_QKV_ROPE);
    }

    /**
     * Op's weight buffers for {@code layer} in MatmulProgram.WEIGHT_ARGS order (the chunk holding the layer when the
     * model is split) into {@code out} from {@code at}; returns the first layer of those buffers.
     */
    private int weightsOf(int op, int layer, MemorySegment[] out, int at, int count) {
        if (chunks == null) {
            for (int i = 0; i < count; i++) {
                out[at + i] = launcher.buffer(fields[op][i]);
            }
            return 0;
        }
        int chunk = chunks.split().chunkOf(layer);
        System.arraycopy(chunkWeights[op][chunk], 0, out, at, count);
        return chunks.split().firstLayer(chunk);
    }

    /** Enqueues the tail of the layer whose WO pass is {@code wo}; records the passes it covers. */
    private void enqueueTail(int wo) {
        int layer = k.passLayer[wo];
        boolean next = tailNextAt(wo);
        MemorySegment[] own = new MemorySegment[PersistentTail.LAYER_WEIGHTS];
        int layer0 = weightsOf(Llama2Kernel.OP_WO_RESIDUAL, layer, own, 0, 2);
        // W1/W3's WEIGHT_ARGS are w1, w1S, w3, w3S; W2's w2, w2S
        int ffn0 = weightsOf(Llama2Kernel.OP_FFN_SWIGLU, layer, own, 2, 4);
        int w20 = weightsOf(Llama2Kernel.OP_W2_RESIDUAL, layer, own, 6, 2);
        if (ffn0 != layer0 || w20 != layer0) {
            throw new IllegalStateException("persistent tail: layer " + layer + "'s WO, W1/W3 and W2 chunks start at"
                    + " different layers (" + layer0 + ", " + ffn0 + ", " + w20 + ")");
        }
        MemorySegment[] nextWeights = next ? new MemorySegment[PersistentTail.NEXT_WEIGHTS] : null;
        int nextLayer0 = next ? weightsOf(Llama2Kernel.OP_QKV_ROPE, layer + 1, nextWeights, 0, 6) : 0;
        tail.enqueue(layer, own, layer0, nextWeights, nextLayer0, () -> launcher.extraEvent(OpTimes.TAIL));
        // the FFN norm (and the next layer's attention norm) are fused into the tail's matvecs
        fusedNorms += next ? 2 : 1;
        tailLaunch = launcher.launches();
        tailCoveredFrom = wo + 1;
        tailCoveredTo = wo + TAIL_OPS.length - 1 + (next ? 2 : 0);
    }

    /** Layers whose tail ran as the persistent kernel so far. */
    long tailEnqueued() {
        return tail == null ? 0 : tail.launches();
    }

    static int longRowMvMaxTokensFromSystemProperty() {
        String v = System.getProperty(MatmulTiles.LONG_ROWS_MV_MAX_TOKENS_PROPERTY,
                Integer.toString(MatmulTiles.LONG_ROWS_MV_MAX_TOKENS)).strip();
        try {
            int tokens = Integer.parseInt(v);
            if (tokens >= 0 && tokens <= 16) {
                return tokens;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(MatmulTiles.LONG_ROWS_MV_MAX_TOKENS_PROPERTY
                + " must be a token count 0..16, got '" + v + "'");
    }

    /** {@value #FUSE_NORM_PROPERTY}: auto (the default), on or off. */
    static FuseNorm fuseNormFromSystemProperty() {
        String v = System.getProperty(FUSE_NORM_PROPERTY, "auto").strip().toLowerCase(java.util.Locale.ROOT);
        return switch (v) {
            case "auto" -> FuseNorm.AUTO;
            case "on" -> FuseNorm.ON;
            case "off" -> FuseNorm.OFF;
            default -> throw new IllegalArgumentException(FUSE_NORM_PROPERTY + " must be auto, on or off, got '" + v
                    + "'");
        };
    }

    /** The matmul op that reads the output of norm op {@code op}, or -1 when op is no norm. */
    private static int consumerOfNorm(int op) {
        return switch (op) {
            case Llama2Kernel.OP_RMSNORM_ATT -> Llama2Kernel.OP_QKV_ROPE;
            case Llama2Kernel.OP_RMSNORM_FFN -> Llama2Kernel.OP_FFN_SWIGLU;
            case Llama2Kernel.OP_FINAL_NORM -> Llama2Kernel.OP_LOGITS;
            default -> -1;
        };
    }

    /** Tokens the matmul op multiplies in this launch. */
    private int tokensOf(int op) {
        return op == Llama2Kernel.OP_LOGITS ? logitsRows() : k.tokens;
    }

    /** The pass that runs matmul op {@code op} for {@code n} tokens: the long-row matvec where it takes them. */
    private MatmulProgram.Pass passFor(int op, int n) {
        return longRowPasses[op] != null && passes[op].usesMatvec(n) && longRows.takes(passes[op].shape().cols(), n)
                ? longRowPasses[op] : passes[op];
    }

    /**
     * Whether the norm at schedule index {@code pass} of this launch is fused into the next pass: the next pass of the
     * launch is its consumer (same layer) and runs a matvec for this launch's token count (AUTO: the 1-token tier).
     * The norm pass and its consumer both ask this, so a skipped norm always has a consumer that makes its rows.
     */
    private boolean fusedNormAt(int pass) {
        if (fuseNorm == FuseNorm.OFF || pass < 0 || pass + 1 >= launcher.passesThisLaunch()) {
            return false;
        }
        int consumer = consumerOfNorm(k.passOp[pass]);
        if (consumer < 0 || k.passOp[pass + 1] != consumer || passes[consumer] == null
                || (consumer != Llama2Kernel.OP_LOGITS && k.passLayer[pass + 1] != k.passLayer[pass])) {
            return false;
        }
        int n = tokensOf(consumer);
        MatmulProgram.Pass p = passFor(consumer, n);
        return p.usesMatvec(n) && p.canFuseNorm() && (fuseNorm == FuseNorm.ON || p.mvTierFor(n) == 1);
    }

    /** {@value #MV_TIER_PROPERTY}: 0 for auto, else the tier's token count. */
    static int mvTierFromSystemProperty() {
        return SystemProperties.autoOrInt(MV_TIER_PROPERTY, 1, 16, "a matvec tier 1..16");
    }

    private void add(int op, MatmulProgram.Shape shape, String suffix, String w0, String w1, String w2, String in,
                     String out) {
        passes[op] = (shape.rows() >= MatmulTiles.LARGE_ROWS ? largeProgram : program).pass(shape);
        if (longRowProgram != null && longRows.covers(shape.cols())) {
            longRowPasses[op] = longRowProgram.pass(shape);
        }
        if (shape.cols() >= longRows.minCols()) {
            passes[op].matvecMaxTokens(longRowMvMaxTokens);
            if (longRowPasses[op] != null) {
                longRowPasses[op].matvecMaxTokens(longRowMvMaxTokens);
            }
        }
        fields[op] = new String[]{w0 + suffix, w0 + "S", w1 + suffix, w1 + "S", w2 + suffix, w2 + "S", in, out, "kv",
                "ropeCos", "ropeSin", "tokenPos", "tokenSeq", "blockTable"};
    }

    /**
     * Token rows the classifier multiplies: the final norm wrote rows logitRow[0 .. logitRows) into xb rows
     * 0..logitRows-1, as for the Aparapi LOGITS pass. The one place the hand path reads that count.
     */
    private int logitsRows() {
        return k.logitRows;
    }

    /** Passes this hook has enqueued as hand kernels. */
    long enqueued() {
        return enqueued;
    }

    /** The most split-K column slices any pass used so far (1: none). */
    int maxSplit() {
        return maxSplit;
    }

    MatmulProgram program() {
        return program;
    }

    @Override
    public boolean enqueue(int pass, MemorySegment event) {
        int op = k.passOp[pass];
        if (op < 0 || op >= passes.length || (passes[op] == null && step == null)) {
            return false;
        }
        if (boundEpoch != launcher.bufferEpoch()) {
            bindAll();
        }
        if (tailLaunch == launcher.launches() && pass >= tailCoveredFrom && pass <= tailCoveredTo) {
            return true; // the persistent tail enqueued at this layer's WO pass did this pass's work
        }
        if (op == Llama2Kernel.OP_WO_RESIDUAL && tailAt(pass)) {
            enqueueTail(pass);
            return true;
        }
        if (passes[op] == null) {
            if (fusedNormAt(pass)) {
                // The next pass makes the normalised rows itself; xb is not written (nothing else reads it).
                fusedNorms++;
                return true;
            }
            boolean ours = step.enqueue(op, k.passLayer[pass], event);
            stepEnqueued += ours ? 1 : 0;
            return ours;
        }
        int n = tokensOf(op);
        MatmulProgram.Pass p = passFor(op, n);
        p.normMode(!fusedNormAt(pass - 1) ? MatmulProgram.NORM_OFF
                : op == Llama2Kernel.OP_LOGITS ? MatmulProgram.NORM_ROW_INDEX : MatmulProgram.NORM_ROWS);
        int layer = k.passLayer[pass];
        if (chunks != null) {
            // the chunk holding this layer and its first layer (the classifier is one matrix: chunk 0, from layer 0)
            int chunk = op != Llama2Kernel.OP_LOGITS ? chunks.split().chunkOf(layer) : 0;
            p.weights(chunkWeights[op][chunk], op != Llama2Kernel.OP_LOGITS ? chunks.split().firstLayer(chunk) : layer);
        }
        p.enqueue(n, layer, event, reduceEvent);
        lastPass[op] = p;
        enqueued++;
        tensorCorePasses += p.lastUsedTensorCores() ? 1 : 0;
        maxSplit = Math.max(maxSplit, p.lastSplit());
        return true;
    }

    private void bindAll() {
        for (int op = 0; op < passes.length; op++) {
            if (passes[op] == null) {
                continue;
            }
            for (int i = 0; i < MatmulProgram.BUFFER_ARGS.length; i++) {
                passes[op].bind(MatmulProgram.BUFFER_ARGS[i], launcher.buffer(fields[op][i]));
                if (longRowPasses[op] != null) {
                    longRowPasses[op].bind(MatmulProgram.BUFFER_ARGS[i], launcher.buffer(fields[op][i]));
                }
            }
        }
        if (chunks != null) {
            chunkWeights = new MemorySegment[passes.length][][];
            for (int op = 0; op < passes.length; op++) {
                if (passes[op] == null) {
                    continue;
                }
                chunkWeights[op] = new MemorySegment[chunks.split().chunks()][MatmulProgram.WEIGHT_ARGS.length];
                for (int c = 0; c < chunkWeights[op].length; c++) {
                    for (int i = 0; i < MatmulProgram.WEIGHT_ARGS.length; i++) {
                        // fields[op] starts with the weight fields in WEIGHT_ARGS order
                        MemorySegment own = chunks.buffer(fields[op][i], c);
                        chunkWeights[op][c][i] = own != null ? own : launcher.buffer(fields[op][i]);
                    }
                }
            }
        }
        if (step != null) {
            step.bindAll();
        }
        // The fused norms' inputs: the residual stream, the norm weights (per layer, the final one once), the rows
        // the classifier normalises.
        int[][] normed = {{Llama2Kernel.OP_QKV_ROPE, k.dim}, {Llama2Kernel.OP_FFN_SWIGLU, k.dim},
                {Llama2Kernel.OP_LOGITS, 0}};
        String[] weights = {"rmsAtt", "rmsFfn", "rmsFinal"};
        for (int i = 0; i < normed.length; i++) {
            for (MatmulProgram.Pass p : new MatmulProgram.Pass[]{passes[normed[i][0]], longRowPasses[normed[i][0]]}) {
                if (p != null) {
                    p.bindNorm(launcher.buffer("x"), launcher.buffer(weights[i]), launcher.buffer("logitRow"),
                            normed[i][1], k.eps);
                }
            }
        }
        boundEpoch = launcher.bufferEpoch();
    }

    /**
     * Makes the matmul passes read the weights of a model split by layers: chunk 0 from the launcher's fields, the
     * others from {@code chunks}; each pass binds the chunk of its layer and passes the layer's index in it.
     */
    void weightChunks(WeightChunks chunks) {
        this.chunks = chunks;
        this.boundEpoch = -1;
    }

    /** The step.cl kernels of the non-matmul passes, or null when those stay Aparapi's. */
    HandStep step() {
        return step;
    }

    /**
     * Forces the matvec tier (token count) of every pass whose program has it, for tests that compare tiers; 0
     * restores the smallest tier that holds the step's tokens.
     */
    void forceMvTier(int tokens) {
        for (MatmulProgram.Pass[] group : new MatmulProgram.Pass[][]{passes, longRowPasses}) {
            for (MatmulProgram.Pass p : group) {
                if (p != null && (tokens == 0 || java.util.Arrays.stream(p.mvTiers()).anyMatch(t -> t == tokens))) {
                    p.forceMvTier(tokens);
                }
            }
        }
    }

    /** The matvec tier (token count) op's last enqueue ran, 0 if it ran no matvec or never ran. */
    int lastMvTier(int op) {
        MatmulProgram.Pass p = lastPass[op];
        return p == null || !p.lastRanMatvec() ? 0 : p.lastMvTier();
    }

    /** Norm passes fused into the matvec after them (their own kernel skipped). */
    long fusedNorms() {
        return fusedNorms;
    }

    /** When norms are fused into the matvec after them ({@value #FUSE_NORM_PROPERTY}). */
    FuseNorm fuseNorm() {
        return fuseNorm;
    }

    /** Matmul passes that ran on the tensor-core kernel. */
    long tensorCorePasses() {
        return tensorCorePasses;
    }

    /** Non-matmul passes this hook has enqueued as step.cl kernels. */
    long stepEnqueued() {
        return stepEnqueued;
    }
}
