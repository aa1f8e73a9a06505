package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.cpu.ComputePool;
import io.stepstream.engine.cpu.Kernels;
import io.stepstream.engine.cpu.VectorKernels;
import io.stepstream.engine.llama.RopeLayout;
import io.stepstream.engine.tensor.WeightMatrix;
import io.stepstream.engine.format.safetensors.HfConfig;
import io.stepstream.engine.format.safetensors.SafetensorsCheckpoint;
import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.engine.tokenizer.TokenType;
import io.stepstream.engine.tokenizer.VocabTokenizer;
import io.stepstream.engine.sparse.PatternHandle;
import io.stepstream.engine.sparse.SparseDBuilder;
import io.stepstream.engine.sparse.SparsePattern;
import io.stepstream.engine.sparse.SparseStep;

import java.util.List;

/**
 * A masked diffusion language model (LLaDA style) on the CPU in float32: a Llama whose attention has no mask
 * at all, so every position sees the whole canvas. By default there is no KV cache: each denoising step runs the
 * whole canvas again, since any position may have changed (Fast-dLLM's approximate cache, below, is opt-in).
 *
 * <p>One {@link #forward} serves many requests: every canvas's tokens become rows of one activation matrix, so
 * each weight matrix is streamed once per step for the whole batch, and only the rows whose logits a request
 * asked for go through the final norm and the classifier (the positions outside LLaDA's current block cannot
 * change its decisions, so skipping them is exact). Every output element is summed in one fixed order
 * whatever the batch, so a canvas's logits are bitwise identical alone or batched. Scratch is reused and only
 * grows. Not thread-safe: one step at a time.
 *
 * <p>Sparse attention (SparseD): an input that carries a {@link SparseStep} at or past its policy's switch step
 * attends through its request's {@link SparsePattern} from the model's {@link PatternCache}: each query row scores
 * only the key blocks its query block keeps. On a miss (the switch step itself, or after an eviction) that step
 * runs dense and a {@link SparseDBuilder} builds the pattern from the same queries and keys, then stores it. Dense
 * rows and a pattern keeping every block run the same float operations, so they agree bitwise.
 *
 * <p>The same forward serves Dream ({@link DiffusionFamily#DREAM}), a bidirectional Qwen2: its q/k/v biases are
 * added after the projections and its RoPE uses the layout config.json implies ({@link #ropeLayout()}). The forward
 * returns each position's own output; Dream's one-position shift is the generation's business
 * ({@link DreamGeneration} asks for the rows one position earlier).
 *
 * <p>Fast-dLLM cache: an input that carries a {@link DlmCacheStep} keeps its request's keys and values in the
 * model's {@link DlmKvCache}. A refresh step runs the whole canvas and writes every layer's (RoPE-rotated) keys and
 * values into the request's entry; a reuse step runs only the rows its mode recomputes, writes their fresh keys and
 * values over the entry's, and attends over the entry's whole canvas. Cached rows attend through the same
 * {@link CanvasAttention} as dense ones (only the key and value arrays differ, laid out alike), so a refresh step's
 * logits are bitwise those of an uncached step, and cached and uncached inputs batch freely. A refused entry (over
 * the cap) or a reuse step without one runs the whole canvas uncached.
 */
public final class DiffusionModel implements AutoCloseable {
    private final String name;
    private final DiffusionFamily family;
    private final RopeLayout ropeLayout;
    private final HfConfig hfConfig;
    private final ModelConfig config;
    private final DiffusionWeights w;
    private final Tokenizer tokenizer;
    private final int maskId;
    private final ComputePool compute;
    private final long parallelThreshold;
    private final float[] ropeCos;
    private final float[] ropeSin;
    private final float attentionScale;
    private final PatternCache patternCache;
    private final DlmKvCache kvCache;

