package io.stepstream.engine.llama2;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.KvCacheExhaustedException;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.cpu.ComputePool;
import io.stepstream.engine.cpu.Kernels;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.kv.PagedKvCache;

import java.util.List;

/**
 * A llama2.c model on the CPU in float32. One forward step stacks every token of the batch into the rows
 * of one activation matrix [T, dim], so each weight matrix is streamed once per step for all sequences;
 * output rows of each matmul are split over the model's compute pool. Attention reads each token's own
 * sequence from its paged KV cache, causally. Scratch buffers are reused across steps and only grow when a
 * batch is larger than any before. Not thread-safe: one step at a time.
 */
public final class Llama2Model implements Model {
    private static final int BLOCK = KvBlockPool.BLOCK_POSITIONS;

    private final String name;
    private final ModelConfig config;
    private final Llama2Weights w;
    private final Llama2Tokenizer tokenizer;
    private final KvBlockPool pool;
    private final ComputePool compute;
    private final long parallelThreshold;
    /** RoPE cos/sin per [position][pair within head], computed as run.c does per token. */
    private final float[] ropeCos;
    private final float[] ropeSin;
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
    private int[] rowEntry;
    private int[] rowPos;
    private int entryCapacity;
    private PagedKvCache[] entryCache;
    private int[] entryLastRow;
    private float[] lastRows;
    private float[] lastLogits;
    private final float[][] attScores;
    private long stepCounter;

    private final MatmulTask matmul = new MatmulTask();
    private final AttentionTask attention = new AttentionTask();

