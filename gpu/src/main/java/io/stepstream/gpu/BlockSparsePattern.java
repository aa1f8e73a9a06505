package io.stepstream.gpu;

import java.util.Arrays;

/**
 * Which key blocks each query block of a sequence attends to, per layer and query head, as one block-sparse
 * row matrix (BSR, like FlashInfer's): row {@code (layer * nHeads + head) * queryBlocks + queryBlock} lists,
 * in {@code indices[indptr[row] .. indptr[row+1])}, the sequence's key block numbers (block = 16 positions,
 * numbered from the start of the sequence, not pool block ids). Attention stays causal inside the listed
 * blocks. Every row must list its own (diagonal) block, so each query sees at least itself, and no block twice.
 */
public record BlockSparsePattern(int nLayers, int nHeads, int queryBlocks, int[] indptr, int[] indices) {
    public BlockSparsePattern {
        if (nLayers <= 0 || nHeads <= 0 || queryBlocks <= 0) {
            throw new IllegalArgumentException("pattern shape must be positive: " + nLayers + " layers, " + nHeads
                    + " heads, " + queryBlocks + " query blocks");
        }
        int rows = nLayers * nHeads * queryBlocks;
        if (indptr == null || indptr.length != rows + 1) {
            throw new IllegalArgumentException("indptr must hold rows + 1 = " + (rows + 1) + " offsets, got "
                    + (indptr == null ? "null" : indptr.length));
        }
        if (indices == null || indptr[0] != 0 || indptr[rows] != indices.length) {
            throw new IllegalArgumentException("indptr must start at 0 and end at indices.length");
        }
        boolean[] seen = new boolean[queryBlocks];
        for (int r = 0; r < rows; r++) {
            int qb = r % queryBlocks;
            if (indptr[r + 1] < indptr[r]) {
                throw new IllegalArgumentException("indptr decreases at row " + r);
            }
            Arrays.fill(seen, false);
            for (int m = indptr[r]; m < indptr[r + 1]; m++) {
                int kb = indices[m];
                if (kb < 0 || kb > qb) {
                    throw new IllegalArgumentException("row " + r + " (query block " + qb + "): key block " + kb
                            + " is outside [0, " + qb + "] (attention is causal)");
                }
                if (seen[kb]) {
                    throw new IllegalArgumentException("row " + r + ": key block " + kb + " listed twice");
                }
                seen[kb] = true;
            }
            if (!seen[qb]) {
                throw new IllegalArgumentException("row " + r + " does not list its own query block " + qb);
            }
        }
        indptr = indptr.clone();
        indices = indices.clone();
    }

    /** Every causal key block for every query block: the same result as dense attention. */
    public static BlockSparsePattern dense(int nLayers, int nHeads, int queryBlocks) {
        int rows = nLayers * nHeads * queryBlocks;
        int[] indptr = new int[rows + 1];
        for (int r = 0; r < rows; r++) {
            indptr[r + 1] = indptr[r] + r % queryBlocks + 1;
        }
        int[] indices = new int[indptr[rows]];
        for (int r = 0; r < rows; r++) {
            for (int kb = 0; kb <= r % queryBlocks; kb++) {
                indices[indptr[r] + kb] = kb;
            }
        }
        return new BlockSparsePattern(nLayers, nHeads, queryBlocks, indptr, indices);
    }

    /** A copy: the pattern was validated once and stays as it was. */
    @Override
    public int[] indptr() {
        return indptr.clone();
    }

    @Override
    public int[] indices() {
        return indices.clone();
    }

    int indptrLength() {
        return indptr.length;
    }

    int indicesLength() {
        return indices.length;
    }

    void copyInto(int[] indptrOut, int indptrAt, int[] indicesOut, int indicesAt) {
        System.arraycopy(indptr, 0, indptrOut, indptrAt, indptr.length);
        System.arraycopy(indices, 0, indicesOut, indicesAt, indices.length);
    }

    /** The key blocks of one (layer, head, query block). */
    public int[] keyBlocks(int layer, int head, int queryBlock) {
        int r = (layer * nHeads + head) * queryBlocks + queryBlock;
        return Arrays.copyOfRange(indices, indptr[r], indptr[r + 1]);
    }
}