    // Scratch, grown on demand: rows = all canvas tokens of a step, outputs = rows whose logits are wanted.
    private int rowCapacity;
    private float[] x;
    private float[] xb;
    private float[] xb2;
    private float[] q;
    private float[] k;
    private float[] v;
    private float[] hb;
    private float[] hb2;
    private int[] rowPos;
    /** First row of the canvas each row belongs to, and that canvas's length: the keys a row attends to. */
    private int[] rowCanvasStart;
    private int[] rowCanvasLength;
    private int outputCapacity;
    private float[] outputRows;
    private float[] outputLogits;
    private final AttentionScratch[] attScratch;
    private final CanvasAttention canvasAttention;
    /** This step's attention tiles: first row and row count of each. */
    private int[] tileStart = new int[0];
    private int[] tileRows = new int[0];
    private int tiles;
    /** Per batch input of the current step: the pattern it attends through, or the builder it feeds (else null). */
    private SparsePattern[] canvasPattern = new SparsePattern[0];
    private SparseDBuilder[] canvasBuilder = new SparseDBuilder[0];
    /** Per batch input: its Fast-dLLM cache entry (else null), the first canvas position and count of its rows, and
     *  its first row in the step's activation matrix. */
    private DlmKvCache.Entry[] canvasCache = new DlmKvCache.Entry[0];
    private int[] canvasRowFrom = new int[0];
    private int[] canvasRows = new int[0];
    private int[] canvasFirstRow = new int[0];
    private int[] rowCanvas;
    private int batchSize;
    private int currentLayer;
    /** Set only during {@link #forwardProbed}: sees each layer's queries and keys. */
    private QueryKeyProbe probe;

    /**
     * The weights as Vector API matrices (tiled over rows and canvas tokens, bitwise batch-invariant), made
     * on first use; keyed by identity because the forward is single-threaded and the arrays never change.
     */
    private final java.util.IdentityHashMap<float[], WeightMatrix> matrices = new java.util.IdentityHashMap<>();
    private final AttentionTask attention = new AttentionTask();
    private final RowwiseTask rowwise = new RowwiseTask();
    private final BuildTask build = new BuildTask();

    /**
     * @param hfConfig  the checkpoint's config.json; must describe a bidirectional model with a mask_token_id, and
     *                  (LLaDA style) interleaved RoPE or (model_type Dream) a Qwen2 with q/k/v biases
     * @param tokenizer ids below the mask id (the mask has no text)
     */
    public DiffusionModel(String name, HfConfig hfConfig, SafetensorsCheckpoint weights, Tokenizer tokenizer,
                          ModelOptions options) {
        this(name, hfConfig, weights, tokenizer, options, PatternCache.withDefaultCap());
    }

    /** As above, with the cache that holds the sparse patterns of this model's requests. */
    public DiffusionModel(String name, HfConfig hfConfig, SafetensorsCheckpoint weights, Tokenizer tokenizer,
                          ModelOptions options, PatternCache patternCache) {
        this(name, hfConfig, weights, tokenizer, options, patternCache, DlmKvCache.withDefaultCap());
    }

    /** As above, with the store that holds the Fast-dLLM keys and values of this model's cached requests. */
    public DiffusionModel(String name, HfConfig hfConfig, SafetensorsCheckpoint weights, Tokenizer tokenizer,
                          ModelOptions options, PatternCache patternCache, DlmKvCache kvCache) {
        this(name, hfConfig, DiffusionWeights.read(weights, modelConfig(name, hfConfig),
                DiffusionFamily.of(hfConfig) == DiffusionFamily.DREAM), tokenizer, options, patternCache, kvCache);
    }

    /** From weights already in memory (the benchmarks build random ones); the weights must match the config. */
    DiffusionModel(String name, HfConfig hfConfig, DiffusionWeights weights, Tokenizer tokenizer,
                   ModelOptions options, PatternCache patternCache) {
        this(name, hfConfig, weights, tokenizer, options, patternCache, DlmKvCache.withDefaultCap());
    }

