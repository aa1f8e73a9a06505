package io.stepstream.engine.llama;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.cpu.ComputePool;
import io.stepstream.engine.cpu.Kernels;
import io.stepstream.engine.cpu.VectorKernels;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.kv.PagedKvCache;
import io.stepstream.engine.tensor.QuantizedRows;
import io.stepstream.engine.tensor.WeightMatrix;
import jdk.incubator.vector.FloatVector;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.List;

/**
 * Llama 2, Llama 3 and Qwen2 on the CPU: one batched forward over {@link WeightMatrix} weights kept in their
 * file encoding. A step stacks every token of the batch into the rows of one activation matrix [T, dim], so
 * each weight matrix is streamed once per step for all sequences, its output rows split over the model's
 * compute pool. Grouped-query attention reads each token's own sequence from its paged KV cache, causally.
 * RoPE pairs elements as the file's layout says ({@link RopeLayout}), with Llama 3's per-frequency scaling when
 * the file has it; Qwen2 adds its q/k/v biases. Scratch buffers are reused across steps and only grow when a
 * batch is larger than any before. Every output element is computed in one fixed order whatever the batch or
 * thread split, so a sequence's logits are bitwise the same alone or batched. Not thread-safe: one step at a time.
 */
public final class LlamaModel implements Model {
    /**
     * System property: {@code true} runs the Q8_0 and Q4_0 matmuls as llama.cpp does, on the activations quantized
     * to Q8_0 (once per matmul input) with integer dot products ({@link WeightMatrix#matmul(QuantizedRows, float[],
     * int, io.stepstream.engine.cpu.ComputePool)}); unset or {@code false} keeps the float path (exact float
     * activations). Read when a model is created. Off by default: on this JDK's Vector API (no int8 or int16
     * dot-product operation) the integer kernels are not faster than the float ones (docs/benchmarks.md).
     */
    public static final String INT8_DOT_PROPERTY = "stepstream.cpu.int8dot";
    private static final int BLOCK = KvBlockPool.BLOCK_POSITIONS;
    private static final int LANES = VectorKernels.LANES;
    private static final jdk.incubator.vector.VectorSpecies<Float> FLOATS = VectorKernels.FLOATS;
    /**
     * How many matmul multiply-adds one attention multiply-add counts as against the parallel threshold: per
     * position it looks up a KV block, takes an exp in the softmax and sums values in scalar code, so a batch-1
     * step's attention (12 heads x a few dozen positions on a 110M model) costs tens of microseconds per layer
     * while its plain multiply-add count stays below the threshold and it ran on the caller alone.
     */
    private static final int ATTENTION_MAC_WEIGHT = 8;
    /**
     * Whether the work around the matmuls takes its faster forms: attention reads each position's keys and values
     * for a group of heads at once ({@link #attendGroup}), the swiglu and the softmax take their exponentials on
     * vectors ({@link VectorKernels#swiglu}, {@link VectorKernels#softmax}), norms go four rows at a time, an
     * interleaved rope runs on vectors (and {@link #TOKEN_SPLIT} may split the per-token work over the pool).
     * Every output bit is the same either way. System property
     * {@code stepstream.cpu.stepKernels} (default true; false: the session-6 forms), read once, for before/after
     * measurements in one build (docs/benchmarks.md, CPU session 7).
     */
    static final boolean STEP_KERNELS =
            Boolean.parseBoolean(System.getProperty("stepstream.cpu.stepKernels", "true"));
    /**
     * Whether {@link #perToken} splits norms, rope + KV stores and residuals over the pool. System property
     * {@code stepstream.cpu.tokenSplit}, default false: it takes no CPU time off (it moves ~2 ms of a 32-sequence
     * step off the caller alone) and its wall-time effect could not be measured on the shared 2-core VM, where 60
     * more pool runs a step are also 60 more chances to wait for a descheduled worker (docs/benchmarks.md, CPU
     * session 7); to be decided on a quiet host.
     */
    static final boolean TOKEN_SPLIT = Boolean.parseBoolean(System.getProperty("stepstream.cpu.tokenSplit", "false"));

    private final String name;
    private final ModelConfig config;
    private final LlamaWeights w;
    private final Tokenizer tokenizer;
    private final AutoCloseable backing;
    private final KvBlockPool pool;
    private final ComputePool compute;
    private final long parallelThreshold;
    /** Frequency of each rotation pair: theta^(-2p/headSize), divided by the pair's scaling factor. */
    private final float[] ropeFreq;
    private final float attentionScale;

