package io.stepstream.engine.sparse;

import java.util.Arrays;

/**
 * Which key blocks each query block of one canvas attends to, for every layer and query head: block-sparse rows
 * in the layout of FlashInfer's BSR (compressed sparse rows of blocks). The canvas of {@link #tokens()} positions is
 * cut into {@link #blocks()} blocks of {@link #blockSize()} (the last one may be shorter); for layer l and head h,
 * query block qb attends to the key blocks {@code indices[indptr[qb] .. indptr[qb+1])}, strictly ascending.
 *
 * <p>Ascending order is part of the contract: attention sums keys in this order, so a pattern that keeps every
 * block gives the very same float operations as dense attention. Immutable; the arrays are owned by the pattern.
 */
public final class SparsePattern {
    private final int layers;
    private final int heads;
    private final int tokens;
    private final int blockSize;
    private final int blocks;
    /** Per (layer * heads + head): blocks + 1 row pointers into the same entry of {@link #indices}. */
    final int[][] indptr;
    /** Per (layer * heads + head): the kept key blocks, row after row. */
    final int[][] indices;
    private final long bytes;
    private final long keptBlocks;

    /** Takes ownership of the arrays after checking them (callers in this package build them fresh). */
    SparsePattern(int layers, int heads, int tokens, int blockSize, int[][] indptr, int[][] indices) {
        if (layers < 1 || heads < 1 || tokens < 1 || blockSize < 1) {
            throw new IllegalArgumentException("layers, heads, tokens and blockSize must be >= 1, got " + layers + ", "
                    + heads + ", " + tokens + ", " + blockSize);
        }
        int blocks = blocksFor(tokens, blockSize);
        int lh = layers * heads;
        if (indptr == null || indices == null || indptr.length != lh || indices.length != lh) {
            throw new IllegalArgumentException("indptr and indices must have one row per (layer, head): " + lh);
        }
        long bytes = 0;
        long kept = 0;
        for (int u = 0; u < lh; u++) {
            int[] ptr = indptr[u];
            int[] idx = indices[u];
            String where = "layer " + u / heads + " head " + u % heads;
            if (ptr == null || ptr.length != blocks + 1 || ptr[0] != 0) {
                throw new IllegalArgumentException(where + ": indptr must hold " + (blocks + 1) + " entries from 0");
            }
            if (idx == null || ptr[blocks] != idx.length) {
                throw new IllegalArgumentException(where + ": indptr ends at " + ptr[blocks] + " but indices has "
                        + (idx == null ? "null" : idx.length) + " entries");
            }
            for (int qb = 0; qb < blocks; qb++) {
                if (ptr[qb + 1] <= ptr[qb]) {
                    throw new IllegalArgumentException(where + " query block " + qb
                            + ": must attend to at least one key block (indptr must increase)");
                }
                for (int i = ptr[qb]; i < ptr[qb + 1]; i++) {
                    int kb = idx[i];
                    if (kb < 0 || kb >= blocks || (i > ptr[qb] && kb <= idx[i - 1])) {
                        throw new IllegalArgumentException(where + " query block " + qb + ": key blocks must be"
                                + " strictly ascending in [0, " + blocks + "), got " + kb);
                    }
                }
            }
            bytes += 4L * (ptr.length + idx.length);
            kept += idx.length;
        }
        this.layers = layers;
        this.heads = heads;
        this.tokens = tokens;
        this.blockSize = blockSize;
        this.blocks = blocks;
        this.indptr = indptr;
        this.indices = indices;
        this.bytes = bytes;
        this.keptBlocks = kept;
    }

    /** A pattern from caller-owned arrays, copied and validated. */
    public static SparsePattern of(int layers, int heads, int tokens, int blockSize, int[][] indptr,
                                   int[][] indices) {
        return new SparsePattern(layers, heads, tokens, blockSize, deepCopy(indptr), deepCopy(indices));
    }