    DiffusionModel(String name, HfConfig hfConfig, DiffusionWeights weights, Tokenizer tokenizer,
                   ModelOptions options, PatternCache patternCache, DlmKvCache kvCache) {
        if (patternCache == null) {
            throw new IllegalArgumentException("patternCache must not be null");
        }
        if (kvCache == null) {
            throw new IllegalArgumentException("kvCache must not be null");
        }
        this.kvCache = kvCache;
        this.name = name;
        this.hfConfig = hfConfig;
        this.config = modelConfig(name, hfConfig);
        this.family = DiffusionFamily.of(hfConfig);
        this.ropeLayout = hfConfig.ropeInterleaved() ? RopeLayout.INTERLEAVED : RopeLayout.NEOX;
        if (weights.hasQkvBias() != (family == DiffusionFamily.DREAM)) {
            throw new ModelLoadException(name + ": " + family + " weights " + (weights.hasQkvBias() ? "must not" : "must")
                    + " carry q/k/v biases");
        }
        if (!weights.config().equals(config)) {
            throw new ModelLoadException(name + ": weights shaped for " + weights.config() + ", config says " + config);
        }
        this.patternCache = patternCache;
        this.maskId = hfConfig.maskTokenId();
        if (tokenizer.vocabSize() > maskId && !(tokenizer instanceof VocabTokenizer v
                && v.tokenType(maskId) == TokenType.CONTROL)) {
            throw new ModelLoadException(name + ": the tokenizer has " + tokenizer.vocabSize() + " tokens, so it would"
                    + " give the mask id " + maskId + " a text; it must have at most " + maskId
                    + " (or hold the mask as a control token, as a tokenizer.json does)");
        }
        if (hfConfig.bosTokenId() != null && hfConfig.bosTokenId() != tokenizer.bosId()) {
            throw new ModelLoadException(name + ": config bos_token_id " + hfConfig.bosTokenId()
                    + " differs from the tokenizer's BOS " + tokenizer.bosId());
        }
        this.tokenizer = tokenizer;
        this.w = weights;
        this.parallelThreshold = options.parallelThreshold();
        int hs = config.headSize();
        int pairs = hs / 2;
        int ctx = config.contextLength();
        this.ropeCos = new float[ctx * pairs];
        this.ropeSin = new float[ctx * pairs];
        for (int pos = 0; pos < ctx; pos++) {
            for (int p = 0; p < pairs; p++) {
                // The same float32 formula as llama2.c (and LlamaModel), which this model was trained to match.
                float freq = 1.0f / (float) Math.pow(config.ropeTheta(), (2 * p) / (float) hs);
                float angle = pos * freq;
                ropeCos[pos * pairs + p] = (float) Math.cos(angle);
                ropeSin[pos * pairs + p] = (float) Math.sin(angle);
            }
        }
        this.attentionScale = (float) Math.sqrt(hs);
        this.compute = new ComputePool(options.computeThreads(), "stepstream-" + name);
        this.attScratch = new AttentionScratch[compute.threads()];
        for (int i = 0; i < attScratch.length; i++) {
            attScratch[i] = new AttentionScratch(ctx);
        }
        this.canvasAttention = new CanvasAttention(hs);
    }

    /** Checks that the config describes what this class computes, and converts it to the engine's shape. */
    static ModelConfig modelConfig(String name, HfConfig c) {
        boolean dream = DiffusionFamily.of(c) == DiffusionFamily.DREAM;
        if (Boolean.TRUE.equals(c.causal())) {
            throw new ModelLoadException(name + ": config says causal: true; a diffusion model attends both ways");
        }
        if (c.maskTokenId() == null) {
            throw new ModelLoadException(name + ": config: missing key mask_token_id (a diffusion model needs its"
                    + " [MASK] id)");
        }
        if (c.maskTokenId() >= c.vocabSize()) {
            throw new ModelLoadException(name + ": config mask_token_id " + c.maskTokenId() + " is outside vocab_size "
                    + c.vocabSize());
        }
        // A LLaDA checkpoint here is tinystories-dlm's kind, trained with interleaved pairs; Dream is a Hugging Face
        // Qwen2, rotate-half unless its config says otherwise.
        if (!dream && !c.ropeInterleaved()) {
            throw new ModelLoadException(name + ": config rope_interleaved is not true; only the interleaved-pair"
                    + " (llama2.c) RoPE layout is implemented");
        }
        if (!c.hiddenAct().equals("silu")) {
            throw new ModelLoadException(name + ": config hidden_act " + c.hiddenAct() + " is not supported (silu)");
        }
        if (c.mlpBias()) {
            throw new ModelLoadException(name + ": config asks for MLP biases (mlp_bias), which are not supported");
        }
        // Qwen2 (Dream) always has q/k/v biases and none on o, whatever attention_bias says.
        if (!dream && c.attentionBias()) {
            throw new ModelLoadException(name + ": config asks for attention or MLP biases, which are not supported");
        }
        if ((long) c.headDim() * c.numAttentionHeads() != c.hiddenSize() || c.headDim() % 2 != 0) {
            throw new ModelLoadException(name + ": config head_dim " + c.headDim() + " x num_attention_heads "
                    + c.numAttentionHeads() + " must equal hidden_size " + c.hiddenSize() + " (and head_dim be even)");
        }
        if (c.numAttentionHeads() % c.numKeyValueHeads() != 0) {
            throw new ModelLoadException(name + ": config num_attention_heads " + c.numAttentionHeads()
                    + " is not a multiple of num_key_value_heads " + c.numKeyValueHeads());
        }
        return new ModelConfig(c.hiddenSize(), c.intermediateSize(), c.numHiddenLayers(), c.numAttentionHeads(),
                c.numKeyValueHeads(), c.vocabSize(), c.maxPositionEmbeddings(), (float) c.rmsNormEps(),
                (float) c.ropeTheta(), c.tieWordEmbeddings());
    }