    // Per-step scratch, grown on demand.
    private int tokenCapacity;
    private float[] x;
    private float[] xb;
    private float[] xb2;
    private float[] q;
    private float[] k;
    private float[] v;
    private float[] hb;
    private float[] hb2;
    private float[] ropeCos;
    private float[] ropeSin;
    /** Per token and head element: cos, and -sin / +sin at even / odd elements ({@link #vectorRope} only). */
    private float[] ropeCosLanes;
    private float[] ropeSinLanes;
    private int[] rowEntry;
    private int[] rowPos;
    private int entryCapacity;
    private PagedKvCache[] entryCache;
    private int[] entryLastRow;
    private float[] lastRows;
    private float[] lastLogits;
    /** Per worker: attention scores of the heads of one unit, grown on demand. */
    private final float[][] attScores;

    private final MatmulTask matmul = new MatmulTask();
    private final MatmulGroupTask matmulGroup = new MatmulGroupTask();
    private final boolean int8Dot = Boolean.getBoolean(INT8_DOT_PROPERTY);
    /** The current matmul input quantized to Q8_0 (integer-dot path only); reused by matmuls sharing the input. */
    private final QuantizedRows quantized = new QuantizedRows();
    private final AttentionTask attention = new AttentionTask();
    /** {@link #STEP_KERNELS} and {@link #TOKEN_SPLIT} unless a test sets them ({@link #useStepKernels}). */
    private boolean stepKernels = STEP_KERNELS;
    private boolean tokenSplit = TOKEN_SPLIT;
    /** Where {@link #profileOps} adds each op's CPU time, or null (the default: no clock reads). */
    private long[] opNanos;

    /**
     * The parts of a forward pass {@link #profileOps} splits the calling thread's CPU time into. MATMUL includes,
     * on the integer-dot path, quantizing the inputs; SWIGLU is timed inside the gate/up pool run (its chunks that
     * the calling thread takes) and taken out of MATMUL;
     * ROPE_KV the q/k/v biases, rope and the KV cache stores; OTHER the embedding lookups, the rope angles and
     * copying out the logits.
     */
    public enum Op { NORM, MATMUL, ROPE_KV, ATTENTION, RESIDUAL, OTHER, SWIGLU }

    private static final ThreadMXBean CPU = ManagementFactory.getThreadMXBean();

