package io.stepstream.engine.kv;

import io.stepstream.engine.KvCacheExhaustedException;

/**
 * A model's bounded pool of KV blocks. A block holds {@link #BLOCK_POSITIONS} positions of keys and values
 * for every layer, laid out [layer][k|v][position in block][kvDim] so one layer's keys of a block are
 * contiguous. Block storage is allocated on first use and recycled through a free list afterwards, so the
 * bound limits memory without reserving it up front. Thread-safe: caches may be closed from any thread.
 */
public final class KvBlockPool {
    public static final int BLOCK_POSITIONS = 16;

    private final int nLayers;
    private final int kvDim;
    private final int blockFloats;
    private final int maxBlocks;
    private final float[][] blocks;
    private final int[] free;
    private int freeCount;
    private int created;

    public KvBlockPool(int nLayers, int kvDim, int maxBlocks) {
        long floats = (long) nLayers * 2 * BLOCK_POSITIONS * kvDim;
        if (nLayers <= 0 || kvDim <= 0 || floats > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("bad KV block shape: " + nLayers + " layers x kvDim " + kvDim);
        }
        if (maxBlocks <= 0) {
            throw new IllegalArgumentException("maxBlocks must be positive, got " + maxBlocks);
        }
        this.nLayers = nLayers;
        this.kvDim = kvDim;
        this.blockFloats = (int) floats;
        this.maxBlocks = maxBlocks;
        this.blocks = new float[maxBlocks][];
        this.free = new int[maxBlocks];
    }

    public int maxBlocks() {
        return maxBlocks;
    }

    public long blockBytes() {
        return (long) blockFloats * Float.BYTES;
    }

    public synchronized int freeBlocks() {
        return freeCount + (maxBlocks - created);
    }

    public synchronized int usedBlocks() {
        return created - freeCount;
    }

    /** Takes {@code count} blocks into {@code into[at..]}, all or none. */
    synchronized void allocate(int count, int[] into, int at) {
        int available = freeCount + (maxBlocks - created);
        if (count > available) {
            throw new KvCacheExhaustedException("KV block pool exhausted: need " + count + " more block(s) of "
                    + BLOCK_POSITIONS + " positions, " + available + " of " + maxBlocks + " free");
        }
        for (int i = 0; i < count; i++) {
            int id;
            if (freeCount > 0) {
                id = free[--freeCount];
            } else {
                id = created++;
                blocks[id] = new float[blockFloats];
            }
            into[at + i] = id;
        }
    }

    synchronized void release(int[] ids, int count) {
        for (int i = 0; i < count; i++) {
            free[freeCount++] = ids[i];
        }
    }

    /** The storage of one block; valid while the block is held by a cache. */
    public float[] block(int id) {
        return blocks[id];
    }

    /** Offset of (layer, key, position-in-block) inside a block; values follow the keys of the same layer. */
    public int keyOffset(int layer, int positionInBlock) {
        return ((layer * 2) * BLOCK_POSITIONS + positionInBlock) * kvDim;
    }

    public int valueOffset(int layer, int positionInBlock) {
        return ((layer * 2 + 1) * BLOCK_POSITIONS + positionInBlock) * kvDim;
    }

    public int nLayers() {
        return nLayers;
    }
}