    public String name() {
        return name;
    }

    /** LLaDA style or Dream, from config.json's model_type. */
    public DiffusionFamily family() {
        return family;
    }

    /** How RoPE pairs a head's elements: interleaved (rope_interleaved true) or rotate-half. */
    public RopeLayout ropeLayout() {
        return ropeLayout;
    }

    /** The model's shape; vocabSize counts the mask id (it is a row of the classifier). */
    public ModelConfig config() {
        return config;
    }

    /**
     * The float32 weights this model runs (read in place, never changed): a device backend uploads them from here
     * and keeps this model as its CPU path.
     */
    public DiffusionWeights weights() {
        return w;
    }

    /** config.json as read. */
    public HfConfig hfConfig() {
        return hfConfig;
    }

    /** The text tokenizer: every id it knows is below {@link #maskId()}, which must never be decoded. */
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public int maskId() {
        return maskId;
    }

    public int vocabSize() {
        return config.vocabSize();
    }

    public int contextLength() {
        return config.contextLength();
    }

    /** The sparse patterns of this model's requests; the scheduler releases a request's handle when it ends. */
    public PatternCache patternCache() {
        return patternCache;
    }

    /** Frees a request's pattern, if any ({@code null} is allowed: a dense request has no handle). */
    public void releasePattern(PatternHandle handle) {
        patternCache.release(handle);
    }

    /** The Fast-dLLM keys and values of this model's cached requests. */
    public DlmKvCache kvCache() {
        return kvCache;
    }

    /** Frees a request's Fast-dLLM keys and values, if any ({@code null} is allowed: an uncached request has none). */
    public void releaseKvCache(DlmKvHandle handle) {
        kvCache.release(handle);
    }

    /**
     * Runs every canvas of the batch through the model at once. {@code logits[i]} receives, for each position
     * of input i's logits range in order, vocabSize floats (so {@code logitsLength * vocabSize} in all).
     * Inputs with a {@link SparseStep} past their switch step look their pattern up in {@link #patternCache()}
     * (a hit attends sparsely; a miss runs dense and stores a freshly built pattern). Inputs with a
     * {@link DlmCacheStep} keep or reuse their request's keys and values in {@link #kvCache()}.
     */
    public void forward(List<DenoiseInput> batch, float[][] logits) {
        int n = batch.size();
        if (n == 0) {
            return;
        }
        checkBatch(batch, logits);
        int rows = resolveCaches(batch);
        int outputs = 0;
        for (DenoiseInput in : batch) {
            outputs += in.logitsLength();
        }
        grow(rows, outputs);
        resolvePatterns(batch);
        int dim = config.dim();
        int row = 0;
        for (int c = 0; c < n; c++) {
            DenoiseInput in = batch.get(c);
            int start = row;
            canvasFirstRow[c] = start;
            int[] tokens = in.tokens();
            for (int p = canvasRowFrom[c], end = p + canvasRows[c]; p < end; p++, row++) {
                rowPos[row] = p;
                rowCanvas[row] = c;
                rowCanvasStart[row] = start;
                rowCanvasLength[row] = tokens.length;
                System.arraycopy(w.embedding(), tokens[p] * dim, x, row * dim, dim);
            }
        }
        for (int l = 0; l < config.nLayers(); l++) {
            layer(l, rows);
        }
        for (int c = 0; c < n; c++) {
            if (canvasBuilder[c] != null) {
                patternCache.store(batch.get(c).sparse().handle(), canvasBuilder[c].finish());
                canvasBuilder[c] = null;
            }
            canvasPattern[c] = null;
            canvasCache[c] = null;
        }
        int out = 0;
        for (int c = 0; c < n; c++) {
            DenoiseInput in = batch.get(c);
            int first = canvasFirstRow[c] + in.logitsStart() - canvasRowFrom[c];
            for (int p = 0; p < in.logitsLength(); p++, out++) {
                Kernels.rmsnorm(outputRows, out * dim, x, (first + p) * dim, w.finalNorm(), dim,
                        config.rmsNormEps());
            }
        }
        int vocab = config.vocabSize();
        matmul(w.lmHead(), vocab, dim, outputRows, outputs, outputLogits);
        out = 0;
        for (int i = 0; i < n; i++) {
            int count = batch.get(i).logitsLength() * vocab;
            System.arraycopy(outputLogits, out, logits[i], 0, count);
            out += count;
        }
    }