    public Llama2Model(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, ModelOptions options) {
        this.name = name;
        this.config = weights.config();
        this.w = weights;
        if (tokenizer.vocabSize() != config.vocabSize()) {
            throw new IllegalArgumentException("tokenizer has " + tokenizer.vocabSize() + " tokens, model "
                    + config.vocabSize());
        }
        this.tokenizer = tokenizer;
        int blocksPerSequence = (config.contextLength() + BLOCK - 1) / BLOCK;
        int blocks = options.kvBlocks() > 0 ? options.kvBlocks()
                : (int) Math.min(Integer.MAX_VALUE - 16, (long) ModelOptions.DEFAULT_FULL_SEQUENCES * blocksPerSequence);
        this.pool = new KvBlockPool(config.nLayers(), config.kvDim(), blocks);
        this.parallelThreshold = options.parallelThreshold();
        int hs = config.headSize();
        int pairs = hs / 2;
        this.ropeCos = new float[config.contextLength() * pairs];
        this.ropeSin = new float[config.contextLength() * pairs];
        for (int pos = 0; pos < config.contextLength(); pos++) {
            for (int p = 0; p < pairs; p++) {
                float freq = 1.0f / (float) Math.pow(config.ropeTheta(), (2 * p) / (float) hs);
                float angle = pos * freq;
                ropeCos[pos * pairs + p] = (float) Math.cos(angle);
                ropeSin[pos * pairs + p] = (float) Math.sin(angle);
            }
        }
        this.attentionScale = (float) Math.sqrt(hs);
        this.compute = new ComputePool(options.computeThreads(), "stepstream-" + name);
        this.attScores = new float[compute.threads()][config.contextLength()];
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
        int tokens = checkAndReserve(entries, logits);
        growScratch(tokens, e);
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
                System.arraycopy(w.tokenEmbedding(), en.tokens()[en.offset() + j] * dim, x, row * dim, dim);
            }
            entryLastRow[i] = row - 1;
        }
        for (int l = 0; l < config.nLayers(); l++) {
            layer(l, tokens);
        }
        for (int i = 0; i < e; i++) {
            Kernels.rmsnorm(lastRows, i * dim, x, entryLastRow[i] * dim, w.rmsFinal(), dim, config.rmsNormEps());
        }
        int vocab = config.vocabSize();
        matmul(w.classifier(), vocab, dim, lastRows, e, lastLogits);
        for (int i = 0; i < e; i++) {
            System.arraycopy(lastLogits, i * vocab, logits[i], 0, vocab);
            ForwardBatch.Entry en = entries.get(i);
            entryCache[i].advance(entryCache[i].length() + en.length());
            entryCache[i] = null;
        }
    }

    private void layer(int l, int tokens) {
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        float eps = config.rmsNormEps();
        for (int t = 0; t < tokens; t++) {
            Kernels.rmsnorm(xb, t * dim, x, t * dim, w.rmsAtt()[l], dim, eps);
        }
        matmul(w.wq()[l], dim, dim, xb, tokens, q);
        matmul(w.wk()[l], kvDim, dim, xb, tokens, k);
        matmul(w.wv()[l], kvDim, dim, xb, tokens, v);
        for (int t = 0; t < tokens; t++) {
            rope(t);
            storeKv(l, t);
        }
        attend(l, tokens); // writes xb
        matmul(w.wo()[l], dim, dim, xb, tokens, xb2);
        for (int i = 0, n = tokens * dim; i < n; i++) {
            x[i] += xb2[i];
        }
        for (int t = 0; t < tokens; t++) {
            Kernels.rmsnorm(xb, t * dim, x, t * dim, w.rmsFfn()[l], dim, eps);
        }
        matmul(w.w1()[l], hidden, dim, xb, tokens, hb);
        matmul(w.w3()[l], hidden, dim, xb, tokens, hb2);
        Kernels.swiglu(hb, hb2, 0, tokens * hidden);
        matmul(w.w2()[l], dim, hidden, hb, tokens, xb2);
        for (int i = 0, n = tokens * dim; i < n; i++) {
            x[i] += xb2[i];
        }
    }

    /** run.c's RoPE: interleaved pairs across the whole q row; k only for i < kvDim. */
    private void rope(int t) {
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hs = config.headSize();
        int pairs = hs / 2;
        int base = rowPos[t] * pairs;
        int qo = t * dim;
        int ko = t * kvDim;
        for (int i = 0; i < dim; i += 2) {
            int p = (i % hs) / 2;
            float fcr = ropeCos[base + p];
            float fci = ropeSin[base + p];
            float q0 = q[qo + i];
            float q1 = q[qo + i + 1];
            q[qo + i] = q0 * fcr - q1 * fci;
            q[qo + i + 1] = q0 * fci + q1 * fcr;
            if (i < kvDim) {
                float k0 = k[ko + i];
                float k1 = k[ko + i + 1];
                k[ko + i] = k0 * fcr - k1 * fci;
                k[ko + i + 1] = k0 * fci + k1 * fcr;
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
        int units = tokens * config.nHeads();
        attention.layer = l;
        compute.run(attention, units, grain(units), work >= parallelThreshold);
    }

    /** Causal attention of one (token, head) unit over positions 0..pos of the token's own sequence. */
    private void attendUnit(int l, int t, int h, float[] att) {
        int dim = config.dim();
        int hs = config.headSize();
        int kvDim = config.kvDim();
        int kvHead = h / (config.nHeads() / config.nKvHeads());
        int pos = rowPos[t];
        int[] table = entryCache[rowEntry[t]].blockTable();
        int qo = t * dim + h * hs;
        int headOffset = kvHead * hs;
        for (int j = 0; j <= pos; j++) {
            float[] block = pool.block(table[j / BLOCK]);
            int ko = pool.keyOffset(l, j % BLOCK) + headOffset;
            float score = 0f;
            for (int i = 0; i < hs; i++) {
                score += q[qo + i] * block[ko + i];
            }
            att[j] = score / attentionScale;
        }
        Kernels.softmax(att, 0, pos + 1);
        int out = t * dim + h * hs;
        for (int i = 0; i < hs; i++) {
            xb[out + i] = 0f;
        }
        for (int j = 0; j <= pos; j++) {
            float[] block = pool.block(table[j / BLOCK]);
            int vo = pool.valueOffset(l, j % BLOCK) + headOffset;
            float a = att[j];
            for (int i = 0; i < hs; i++) {
                xb[out + i] += a * block[vo + i];
            }
        }
    }

    private void matmul(float[] weight, int rows, int cols, float[] in, int tokens, float[] out) {
        matmul.set(weight, rows, cols, in, tokens, out);
        long work = (long) tokens * rows * cols;
        compute.run(matmul, rows, grain(rows), work >= parallelThreshold);
        matmul.set(null, 0, 0, null, 0, null);
    }

    /** About four chunks per thread, so uneven chunks still balance. */
    private int grain(int size) {
        return Math.max(1, size / (compute.threads() * 4));
    }

    private final class MatmulTask implements ComputePool.RangeTask {
        float[] weight;
        int rows;
        int cols;
        float[] in;
        int tokens;
        float[] out;

        void set(float[] weight, int rows, int cols, float[] in, int tokens, float[] out) {
            this.weight = weight;
            this.rows = rows;
            this.cols = cols;
            this.in = in;
            this.tokens = tokens;
            this.out = out;
        }

        @Override
        public void run(int from, int to, int worker) {
            Kernels.matmulRows(weight, rows, cols, in, 0, tokens, out, from, to);
        }
    }

    private final class AttentionTask implements ComputePool.RangeTask {
        int layer;

        @Override
        public void run(int from, int to, int worker) {
            int heads = config.nHeads();
            float[] att = attScores[worker];
            for (int u = from; u < to; u++) {
                attendUnit(layer, u / heads, u % heads, att);
            }
        }
    }

    /** Validates the whole batch, then takes every KV block it needs (all or nothing); returns T. */
    private int checkAndReserve(List<ForwardBatch.Entry> entries, float[][] logits) {
        int e = entries.size();
        if (logits == null || logits.length < e) {
            throw new IllegalArgumentException("logits must have a row per entry: " + e + " entries, "
                    + (logits == null ? "null" : logits.length + " rows"));
        }
        long stamp = ++stepCounter;
        long tokens = 0;
        int missingBlocks = 0;
        int vocab = config.vocabSize();
        for (int i = 0; i < e; i++) {
            ForwardBatch.Entry en = entries.get(i);
            if (!(en.cache() instanceof PagedKvCache cache) || cache.pool() != pool) {
                throw new IllegalArgumentException("entry " + i + ": KV cache was not created by model " + name);
            }
            if (cache.isClosed()) {
                throw new IllegalArgumentException("entry " + i + ": KV cache is closed");
            }
            if (cache.stepStamp() == stamp) {
                throw new IllegalArgumentException("entry " + i + ": the same KV cache appears twice in one batch");
            }
            cache.stepStamp(stamp);
            if (logits[i] == null || logits[i].length < vocab) {
                throw new IllegalArgumentException("logits[" + i + "] must hold " + vocab + " floats");
            }
            long end = (long) cache.length() + en.length();
            if (end > config.contextLength()) {
                throw new IllegalArgumentException("entry " + i + ": " + cache.length() + " cached + " + en.length()
                        + " new tokens exceed the context length " + config.contextLength());
            }
            for (int j = 0; j < en.length(); j++) {
                int tok = en.tokens()[en.offset() + j];
                if (tok < 0 || tok >= vocab) {
                    throw new IllegalArgumentException("entry " + i + ": token id " + tok + " is outside [0, "
                            + vocab + ")");
                }
            }
            tokens += en.length();
            missingBlocks += cache.blocksMissingFor((int) end);
        }
        if (tokens > Integer.MAX_VALUE / Math.max(config.hiddenDim(), config.dim())) {
            throw new IllegalArgumentException("batch of " + tokens + " tokens is too large for one step");
        }
        int free = pool.freeBlocks();
        if (missingBlocks > free) {
            throw new KvCacheExhaustedException("KV block pool of model " + name + " exhausted: the batch needs "
                    + missingBlocks + " more block(s), " + free + " of " + pool.maxBlocks() + " free");
        }
        for (int i = 0; i < e; i++) {
            ForwardBatch.Entry en = entries.get(i);
            PagedKvCache cache = (PagedKvCache) en.cache();
            cache.reserve(cache.length() + en.length());
        }
        return (int) tokens;
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
    }
}
