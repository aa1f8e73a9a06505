package io.stepstream.engine.kv;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCacheExhaustedException;
import io.stepstream.engine.ModelConfig;
import java.util.List;

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
    /** False for a pool that only accounts blocks whose storage lives elsewhere (a device): no host arrays. */
    private final boolean hostStorage;
    private final int[] free;
    private int freeCount;
    private int created;
    /** Marks the caches of the batch being checked, to find a cache that appears twice. */
    private long stepStamp;

    public KvBlockPool(int nLayers, int kvDim, int maxBlocks) {
        this(nLayers, kvDim, maxBlocks, true);
    }

    /**
     * A pool that hands out, recycles and bounds block ids exactly as a storing pool does but allocates no host
     * storage, for a backend that keeps its KV blocks on a device (a GPU model's pool of gigabytes would otherwise
     * take as much Java heap for arrays nothing reads). {@link #block} fails on it.
     */
    public static KvBlockPool accountingOnly(int nLayers, int kvDim, int maxBlocks) {
        return new KvBlockPool(nLayers, kvDim, maxBlocks, false);
    }

    private KvBlockPool(int nLayers, int kvDim, int maxBlocks, boolean hostStorage) {
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
        this.hostStorage = hostStorage;
        this.blocks = hostStorage ? new float[maxBlocks][] : null;
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
                if (hostStorage) {
                    blocks[id] = new float[blockFloats];
                }
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
        if (!hostStorage) {
            throw new IllegalStateException("this KV block pool only accounts blocks; their storage is on a device");
        }
        return blocks[id];
    }

    /** Whether blocks have host storage ({@link #block}); false for {@link #accountingOnly} pools. */
    public boolean hostStorage() {
        return hostStorage;
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

    /**
     * Checks a forward batch of model {@code name} against this pool and the model's shape (caches of this pool,
     * open, each once; logits rows; context; token ids; batch size), then takes every KV block it needs, all
     * or nothing. Returns the entries' caches. One step at a time (a model's single step thread).
     */
    public PagedKvCache[] reserveBatch(String name, ModelConfig config, List<ForwardBatch.Entry> entries,
                                       float[][] logits) {
        int e = entries.size();
        if (logits == null || logits.length < e) {
            throw new IllegalArgumentException("logits must have a row per entry: " + e + " entries, "
                    + (logits == null ? "null" : logits.length + " rows"));
        }
        long stamp = ++stepStamp;
        PagedKvCache[] caches = new PagedKvCache[e];
        long tokens = 0;
        int missingBlocks = 0;
        int vocab = config.vocabSize();
        for (int i = 0; i < e; i++) {
            ForwardBatch.Entry en = entries.get(i);
            if (!(en.cache() instanceof PagedKvCache cache) || cache.pool() != this) {
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
            caches[i] = cache;
            tokens += en.length();
            missingBlocks += cache.blocksMissingFor((int) end);
        }
        if (tokens > Integer.MAX_VALUE / Math.max(config.hiddenDim(), config.dim())) {
            throw new IllegalArgumentException("batch of " + tokens + " tokens is too large for one step");
        }
        int free = freeBlocks();
        if (missingBlocks > free) {
            throw new KvCacheExhaustedException("KV block pool of model " + name + " exhausted: the batch needs "
                    + missingBlocks + " more block(s), " + free + " of " + maxBlocks + " free");
        }
        for (int i = 0; i < e; i++) {
            caches[i].reserve(caches[i].length() + entries.get(i).length());
        }
        return caches;
    }
}