    /**
     * Sees one canvas's queries and keys, after RoPE, in every layer of a {@link #forwardProbed} (measuring aids:
     * attention-mass recall of a pattern, or building a pattern another way). The arrays are the forward's scratch:
     * read them during the call only.
     */
    @FunctionalInterface
    public interface QueryKeyProbe {
        /**
         * Layer {@code layer}: position i's query of head h is {@code q[i * qStride + h * headSize + d]}, the key of
         * key-value head g (query head h uses g = h / (heads / kvHeads)) is {@code k[i * kStride + g * headSize + d]}.
         */
        void layer(int layer, float[] q, int qStride, float[] k, int kStride);
    }

    /**
     * One input's {@link #forward}, exactly as alone (sparse or not), handing each layer's queries and keys to
     * {@code probe} before attention. The input must not use the Fast-dLLM cache (its rows would be partial).
     */
    public void forwardProbed(DenoiseInput input, float[] logits, QueryKeyProbe probe) {
        if (input == null || probe == null) {
            throw new IllegalArgumentException("forwardProbed needs an input and a probe");
        }
        if (input.cache() != null) {
            throw new IllegalArgumentException("forwardProbed: the input uses the Fast-dLLM cache; probe whole"
                    + " canvases only");
        }
        this.probe = probe;
        try {
            forward(List.of(input), new float[][]{logits});
        } finally {
            this.probe = null;
        }
    }

    /**
     * Decides per input which canvas rows run and where its keys and values live: uncached inputs run the whole
     * canvas; a refresh step runs the whole canvas into its request's (new or reused) entry; a reuse step with an
     * entry runs only the rows its mode recomputes. Returns the step's rows.
     */
    private int resolveCaches(List<DenoiseInput> batch) {
        int n = batch.size();
        if (canvasCache.length < n) {
            canvasCache = new DlmKvCache.Entry[n];
            canvasRowFrom = new int[n];
            canvasRows = new int[n];
            canvasFirstRow = new int[n];
        }
        long rows = 0;
        for (int c = 0; c < n; c++) {
            DenoiseInput in = batch.get(c);
            DlmCacheStep step = in.cache();
            DlmKvCache.Entry entry = null;
            int from = 0;
            int to = in.length();
            if (step != null && step.refresh()) {
                entry = kvCache.acquire(step.handle(), config.nLayers(), in.length(), config.kvDim());
            } else if (step != null) {
                entry = kvCache.lookup(step.handle());
                if (entry != null) {
                    if (entry.tokens() != in.length()) {
                        throw new IllegalArgumentException("input " + c + ": " + step.handle() + " holds keys of "
                                + entry.tokens() + " positions, the canvas has " + in.length());
                    }
                    from = step.rowsFrom();
                    to = step.rowsTo(in.length());
                }
            }
            canvasCache[c] = entry;
            canvasRowFrom[c] = from;
            canvasRows[c] = to - from;
            rows += to - from;
        }
        return (int) rows;
    }

    /** Decides per input: dense, sparse through its cached pattern, or dense while building its pattern. */
    private void resolvePatterns(List<DenoiseInput> batch) {
        int n = batch.size();
        batchSize = n;
        if (canvasPattern.length < n) {
            canvasPattern = new SparsePattern[n];
            canvasBuilder = new SparseDBuilder[n];
        }
        for (int c = 0; c < n; c++) {
            canvasPattern[c] = null;
            canvasBuilder[c] = null;
            DenoiseInput in = batch.get(c);
            SparseStep sparse = in.sparse();
            if (sparse == null || !sparse.usesPattern()) {
                continue;
            }
            SparsePattern p = patternCache.lookup(sparse.handle());
            if (p != null) {
                if (p.tokens() != in.length() || p.layers() != config.nLayers() || p.heads() != config.nHeads()
                        || p.blockSize() != sparse.policy().blockSize()) {
                    throw new IllegalArgumentException("input " + c + ": " + sparse.handle() + " holds " + p
                            + ", which does not fit a canvas of " + in.length() + " tokens, " + config.nLayers()
                            + " layers, " + config.nHeads() + " heads, block size " + sparse.policy().blockSize());
                }
                canvasPattern[c] = p;
            } else if (!patternCache.isRefused(sparse.handle())) {
                canvasBuilder[c] = new SparseDBuilder(sparse.policy(), config.nLayers(), config.nHeads(), in.length(),
                        sparse.promptLength());
            }
        }
    }