    /** Every query block attends to every key block: the same arithmetic as dense attention. */
    public static SparsePattern dense(int layers, int heads, int tokens, int blockSize) {
        int blocks = blocksFor(tokens, blockSize);
        int[] ptr = new int[blocks + 1];
        int[] idx = new int[blocks * blocks];
        for (int qb = 0; qb < blocks; qb++) {
            ptr[qb + 1] = (qb + 1) * blocks;
            for (int kb = 0; kb < blocks; kb++) {
                idx[qb * blocks + kb] = kb;
            }
        }
        int[][] indptr = new int[layers * heads][];
        int[][] indices = new int[layers * heads][];
        for (int u = 0; u < indptr.length; u++) {
            indptr[u] = ptr.clone();
            indices[u] = idx.clone();
        }
        return new SparsePattern(layers, heads, tokens, blockSize, indptr, indices);
    }

    /** ceil(tokens / blockSize). */
    public static int blocksFor(int tokens, int blockSize) {
        return (int) ((tokens + (long) blockSize - 1) / blockSize);
    }

    private static int[][] deepCopy(int[][] a) {
        if (a == null) {
            return null;
        }
        int[][] c = new int[a.length][];
        for (int i = 0; i < a.length; i++) {
            c[i] = a[i] == null ? null : a[i].clone();
        }
        return c;
    }

    public int layers() {
        return layers;
    }

    public int heads() {
        return heads;
    }

    /** The canvas length this pattern was built for. */
    public int tokens() {
        return tokens;
    }

    public int blockSize() {
        return blockSize;
    }

    /** Query blocks = key blocks = ceil(tokens / blockSize). */
    public int blocks() {
        return blocks;
    }

    /** The key blocks query block {@code qb} of (layer, head) attends to, ascending (a copy). */
    public int[] keyBlocks(int layer, int head, int qb) {
        int u = unit(layer, head);
        if (qb < 0 || qb >= blocks) {
            throw new IndexOutOfBoundsException("query block " + qb + " outside [0, " + blocks + ")");
        }
        return Arrays.copyOfRange(indices[u], indptr[u][qb], indptr[u][qb + 1]);
    }

    /**
     * The keys query block {@code qb} of (layer, head) attends to as ascending position ranges
     * [from[i], to[i]), one per kept key block (the last block ends at the canvas); returns their count. No copy:
     * the attention hot loop calls this per tile.
     */
    public int keyRanges(int layer, int head, int qb, int[] from, int[] to) {
        int u = unit(layer, head);
        int n = 0;
        for (int b = indptr[u][qb]; b < indptr[u][qb + 1]; b++, n++) {
            from[n] = indices[u][b] * blockSize;
            to[n] = Math.min(tokens, from[n] + blockSize);
        }
        return n;
    }

    /** A copy of the row pointers of (layer, head). */
    public int[] indptr(int layer, int head) {
        return indptr[unit(layer, head)].clone();
    }

    /** A copy of the key block indices of (layer, head). */
    public int[] indices(int layer, int head) {
        return indices[unit(layer, head)].clone();
    }

    int unit(int layer, int head) {
        if (layer < 0 || layer >= layers || head < 0 || head >= heads) {
            throw new IndexOutOfBoundsException("(layer " + layer + ", head " + head + ") outside " + layers + " x "
                    + heads);
        }
        return layer * heads + head;
    }

    /**
     * Exact bytes of what the pattern holds: 4 bytes per int of every indptr and indices array (the arrays' own
     * object headers are not counted; they are a constant per (layer, head)).
     */
    public long bytes() {
        return bytes;
    }

    /** (query block, key block) pairs kept over all layers and heads. */
    public long keptBlocks() {
        return keptBlocks;
    }

    /** Kept pairs over all pairs, in (0, 1]; 1 means dense. */
    public double density() {
        return keptBlocks / ((double) layers * heads * blocks * blocks);
    }

    @Override
    public String toString() {
        return "SparsePattern[" + layers + " layers x " + heads + " heads, " + tokens + " tokens in " + blocks
                + " blocks of " + blockSize + ", density " + String.format("%.3f", density()) + ", " + bytes
                + " bytes]";
    }
}
