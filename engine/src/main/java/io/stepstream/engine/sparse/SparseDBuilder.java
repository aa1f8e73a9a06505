package io.stepstream.engine.sparse;

import io.stepstream.engine.cpu.VectorKernels;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Builds one canvas's {@link SparsePattern} the SparseD way, from the queries and keys of the dense switch step,
 * one (layer, head, query block) at a time so the forward can spread the work over threads.
 *
 * <p>For a query block, each of its rows gets the attention probabilities of its head: scores
 * {@code q.k / sqrt(head_dim)} and a softmax, in float32 with the Vector API (four rows share each key load; the
 * exp and the lane sums are the JIT-independent ones of {@link VectorKernels}, so a pattern never depends on
 * timing). They are pooled per key block in float64 (summed over the block's query rows and key columns; SparseD
 * averages, which ranks blocks the same). The build runs once per request but over the whole canvas, so at long
 * prompts it costs about a dense attention step. The keys are split into two regions at the
 * <em>generated start block</em>: the first block that starts at or after the prompt's end (the last block if
 * none does); the block that straddles the prompt's end counts as prompt. Then, as in SparseD:
 * <ul>
 *   <li>prompt region: the top {@code keep(n)} of all n blocks by the pooled full-row softmax, of which only those
 *       before the generated start are kept;</li>
 *   <li>generated region: a second softmax over the generated keys only, pooled the same way, and the top
 *       {@code keep(g)} of its g blocks;</li>
 * </ul>
 * with {@code keep(n) = min(n, int(n * select) + 1)} and ties to the lower block index. The union, ascending, is
 * the query block's row. With select = 1 every block is kept.
 *
 * <p>This is the selection of SparseD's own code (INV-WZQ/SparseD, {@code models/LLaDA/modeling_llada.py} and
 * {@code models/Dream/modeling_dream.py} with {@code create_attention_block_mask} of its utilities): per query block
 * and head, the mean (over the block's query rows and key columns, zero padded) of the softmax probabilities per
 * key block, which ranks blocks as our sums do; the generated region starts at the first block at or past
 * {@code tokens - gen_length}, i.e. the prompt's end, as its current code computes it (an earlier version passed the
 * step count there). What remains different: SparseD rounds the probabilities to bfloat16 and breaks ties however
 * {@code torch.topk} does, where we keep float32 probabilities pooled in float64 and take the lower block; and
 * SparseD's LLaDA code divides the selection scores by sqrt(num_heads) (its Dream code, like the attention itself,
 * by sqrt(head_dim)). We divide by sqrt(head_dim) by default, the scale the attention really uses; the
 * {@link #SparseDBuilder(SparseDPolicy, int, int, int, int, float) explicit divisor} reproduces the LLaDA code.
 *
 * <p>Distinct (layer, head, query block) units write disjoint state, so they may run on different threads; each
 * thread needs its own {@link Scratch}. {@link #finish()} after all units.
 */
public final class SparseDBuilder {
    /** Query rows scored together (each key loaded once for them). */
    private static final int TILE = VectorKernels.SCORE_TILE;
    private static final VectorSpecies<Float> FLOATS = VectorKernels.FLOATS;
    private static final int LANES = VectorKernels.LANES;

    private final SparseDPolicy policy;
    private final int layers;
    private final int heads;
    private final int tokens;
    private final int blockSize;
    private final int blocks;
    private final int generatedStart;
    private final int keepAll;
    private final int keepGenerated;
    /** What q.k is divided by before the softmax; 0 means sqrt(head_dim). */
    private final float scoreDivisor;
    /** Per ((layer * heads + head) * blocks + queryBlock): the kept key blocks, ascending; null until selected. */
    private final int[][] rows;

    /**
     * @param tokens       canvas length
     * @param promptLength positions before the generated region, in [1, tokens]
     */
    public SparseDBuilder(SparseDPolicy policy, int layers, int heads, int tokens, int promptLength) {
        this(policy, layers, heads, tokens, promptLength, 0f);
    }

    /**
     * As above, with the selection scores divided by {@code scoreDivisor} instead of sqrt(head_dim), e.g.
     * sqrt(num_heads) as SparseD's LLaDA code does; 0 means sqrt(head_dim). Only the selection changes, never the
     * attention.
     */
    public SparseDBuilder(SparseDPolicy policy, int layers, int heads, int tokens, int promptLength,
                          float scoreDivisor) {
        if (!(scoreDivisor >= 0) || Float.isInfinite(scoreDivisor)) {
            throw new IllegalArgumentException("scoreDivisor must be 0 (sqrt(head_dim)) or positive, got "
                    + scoreDivisor);
        }
        if (policy == null) {
            throw new IllegalArgumentException("policy must not be null");
        }
        if (layers < 1 || heads < 1 || tokens < 1) {
            throw new IllegalArgumentException("layers, heads and tokens must be >= 1, got " + layers + ", " + heads
                    + ", " + tokens);
        }
        if (promptLength < 1 || promptLength > tokens) {
            throw new IllegalArgumentException("promptLength must be in [1, " + tokens + "], got " + promptLength);
        }
        this.policy = policy;
        this.layers = layers;
        this.heads = heads;
        this.tokens = tokens;
        this.blockSize = policy.blockSize();
        this.blocks = SparsePattern.blocksFor(tokens, blockSize);
        this.generatedStart = generatedStartBlock(tokens, promptLength, blockSize);
        this.keepAll = policy.keep(blocks);
        this.keepGenerated = policy.keep(blocks - generatedStart);
        this.rows = new int[layers * heads * blocks][];
        this.scoreDivisor = scoreDivisor;
    }

    /** The first block starting at or after the prompt's end, or the last block when no block does. */
    public static int generatedStartBlock(int tokens, int promptLength, int blockSize) {
        int blocks = SparsePattern.blocksFor(tokens, blockSize);
        return Math.min(SparsePattern.blocksFor(promptLength, blockSize), blocks - 1);
    }

    public int blocks() {
        return blocks;
    }

    public int generatedStart() {
        return generatedStart;
    }

    /** Per-thread work arrays. */
    public Scratch newScratch() {
        return new Scratch(tokens, blocks);
    }

    /** Work arrays of one thread: scores and exponentials per key, pooled mass per key block. */
    public static final class Scratch {
        final float[] scores;
        final double[] massAll;
        final float[] blockSums;
        /** The tile's query offsets, and the one key range (every key) it is scored against. */
        final int[] qOffset = new int[TILE];
        final int[] keyFrom = {0};
        final int[] keyTo = new int[1];
        final double[] massGenerated;
        final Integer[] order;
        final boolean[] keep;

        Scratch(int tokens, int blocks) {
            scores = new float[TILE * tokens];
            massAll = new double[blocks];
            blockSums = new float[blocks];
            massGenerated = new double[blocks];
            order = new Integer[blocks];
            keep = new boolean[blocks];
        }
    }

    /**
     * Selects the key blocks of query block {@code qb} for (layer, head). Canvas position i's query of this head is
     * {@code q[qOffset + i * qStride + d]}, its key {@code k[kOffset + i * kStride + d]}, d in [0, headSize).
     */
    public void selectQueryBlock(int layer, int head, int qb, float[] q, int qOffset, int qStride, float[] k,
                                 int kOffset, int kStride, int headSize, Scratch s) {
        if (layer < 0 || layer >= layers || head < 0 || head >= heads || qb < 0 || qb >= blocks) {
            throw new IndexOutOfBoundsException("(layer " + layer + ", head " + head + ", query block " + qb
                    + ") outside " + layers + " x " + heads + " x " + blocks);
        }
        Arrays.fill(s.massAll, 0);
        Arrays.fill(s.massGenerated, 0);
        float scale = scoreDivisor > 0 ? scoreDivisor : (float) Math.sqrt(headSize);
        int generatedFrom = generatedStart * blockSize;
        int rowEnd = Math.min(tokens, (qb + 1) * blockSize);
        s.keyTo[0] = tokens;
        for (int i = qb * blockSize; i < rowEnd; i += TILE) {
            int rows = Math.min(TILE, rowEnd - i);
            for (int r = 0; r < rows; r++) {
                s.qOffset[r] = qOffset + (i + r) * qStride;
            }
            VectorKernels.tileScores(rows, q, s.qOffset, k, kOffset, kStride, headSize, scale, s.keyFrom, s.keyTo,
                    1, s.scores, tokens);
            for (int r = 0; r < rows; r++) {
                int o = r * tokens;
                poolSoftmax(s.scores, o, 0, tokens, s.massAll, s.blockSums);
                poolSoftmax(s.scores, o, generatedFrom, tokens, s.massGenerated, s.blockSums);
            }
        }
        Arrays.fill(s.keep, false);
        markTop(s.massAll, 0, blocks, keepAll, s);
        for (int kb = generatedStart; kb < blocks; kb++) {
            s.keep[kb] = false; // the full-row selection only decides the prompt region
        }
        markTop(s.massGenerated, generatedStart, blocks, keepGenerated, s);
        int n = 0;
        for (boolean kept : s.keep) {
            if (kept) {
                n++;
            }
        }
        int[] row = new int[n];
        n = 0;
        for (int kb = 0; kb < blocks; kb++) {
            if (s.keep[kb]) {
                row[n++] = kb;
            }
        }
        rows[(layer * heads + head) * blocks + qb] = row;
    }

    /**
     * Adds the softmax of scores[o + from .. o + to) to the pooled mass of each key block: per block, the sum of its
     * exponentials (float lanes in a fixed order) over the row's sum, accumulated in double. Scores are read only.
     */
    private void poolSoftmax(float[] scores, int o, int from, int to, double[] mass, float[] blockSums) {
        if (from >= to) {
            return;
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int j = from; j < to; j++) {
            max = Math.max(max, scores[o + j]);
        }
        double rowSum = 0;
        int firstBlock = from / blockSize;
        int lastBlock = (to - 1) / blockSize;
        for (int kb = firstBlock; kb <= lastBlock; kb++) {
            int a = Math.max(from, kb * blockSize);
            int b = Math.min(to, (kb + 1) * blockSize);
            blockSums[kb] = expSum(scores, o + a, b - a, max);
            rowSum += blockSums[kb];
        }
        for (int kb = firstBlock; kb <= lastBlock; kb++) {
            mass[kb] += blockSums[kb] / rowSum;
        }
    }

    /** The sum of exp(x - max) over x[o .. o+n): vector lanes, then the fixed-order lane sum, then the tail. */
    static float expSum(float[] x, int o, int n, float max) {
        int bound = FLOATS.loopBound(n);
        FloatVector acc = FloatVector.zero(FLOATS);
        int i = 0;
        for (; i < bound; i += LANES) {
            acc = acc.add(VectorKernels.expNonPositive(FloatVector.fromArray(FLOATS, x, o + i).sub(max)));
        }
        float sum = VectorKernels.sum(acc);
        for (; i < n; i++) {
            sum += VectorKernels.expNonPositive(x[o + i] - max);
        }
        return sum;
    }

    /** Marks the {@code count} largest of mass[from, to), ties to the lower index (a stable sort, descending). */
    private static void markTop(double[] mass, int from, int to, int count, Scratch s) {
        int n = to - from;
        for (int i = 0; i < n; i++) {
            s.order[i] = from + i;
        }
        Arrays.sort(s.order, 0, n, (a, b) -> Double.compare(mass[b], mass[a]));
        for (int i = 0; i < count; i++) {
            s.keep[s.order[i]] = true;
        }
    }

    /** The pattern, once every (layer, head, query block) has been selected. */
    public SparsePattern finish() {
        int[][] indptr = new int[layers * heads][];
        int[][] indices = new int[layers * heads][];
        for (int u = 0; u < layers * heads; u++) {
            int[] ptr = new int[blocks + 1];
            for (int qb = 0; qb < blocks; qb++) {
                int[] row = rows[u * blocks + qb];
                if (row == null) {
                    throw new IllegalStateException("layer " + u / heads + " head " + u % heads + " query block " + qb
                            + " was never selected");
                }
                ptr[qb + 1] = ptr[qb] + row.length;
            }
            int[] idx = new int[ptr[blocks]];
            for (int qb = 0; qb < blocks; qb++) {
                int[] row = rows[u * blocks + qb];
                System.arraycopy(row, 0, idx, ptr[qb], row.length);
            }
            indptr[u] = ptr;
            indices[u] = idx;
        }
        return new SparsePattern(layers, heads, tokens, blockSize, indptr, indices);
    }

    public SparseDPolicy policy() {
        return policy;
    }
}