    private void layer(int l, int rows) {
        currentLayer = l;
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        rowwise.norm(w.attentionNorm()[l], rows);
        matmul(w.wq()[l], dim, dim, xb, rows, q);
        matmul(w.wk()[l], kvDim, dim, xb, rows, k);
        matmul(w.wv()[l], kvDim, dim, xb, rows, v);
        if (w.hasQkvBias()) {
            addBias(q, w.bq()[l], rows);
            addBias(k, w.bk()[l], rows);
            addBias(v, w.bv()[l], rows);
        }
        for (int t = 0; t < rows; t++) {
            rope(t);
        }
        keepKeysAndValues(l);
        buildPatterns(l);
        if (probe != null) {
            probe.layer(l, q, dim, k, kvDim);
        }
        attend(rows); // q, k, v -> xb
        matmul(w.wo()[l], dim, dim, xb, rows, xb2);
        rowwise.residual(rows * dim);
        rowwise.norm(w.ffnNorm()[l], rows);
        matmul(w.gate()[l], hidden, dim, xb, rows, hb);
        matmul(w.up()[l], hidden, dim, xb, rows, hb2);
        rowwise.swiglu(rows * hidden);
        matmul(w.down()[l], dim, hidden, hb, rows, xb2);
        rowwise.residual(rows * dim);
    }

    /** Adds {@code bias} to each of the first {@code rows} rows of {@code out} (rows of bias.length). */
    private static void addBias(float[] out, float[] bias, int rows) {
        int n = bias.length;
        for (int t = 0; t < rows; t++) {
            int o = t * n;
            for (int i = 0; i < n; i++) {
                out[o + i] += bias[i];
            }
        }
    }

    /**
     * Rotates the pairs of every q and k head of row t by its position's angles: (2i, 2i+1) interleaved, or
     * (i, i + headSize/2) rotate-half; pair i turns by frequency i either way.
     */
    private void rope(int t) {
        int hs = config.headSize();
        int pairs = hs / 2;
        int base = rowPos[t] * pairs;
        rotate(q, t * config.dim(), config.nHeads(), hs, base);
        rotate(k, t * config.kvDim(), config.nKvHeads(), hs, base);
    }

    private void rotate(float[] a, int offset, int heads, int hs, int base) {
        int pairs = hs / 2;
        boolean interleaved = ropeLayout == RopeLayout.INTERLEAVED;
        for (int h = 0; h < heads; h++) {
            int o = offset + h * hs;
            for (int p = 0; p < pairs; p++) {
                float cos = ropeCos[base + p];
                float sin = ropeSin[base + p];
                int i0 = interleaved ? o + 2 * p : o + p;
                int i1 = interleaved ? i0 + 1 : i0 + pairs;
                float a0 = a[i0];
                float a1 = a[i1];
                a[i0] = a0 * cos - a1 * sin;
                a[i1] = a0 * sin + a1 * cos;
            }
        }
    }

    /** Writes layer l's fresh keys and values of every cached input's rows into its request's entry. */
    private void keepKeysAndValues(int l) {
        int kvDim = config.kvDim();
        for (int c = 0; c < batchSize; c++) {
            DlmKvCache.Entry entry = canvasCache[c];
            if (entry == null) {
                continue;
            }
            int from = canvasFirstRow[c] * kvDim;
            int to = canvasRowFrom[c] * kvDim;
            int count = canvasRows[c] * kvDim;
            System.arraycopy(k, from, entry.keys()[l], to, count);
            System.arraycopy(v, from, entry.values()[l], to, count);
        }
    }

    private void attend(int rows) {
        long work = 0;
        for (int t = 0; t < rows; t++) {
            work += (long) rowCanvasLength[t] * 2 * config.dim();
        }
        // Tiles: up to TILE consecutive rows of one canvas that see the same keys (one query block of a pattern).
        tiles = 0;
        for (int t = 0; t < rows; ) {
            SparsePattern pattern = canvasPattern[rowCanvas[t]];
            int end = t + 1;
            while (end < rows && end - t < CanvasAttention.TILE && rowCanvas[end] == rowCanvas[t]
                    && (pattern == null || rowPos[end] / pattern.blockSize() == rowPos[t] / pattern.blockSize())) {
                end++;
            }
            tileStart[tiles] = t;
            tileRows[tiles] = end - t;
            tiles++;
            t = end;
        }
        int units = tiles * config.nHeads();
        compute.run(attention, units, grain(units), work >= parallelThreshold);
    }

    /** Feeds layer l's queries and keys of every canvas that builds its pattern this step to its builder. */
    private void buildPatterns(int l) {
        for (int c = 0; c < batchSize; c++) {
            SparseDBuilder builder = canvasBuilder[c];
            if (builder == null) {
                continue;
            }
            int start = 0;
            while (rowCanvas[start] != c) {
                start++; // rows of a canvas are contiguous; builds are rare, so a scan is fine
            }
            int units = config.nHeads() * builder.blocks();
            build.set(builder, l, start);
            compute.run(build, units, grain(units), true);
            build.set(null, 0, 0);
        }
    }