    /**
     * @param backing closed with the model (the file mapping the weights point into), or null
     */
    public LlamaModel(String name, LlamaWeights weights, Tokenizer tokenizer, ModelOptions options,
                      AutoCloseable backing) {
        this.name = name;
        this.config = weights.config();
        this.w = weights;
        if (tokenizer.vocabSize() > config.vocabSize()) {
            throw new IllegalArgumentException("tokenizer has " + tokenizer.vocabSize() + " tokens, model only "
                    + config.vocabSize());
        }
        this.tokenizer = tokenizer;
        this.backing = backing;
        int blocksPerSequence = (config.contextLength() + BLOCK - 1) / BLOCK;
        int blocks = options.kvBlocks() > 0 ? options.kvBlocks()
                : (int) Math.min(Integer.MAX_VALUE - 16, (long) ModelOptions.DEFAULT_FULL_SEQUENCES * blocksPerSequence);
        this.pool = new KvBlockPool(config.nLayers(), config.kvDim(), blocks);
        this.parallelThreshold = options.parallelThreshold();
        int hs = config.headSize();
        int pairs = hs / 2;
        this.ropeFreq = new float[pairs];
        float[] factors = weights.ropeFreqFactors();
        for (int p = 0; p < pairs; p++) {
            // the same float expression as llama2.c's run.c, so llama2.c checkpoints reproduce its tokens
            float freq = 1.0f / (float) Math.pow(config.ropeTheta(), (2 * p) / (float) hs);
            ropeFreq[p] = factors == null ? freq : freq / factors[p];
        }
        this.attentionScale = (float) Math.sqrt(hs);
        this.compute = new ComputePool(options.computeThreads(), "stepstream-" + name);
        this.attScores = new float[compute.threads()][];
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public LlamaWeights weights() {
        return w;
    }

    public KvBlockPool kvBlockPool() {
        return pool;
    }

    @Override
    public KvCache newKvCache() {
        return new PagedKvCache(pool, config.contextLength());
    }

    @Override
    public void forward(ForwardBatch batch, float[][] logits) {
        List<ForwardBatch.Entry> entries = batch.entries();
        int e = entries.size();
        if (e == 0) {
            return;
        }
        pool.reserveBatch(name, config, entries, logits);
        int tokens = batch.totalTokens();
        growScratch(tokens, e);
        long clock = opStart();
        int dim = config.dim();
        int row = 0;
        for (int i = 0; i < e; i++) {
            ForwardBatch.Entry en = entries.get(i);
            PagedKvCache cache = (PagedKvCache) en.cache();
            entryCache[i] = cache;
            int start = cache.length();
            for (int j = 0; j < en.length(); j++, row++) {
                rowEntry[row] = i;
                rowPos[row] = start + j;
                w.tokenEmbedding().decodeRow(en.tokens()[en.offset() + j], x, row * dim);
            }
            entryLastRow[i] = row - 1;
        }
        ropeAngles(tokens);
        clock = opEnd(Op.OTHER, clock);
        for (int l = 0; l < config.nLayers(); l++) {
            clock = layer(w.layers().get(l), l, tokens, clock);
        }
        for (int i = 0; i < e; i++) {
            Kernels.rmsnorm(lastRows, i * dim, x, entryLastRow[i] * dim, w.outputNorm(), dim, config.rmsNormEps());
        }
        clock = opEnd(Op.NORM, clock);
        int vocab = config.vocabSize();
        matmul(w.output(), lastRows, quantizeFor(lastRows, e, w.output(), null, null), e, lastLogits);
        clock = opEnd(Op.MATMUL, clock);
        for (int i = 0; i < e; i++) {
            System.arraycopy(lastLogits, i * vocab, logits[i], 0, vocab);
            ForwardBatch.Entry en = entries.get(i);
            entryCache[i].advance(entryCache[i].length() + en.length());
            entryCache[i] = null;
        }
        opEnd(Op.OTHER, clock);
    }

    /** For tests: the step kernels' fast forms and the per-token split on or off for this model. */
    void useStepKernels(boolean on, boolean splitTokens) {
        this.stepKernels = on;
        this.tokenSplit = splitTokens;
    }

    /**
     * From now on, adds each forward op's thread CPU time of the calling thread to {@code nanosByOp[op.ordinal()]}
     * ({@link Op}; null: stop). Work that pool threads take is not counted, so the split is the whole step only on
     * a one-thread model. For profiling; off by default.
     */
    public void profileOps(long[] nanosByOp) {
        if (nanosByOp != null && nanosByOp.length < Op.values().length) {
            throw new IllegalArgumentException("nanosByOp needs " + Op.values().length + " slots, got "
                    + nanosByOp.length);
        }
        this.opNanos = nanosByOp;
    }

    private long opStart() {
        return opNanos == null ? 0 : CPU.getCurrentThreadCpuTime();
    }

    /** Adds the time since {@code since} to op; returns now (0 when not profiling). */
    private long opEnd(Op op, long since) {
        if (opNanos == null) {
            return 0;
        }
        long now = CPU.getCurrentThreadCpuTime();
        opNanos[op.ordinal()] += now - since;
        return now;
    }

    /** One layer; {@code clock} and the result are {@link #opEnd} marks. */
    private long layer(LlamaWeights.Layer y, int l, int tokens, long clock) {
        norms(y.attnNorm(), tokens);
        clock = opEnd(Op.NORM, clock);
        QuantizedRows qx = quantizeFor(xb, tokens, y.wq(), y.wk(), y.wv());
        matmul3(y.wq(), q, y.wk(), k, y.wv(), v, xb, qx, tokens);
        clock = opEnd(Op.MATMUL, clock);
        if (y.bq() != null) {
            addBias(q, y.bq(), tokens);
            addBias(k, y.bk(), tokens);
            addBias(v, y.bv(), tokens);
        }
        perToken(TokenStage.ROPE_KV, null, l, tokens);
        clock = opEnd(Op.ROPE_KV, clock);
        attend(l, tokens); // writes xb
        clock = opEnd(Op.ATTENTION, clock);
        matmul(y.wo(), xb, quantizeFor(xb, tokens, y.wo(), null, null), tokens, xb2);
        clock = opEnd(Op.MATMUL, clock);
        perToken(TokenStage.RESIDUAL, null, l, tokens);
        clock = opEnd(Op.RESIDUAL, clock);
        norms(y.ffnNorm(), tokens);
        clock = opEnd(Op.NORM, clock);
        qx = quantizeFor(xb, tokens, y.gate(), y.up(), null);
        gateUpSwiglu(y.gate(), y.up(), xb, qx, tokens); // hb = swiglu(gate xb) * (up xb)
        matmul(y.down(), hb, quantizeFor(hb, tokens, y.down(), null, null), tokens, xb2);
        clock = opEnd(Op.MATMUL, clock);
        perToken(TokenStage.RESIDUAL, null, l, tokens);
        return opEnd(Op.RESIDUAL, clock);
    }

    /** The per-token work between the matmuls that {@link TokenTask} splits over the pool. */
    private enum TokenStage { NORM, ROPE_KV, RESIDUAL }

    /**
     * One stage over every token's row: split over the pool (whole tokens per chunk) with {@link #TOKEN_SPLIT} and
     * enough tokens to share out, else on the caller. Rows are independent, so the split changes no bit; at 32
     * sequences on two threads this serial share is ~2 ms of a ~45 ms step.
     */
    private void perToken(TokenStage stage, float[] normWeight, int l, int tokens) {
        TokenTask task = tokenTask;
        task.stage = stage;
        task.normWeight = normWeight;
        task.layer = l;
        compute.run(task, tokens, grain(tokens), stepKernels && tokenSplit && tokens >= 2 * compute.threads());
        task.normWeight = null;
    }

    private final TokenTask tokenTask = new TokenTask();

    private final class TokenTask implements ComputePool.RangeTask {
        TokenStage stage;
        float[] normWeight;
        int layer;

        @Override
        public void run(int from, int to, int worker) {
            switch (stage) {
                case NORM -> normRows(normWeight, from, to);
                case ROPE_KV -> ropeAndStore(layer, from, to);
                case RESIDUAL -> {
                    int dim = config.dim();
                    for (int i = from * dim, n = to * dim; i < n; i++) {
                        x[i] += xb2[i];
                    }
                }
            }
        }
    }

    /** Rope of tokens [from, to)'s q and k rows, and their keys and values into the KV cache. */
    private void ropeAndStore(int l, int from, int to) {
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hs = config.headSize();
        boolean vectorRope = vectorRope();
        for (int t = from; t < to; t++) {
            if (vectorRope) {
                VectorKernels.ropeInterleaved(q, t * dim, dim, ropeCosLanes, ropeSinLanes, t * hs, hs);
                VectorKernels.ropeInterleaved(k, t * kvDim, kvDim, ropeCosLanes, ropeSinLanes, t * hs, hs);
            } else {
                rope(q, t * dim, config.nHeads(), t);
                rope(k, t * kvDim, config.nKvHeads(), t);
            }
            storeKv(l, t);
        }
    }

    /** xb = rmsnorm(x) row by row for {@code tokens} rows. */
    private void norms(float[] weight, int tokens) {
        perToken(TokenStage.NORM, weight, -1, tokens);
    }

    private void normRows(float[] weight, int from, int to) {
        int dim = config.dim();
        if (stepKernels) {
            VectorKernels.rmsnormRows(xb, x, weight, dim, config.rmsNormEps(), from, to);
            return;
        }
        for (int t = from; t < to; t++) {
            Kernels.rmsnorm(xb, t * dim, x, t * dim, weight, dim, config.rmsNormEps());
        }
    }

    /** Whether rope runs on vectors: interleaved pairs, heads a whole number of vectors, step kernels on. */
    private boolean vectorRope() {
        return stepKernels && w.rope() == RopeLayout.INTERLEAVED && config.headSize() % LANES == 0;
    }

    private static void addBias(float[] out, float[] bias, int tokens) {
        int n = bias.length;
        for (int t = 0; t < tokens; t++) {
            int o = t * n;
            for (int i = 0; i < n; i++) {
                out[o + i] += bias[i];
            }
        }
    }

    /** cos and sin of every rotation pair at each token's position, once per step for all layers. */
    private void ropeAngles(int tokens) {
        int pairs = ropeFreq.length;
        for (int t = 0; t < tokens; t++) {
            int pos = rowPos[t];
            for (int p = 0; p < pairs; p++) {
                float angle = pos * ropeFreq[p];
                ropeCos[t * pairs + p] = (float) Math.cos(angle);
                ropeSin[t * pairs + p] = (float) Math.sin(angle);
            }
        }
        if (vectorRope()) {
            int hs = config.headSize();
            for (int t = 0; t < tokens; t++) {
                for (int p = 0; p < pairs; p++) {
                    float c = ropeCos[t * pairs + p];
                    float sn = ropeSin[t * pairs + p];
                    ropeCosLanes[t * hs + 2 * p] = c;
                    ropeCosLanes[t * hs + 2 * p + 1] = c;
                    ropeSinLanes[t * hs + 2 * p] = -sn;
                    ropeSinLanes[t * hs + 2 * p + 1] = sn;
                }
            }
        }
    }

    /** Rotates {@code heads} heads of token t's row at {@code base} in place. */
    private void rope(float[] row, int base, int heads, int t) {
        int hs = config.headSize();
        int pairs = hs / 2;
        int angles = t * pairs;
        boolean interleaved = w.rope() == RopeLayout.INTERLEAVED;
        for (int h = 0; h < heads; h++) {
            int o = base + h * hs;
            for (int p = 0; p < pairs; p++) {
                float c = ropeCos[angles + p];
                float s = ropeSin[angles + p];
                int i0 = interleaved ? o + 2 * p : o + p;
                int i1 = interleaved ? i0 + 1 : i0 + pairs;
                float a = row[i0];
                float b = row[i1];
                row[i0] = a * c - b * s;
                row[i1] = a * s + b * c;
            }
        }
    }

    private void storeKv(int l, int t) {
        int kvDim = config.kvDim();
        int pos = rowPos[t];
        float[] block = pool.block(entryCache[rowEntry[t]].blockTable()[pos / BLOCK]);
        System.arraycopy(k, t * kvDim, block, pool.keyOffset(l, pos % BLOCK), kvDim);
        System.arraycopy(v, t * kvDim, block, pool.valueOffset(l, pos % BLOCK), kvDim);
    }

    private void attend(int l, int tokens) {
        long work = 0;
        for (int t = 0; t < tokens; t++) {
            work += (rowPos[t] + 1L) * 2 * config.dim();
        }
        int heads = config.nHeads();
        // a unit is one token's group of heads: whole tokens when there are enough of them to share out, else
        // each token's heads cut into groups, so that a small batch still gives every thread some units
        int groups = stepKernels ? Math.min(heads, Math.max(1, Math.ceilDiv(compute.threads() * 4, tokens))) : heads;
        int perGroup = Math.ceilDiv(heads, groups);
        groups = Math.ceilDiv(heads, perGroup);
        int units = tokens * groups;
        attention.layer = l;
        attention.groups = groups;
        attention.perGroup = perGroup;
        compute.run(attention, units, grain(units), work * ATTENTION_MAC_WEIGHT >= parallelThreshold);
    }

    /**
     * Causal attention of token t's heads [h0, h1) over positions 0..pos of its sequence, position by position:
     * each position's keys of all those heads, then (after each head's softmax) its values, are read as one
     * contiguous run of the KV block, where {@link #attendUnit} walks one head at a time through every position
     * at the block's row stride (3 KB on a 768-wide model) and so reads the same bytes in short strided pieces.
     * Per head the operations are {@link #attendUnit}'s, in the same order: the same score dot products, the same
     * softmax (its exponentials on vectors, bitwise, {@link VectorKernels#softmax}), and each output element a float
     * multiply then a float add per position onto a sum that starts at +0 (kept in xb instead of registers, as the
     * heads take turns per position), so every bit is the same.
     * {@code att} holds at least (h1 - h0) * (pos + 1) floats.
     */
    private void attendGroup(int l, int t, int h0, int h1, float[] att) {
        int dim = config.dim();
        int hs = config.headSize();
        int kvShare = config.nHeads() / config.nKvHeads();
        int pos = rowPos[t];
        int n = pos + 1;
        int[] table = entryCache[rowEntry[t]].blockTable();
        int qBase = t * dim;
        for (int j = 0; j <= pos; j++) {
            float[] block = pool.block(table[j / BLOCK]);
            int kb = pool.keyOffset(l, j % BLOCK);
            for (int h = h0; h < h1; h++) {
                att[(h - h0) * n + j] = VectorKernels.dot(q, qBase + h * hs, block, kb + h / kvShare * hs, hs)
                        / attentionScale;
            }
        }
        for (int h = h0; h < h1; h++) {
            VectorKernels.softmax(att, (h - h0) * n, n);
        }
        Arrays.fill(xb, qBase + h0 * hs, qBase + h1 * hs, 0f);
        for (int j = 0; j <= pos; j++) {
            float[] block = pool.block(table[j / BLOCK]);
            int vb = pool.valueOffset(l, j % BLOCK);
            for (int h = h0; h < h1; h++) {
                addWeightedValue(att[(h - h0) * n + j], block, vb + h / kvShare * hs, qBase + h * hs, hs);
            }
        }
    }

    /** xb[out + i] = xb[out + i] + a * v[vo + i] for i < n: a float multiply, then a float add (no fma). */
    private void addWeightedValue(float a, float[] v, int vo, int out, int n) {
        int c = 0;
        for (int bound = n - n % LANES; c < bound; c += LANES) {
            FloatVector.fromArray(FLOATS, xb, out + c)
                    .add(FloatVector.fromArray(FLOATS, v, vo + c).mul(a))
                    .intoArray(xb, out + c);
        }
        for (; c < n; c++) {
            xb[out + c] += a * v[vo + c];
        }
    }

    /** Causal attention of one (token, head) unit over positions 0..pos of the token's own sequence. */
    private void attendUnit(int l, int t, int h, float[] att) {
        int dim = config.dim();
        int hs = config.headSize();
        int kvHead = h / (config.nHeads() / config.nKvHeads());
        int pos = rowPos[t];
        int[] table = entryCache[rowEntry[t]].blockTable();
        int qo = t * dim + h * hs;
        int headOffset = kvHead * hs;
        for (int j = 0; j <= pos; j++) {
            float[] block = pool.block(table[j / BLOCK]);
            int ko = pool.keyOffset(l, j % BLOCK) + headOffset;
            // vector lanes: a scalar float sum is one dependent add per element, which at 32 sequences and
            // a few hundred positions made attention a sizeable part of the step
            att[j] = VectorKernels.dot(q, qo, block, ko, hs) / attentionScale;
        }
        Kernels.softmax(att, 0, pos + 1);
        weightedValues(l, table, headOffset, pos, att, t * dim + h * hs);
    }

    /**
     * xb[out + i] = sum over positions j = 0..pos, in order, of att[j] * value_j[i] for i < headSize: per element
     * a float multiply then a float add onto a sum that starts at +0 (no fused multiply-add), the arithmetic of
     * the plain loop {@code xb[out + i] += att[j] * v[i]} it replaces, so every bit is the same. The sums live in
     * vector registers, four vectors of the head at a time, across all positions (the plain loop loaded and
     * stored xb for every position and element: 10% of a 32-sequence step's CPU time went to attention).
     */
    private void weightedValues(int l, int[] table, int headOffset, int pos, float[] att, int out) {
        int hs = config.headSize();
        int c = 0;
        for (; c + 4 * LANES <= hs; c += 4 * LANES) {
            FloatVector s0 = FloatVector.zero(FLOATS);
            FloatVector s1 = s0, s2 = s0, s3 = s0;
            for (int j = 0; j <= pos; j++) {
                float[] block = pool.block(table[j / BLOCK]);
                int vo = pool.valueOffset(l, j % BLOCK) + headOffset + c;
                float a = att[j];
                s0 = s0.add(FloatVector.fromArray(FLOATS, block, vo).mul(a));
                s1 = s1.add(FloatVector.fromArray(FLOATS, block, vo + LANES).mul(a));
                s2 = s2.add(FloatVector.fromArray(FLOATS, block, vo + 2 * LANES).mul(a));
                s3 = s3.add(FloatVector.fromArray(FLOATS, block, vo + 3 * LANES).mul(a));
            }
            s0.intoArray(xb, out + c);
            s1.intoArray(xb, out + c + LANES);
            s2.intoArray(xb, out + c + 2 * LANES);
            s3.intoArray(xb, out + c + 3 * LANES);
        }
        for (; c + LANES <= hs; c += LANES) {
            FloatVector s = FloatVector.zero(FLOATS);
            for (int j = 0; j <= pos; j++) {
                float[] block = pool.block(table[j / BLOCK]);
                s = s.add(FloatVector.fromArray(FLOATS, block, pool.valueOffset(l, j % BLOCK) + headOffset + c)
                        .mul(att[j]));
            }
            s.intoArray(xb, out + c);
        }
        for (; c < hs; c++) {
            float s = 0f;
            for (int j = 0; j <= pos; j++) {
                s += att[j] * pool.block(table[j / BLOCK])[pool.valueOffset(l, j % BLOCK) + headOffset + c];
            }
            xb[out + c] = s;
        }
    }

    /** Whether {@code weight}'s matmuls take quantized activations (the {@link #INT8_DOT_PROPERTY} path). */
    private boolean intDot(WeightMatrix weight) {
        return int8Dot && weight != null && weight.hasIntegerDot();
    }

    /**
     * {@code tokens} rows of {@code in} quantized once for the up to three matmuls that read them (null entries
     * ignored), or null when none of them takes quantized activations.
     */
    private QuantizedRows quantizeFor(float[] in, int tokens, WeightMatrix a, WeightMatrix b, WeightMatrix c) {
        if (!intDot(a) && !intDot(b) && !intDot(c)) {
            return null;
        }
        return quantized.quantize(in, 0, tokens, a.cols());
    }

    /**
     * out[t, :] = W x[t, :] for all tokens: one pass over W, its rows split over the pool; from {@code qin} (the
     * same rows quantized) when W takes quantized activations.
     */
    private void matmul(WeightMatrix weight, float[] in, QuantizedRows qin, int tokens, float[] out) {
        matmul.set(weight, in, intDot(weight) ? qin : null, tokens, out);
        long work = (long) tokens * weight.rows() * weight.cols();
        compute.run(matmul, weight.rows(), WeightMatrix.rowGrain(weight.rows(), compute.threads()), work >= parallelThreshold);
        matmul.set(null, null, null, 0, null);
    }

    /**
     * q/k/v (three matrices over the same input) as one pool run instead of three: the row chunks of the three
     * (each matrix split by {@link WeightMatrix#rowGrain} as alone) form one index space, so a batch-1 step pays
     * one handoff and one end-of-run wait where it paid three. Rows are independent, so every output element is
     * computed exactly as by three separate {@link #matmul} calls.
     */
    private void matmul3(WeightMatrix a, float[] outA, WeightMatrix b, float[] outB, WeightMatrix c, float[] outC,
                         float[] in, QuantizedRows qin, int tokens) {
        MatmulGroupTask g = matmulGroup;
        g.in = in;
        g.tokens = tokens;
        g.pairedSwiglu = false;
        g.count = 0;
        g.add(a, outA, intDot(a) ? qin : null, compute.threads());
        g.add(b, outB, intDot(b) ? qin : null, compute.threads());
        g.add(c, outC, intDot(c) ? qin : null, compute.threads());
        runGroup(g, tokens);
    }

    /**
     * hb = swiglu(gate x) * (up x) as one pool run: a chunk computes its rows of gate and of up, then the swiglu
     * of those rows, so neither a second handoff for up nor a serial swiglu pass remains. Same float operations
     * per element as gate and up computed whole and swiglu over all of hb.
     */
    private void gateUpSwiglu(WeightMatrix gate, WeightMatrix up, float[] in, QuantizedRows qin, int tokens) {
        MatmulGroupTask g = matmulGroup;
        g.in = in;
        g.tokens = tokens;
        g.pairedSwiglu = true;
        g.count = 0;
        g.add(gate, hb, intDot(gate) ? qin : null, compute.threads());
        g.add(up, hb2, intDot(up) ? qin : null, compute.threads());
        g.firstChunk[1] = g.firstChunk[2] = g.chunks(0); // one index space: the gate's chunks, each with up's rows
        runGroup(g, tokens);
    }

    private void runGroup(MatmulGroupTask g, int tokens) {
        long work = 0;
        for (int i = 0; i < g.count; i++) {
            work += (long) tokens * g.weights[i].rows() * g.weights[i].cols();
        }
        compute.run(g, g.firstChunk[g.count], 1, work >= parallelThreshold);
        g.clear();
    }

    /** About four chunks per thread, so uneven chunks still balance. */
    private int grain(int size) {
        return Math.max(1, size / (compute.threads() * 4));
    }

    private static final class MatmulTask implements ComputePool.RangeTask {
        WeightMatrix weight;
        float[] in;
        QuantizedRows quantized;
        int tokens;
        float[] out;

        void set(WeightMatrix weight, float[] in, QuantizedRows quantized, int tokens, float[] out) {
            this.weight = weight;
            this.in = in;
            this.quantized = quantized;
            this.tokens = tokens;
            this.out = out;
        }

        @Override
        public void run(int from, int to, int worker) {
            if (quantized != null) {
                weight.matmulRows(quantized, out, 0, from, to);
                return;
            }
            weight.matmulRows(in, 0, tokens, out, 0, from, to);
        }
    }

    /**
     * Matmuls over one input as one pool task. Unit u of [0, firstChunk[count]) is chunk u - firstChunk[i] of
     * matrix i's rows (split as {@link WeightMatrix#rowGrain} splits it alone). Paired swiglu (gate and up, same
     * row count): unit u is chunk u of both, and its rows of hb get the swiglu once both are computed.
     */
    private final class MatmulGroupTask implements ComputePool.RangeTask {
        final WeightMatrix[] weights = new WeightMatrix[3];
        final float[][] outs = new float[3][];
        final QuantizedRows[] quantized = new QuantizedRows[3];
        final int[] grains = new int[3];
        final int[] firstChunk = new int[4];
        int count;
        float[] in;
        int tokens;
        boolean pairedSwiglu;

        void add(WeightMatrix weight, float[] out, QuantizedRows q, int threads) {
            weights[count] = weight;
            outs[count] = out;
            quantized[count] = q;
            grains[count] = WeightMatrix.rowGrain(weight.rows(), threads);
            firstChunk[count + 1] = firstChunk[count] + chunks(count);
            count++;
        }

        int chunks(int i) {
            return (weights[i].rows() + grains[i] - 1) / grains[i];
        }

        void clear() {
            Arrays.fill(weights, null);
            Arrays.fill(outs, null);
            Arrays.fill(quantized, null);
            in = null;
            count = 0;
        }

        @Override
        public void run(int from, int to, int worker) {
            for (int u = from; u < to; u++) {
                if (pairedSwiglu) {
                    int r0 = u * grains[0];
                    int r1 = Math.min(weights[0].rows(), r0 + grains[0]);
                    rows(0, r0, r1);
                    rows(1, r0, r1);
                    int hidden = weights[0].rows();
                    long[] profile = worker == 0 ? opNanos : null;
                    long start = profile == null ? 0 : CPU.getCurrentThreadCpuTime();
                    for (int t = 0; t < tokens; t++) {
                        if (stepKernels) {
                            VectorKernels.swiglu(hb, hb2, t * hidden + r0, t * hidden + r1);
                        } else {
                            Kernels.swiglu(hb, hb2, t * hidden + r0, t * hidden + r1);
                        }
                    }
                    if (profile != null) {
                        long spent = CPU.getCurrentThreadCpuTime() - start;
                        profile[Op.SWIGLU.ordinal()] += spent;
                        profile[Op.MATMUL.ordinal()] -= spent; // the layer adds the whole pool run to MATMUL
                    }
                    continue;
                }
                int i = 0;
                while (u >= firstChunk[i + 1]) {
                    i++;
                }
                int r0 = (u - firstChunk[i]) * grains[i];
                rows(i, r0, Math.min(weights[i].rows(), r0 + grains[i]));
            }
        }

        private void rows(int i, int r0, int r1) {
            if (quantized[i] != null) {
                weights[i].matmulRows(quantized[i], outs[i], 0, r0, r1);
            } else {
                weights[i].matmulRows(in, 0, tokens, outs[i], 0, r0, r1);
            }
        }
    }

    private final class AttentionTask implements ComputePool.RangeTask {
        int layer;
        /** Units per token, and heads per unit (the last may have fewer); one head each without STEP_KERNELS. */
        int groups;
        int perGroup;

        @Override
        public void run(int from, int to, int worker) {
            int heads = config.nHeads();
            for (int u = from; u < to; u++) {
                int t = u / groups;
                int h0 = (u % groups) * perGroup;
                int h1 = Math.min(heads, h0 + perGroup);
                float[] att = scores(worker, (h1 - h0) * (rowPos[t] + 1));
                if (stepKernels) {
                    attendGroup(layer, t, h0, h1, att);
                } else {
                    attendUnit(layer, t, h0, att);
                }
            }
        }

        private float[] scores(int worker, int size) {
            float[] att = attScores[worker];
            if (att == null || att.length < size) {
                att = new float[Math.max(size, config.nHeads() * 64)];
                attScores[worker] = att;
            }
            return att;
        }
    }

    private void growScratch(int tokens, int entries) {
        if (tokens > tokenCapacity) {
            int dim = config.dim();
            int kvDim = config.kvDim();
            int hidden = config.hiddenDim();
            x = new float[tokens * dim];
            xb = new float[tokens * dim];
            xb2 = new float[tokens * dim];
            q = new float[tokens * dim];
            k = new float[tokens * kvDim];
            v = new float[tokens * kvDim];
            hb = new float[tokens * hidden];
            hb2 = new float[tokens * hidden];
            ropeCos = new float[tokens * ropeFreq.length];
            ropeSin = new float[tokens * ropeFreq.length];
            ropeCosLanes = new float[tokens * config.headSize()];
            ropeSinLanes = new float[tokens * config.headSize()];
            rowEntry = new int[tokens];
            rowPos = new int[tokens];
            tokenCapacity = tokens;
        }
        if (entries > entryCapacity) {
            entryCache = new PagedKvCache[entries];
            entryLastRow = new int[entries];
            lastRows = new float[entries * config.dim()];
            lastLogits = new float[entries * config.vocabSize()];
            entryCapacity = entries;
        }
    }

    @Override
    public void close() {
        compute.close();
        if (backing != null) {
            try {
                backing.close();
            } catch (Exception e) {
                throw new IllegalStateException("model " + name + ": closing its file failed: " + e, e);
            }
        }
    }
}