    /** Attention of one tile of rows and one head over their canvas: every position, or their pattern's blocks. */
    private void attendTile(int tile, int h, AttentionScratch s) {
        int dim = config.dim();
        int hs = config.headSize();
        int kvDim = config.kvDim();
        int kvHead = h / (config.nHeads() / config.nKvHeads());
        int t0 = tileStart[tile];
        int rows = tileRows[tile];
        for (int r = 0; r < rows; r++) {
            s.qOffset[r] = (t0 + r) * dim + h * hs;
        }
        int len = rowCanvasLength[t0];
        SparsePattern pattern = canvasPattern[rowCanvas[t0]];
        int ranges;
        if (pattern == null) {
            s.keyFrom[0] = 0;
            s.keyTo[0] = len;
            ranges = 1;
        } else {
            ranges = pattern.keyRanges(currentLayer, h, rowPos[t0] / pattern.blockSize(), s.keyFrom, s.keyTo);
        }
        // Keys and values by canvas position: this step's rows of the canvas, or a cached input's entry (the whole
        // canvas, laid out as k and v are, with this step's fresh rows already written in).
        float[] keys = k;
        float[] values = v;
        int kvBase = rowCanvasStart[t0] * kvDim + kvHead * hs;
        DlmKvCache.Entry entry = canvasCache[rowCanvas[t0]];
        if (entry != null) {
            keys = entry.keys()[currentLayer];
            values = entry.values()[currentLayer];
            kvBase = kvHead * hs;
        }
        canvasAttention.attend(rows, q, s.qOffset, keys, values, kvBase, kvDim, attentionScale, s.keyFrom, s.keyTo,
                ranges, s.att, config.contextLength(), xb, s.qOffset);
    }

    private void matmul(float[] weight, int rows, int cols, float[] in, int tokens, float[] out) {
        WeightMatrix m = matrices.computeIfAbsent(weight, w -> WeightMatrix.f32(w, rows, cols));
        m.matmul(in, 0, tokens, out, 0, compute);
    }

    /** About four chunks per thread, so uneven chunks still balance. */
    private int grain(int size) {
        return Math.max(1, size / (compute.threads() * 4));
    }

    /** Units (head, query block) of one canvas's pattern build; each worker keeps its own scratch per build. */
    private final class BuildTask implements ComputePool.RangeTask {
        SparseDBuilder builder;
        int layer;
        int firstRow;
        SparseDBuilder.Scratch[] scratch;

        void set(SparseDBuilder builder, int layer, int firstRow) {
            if (builder != this.builder) {
                scratch = builder == null ? null : new SparseDBuilder.Scratch[compute.threads()];
            }
            this.builder = builder;
            this.layer = layer;
            this.firstRow = firstRow;
        }

        @Override
        public void run(int from, int to, int worker) {
            int dim = config.dim();
            int hs = config.headSize();
            int kvDim = config.kvDim();
            int group = config.nHeads() / config.nKvHeads();
            int blocks = builder.blocks();
            if (scratch[worker] == null) {
                scratch[worker] = builder.newScratch();
            }
            for (int u = from; u < to; u++) {
                int h = u / blocks;
                int qb = u % blocks;
                builder.selectQueryBlock(layer, h, qb, q, firstRow * dim + h * hs, dim, k,
                        firstRow * kvDim + (h / group) * hs, kvDim, hs, scratch[worker]);
            }
        }
    }

    private final class AttentionTask implements ComputePool.RangeTask {
        @Override
        public void run(int from, int to, int worker) {
            int heads = config.nHeads();
            AttentionScratch s = attScratch[worker];
            for (int u = from; u < to; u++) {
                attendTile(u / heads, u % heads, s);
            }
        }
    }

    /**
     * A layer's element-wise work over the pool: the RMSNorms of every canvas row ({@code xb = norm(x)}), the
     * residual adds ({@code x += xb2}) and the swiglu ({@code hb = swiglu(hb) * hb2}). Vector forms bitwise equal to
     * {@link Kernels}' ({@link VectorKernels#rmsnormRows}, {@link VectorKernels#swiglu}; an add per element), split
     * by whole rows or elements, so every value is what the one-thread scalar loops gave. Serial and scalar they
     * took a fifth of a batched CPU step on two threads and, by Amdahl, far more on sixteen.
     */
    private final class RowwiseTask implements ComputePool.RangeTask {
        private static final int NORM = 0;
        private static final int RESIDUAL = 1;
        private static final int SWIGLU = 2;
        /** Elements below which a pass stays on the caller (a handoff costs more than it saves). */
        private static final int PARALLEL_ELEMENTS = 1 << 14;
        private int mode;
        private float[] weight;

        void norm(float[] weight, int rows) {
            this.mode = NORM;
            this.weight = weight;
            compute.run(this, rows, Math.max(4, grain(rows)), (long) rows * config.dim() >= PARALLEL_ELEMENTS);
        }

        void residual(int elements) {
            this.mode = RESIDUAL;
            compute.run(this, elements, grain(elements), elements >= PARALLEL_ELEMENTS);
        }

        void swiglu(int elements) {
            this.mode = SWIGLU;
            compute.run(this, elements, grain(elements), elements >= PARALLEL_ELEMENTS);
        }

        @Override
        public void run(int from, int to, int worker) {
            switch (mode) {
                case NORM -> VectorKernels.rmsnormRows(xb, x, weight, config.dim(), config.rmsNormEps(), from, to);
                case RESIDUAL -> {
                    for (int i = from; i < to; i++) {
                        x[i] += xb2[i];
                    }
                }
                case SWIGLU -> VectorKernels.swiglu(hb, hb2, from, to);
                default -> throw new IllegalStateException("mode " + mode);
            }
        }
    }

    /** One worker's attention scratch: TILE rows of scores over the whole context, key ranges, row offsets. */
    private record AttentionScratch(float[] att, int[] keyFrom, int[] keyTo, int[] qOffset) {
        AttentionScratch(int context) {
            this(new float[CanvasAttention.TILE * context], new int[context], new int[context],
                    new int[CanvasAttention.TILE]);
        }
    }

    /** Validates the whole batch before touching any scratch; returns the number of rows. */
    /**
     * Refuses, before anything runs, a batch this model's {@link #forward} cannot take (logits rows too short, a
     * canvas past the context, a token id outside the vocabulary, more canvas tokens than one step holds); a
     * device forward that falls back to this model checks with it too. Returns the batch's canvas tokens.
     */
    public int checkBatch(List<DenoiseInput> batch, float[][] logits) {
        int n = batch.size();
        if (logits == null || logits.length < n) {
            throw new IllegalArgumentException("logits must have a row per input: " + n + " inputs, "
                    + (logits == null ? "null" : logits.length + " rows"));
        }
        int vocab = config.vocabSize();
        long rows = 0;
        for (int i = 0; i < n; i++) {
            DenoiseInput in = batch.get(i);
            if (in.length() > config.contextLength()) {
                throw new IllegalArgumentException("input " + i + ": canvas of " + in.length()
                        + " tokens exceeds the context length " + config.contextLength());
            }
            long need = (long) in.logitsLength() * vocab;
            if (logits[i] == null || logits[i].length < need) {
                throw new IllegalArgumentException("logits[" + i + "] must hold " + need + " floats ("
                        + in.logitsLength() + " positions x " + vocab + ")");
            }
            for (int tok : in.tokens()) {
                if (tok < 0 || tok >= vocab) {
                    throw new IllegalArgumentException("input " + i + ": token id " + tok + " is outside [0, "
                            + vocab + ")");
                }
            }
            rows += in.length();
        }
        if (rows * Math.max(config.hiddenDim(), config.vocabSize()) > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("batch of " + rows + " canvas tokens is too large for one step");
        }
        return (int) rows;
    }

    private void grow(int rows, int outputs) {
        if (rows > rowCapacity) {
            int dim = config.dim();
            int kvDim = config.kvDim();
            int hidden = config.hiddenDim();
            x = new float[rows * dim];
            xb = new float[rows * dim];
            xb2 = new float[rows * dim];
            q = new float[rows * dim];
            k = new float[rows * kvDim];
            v = new float[rows * kvDim];
            hb = new float[rows * hidden];
            hb2 = new float[rows * hidden];
            rowPos = new int[rows];
            rowCanvasStart = new int[rows];
            rowCanvasLength = new int[rows];
            rowCanvas = new int[rows];
            tileStart = new int[rows];
            tileRows = new int[rows];
            rowCapacity = rows;
        }
        if (outputs > outputCapacity) {
            outputRows = new float[outputs * config.dim()];
            outputLogits = new float[outputs * config.vocabSize()];
            outputCapacity = outputs;
        }
    }

    @Override
    public void close() {
        compute.close();
    }
}
