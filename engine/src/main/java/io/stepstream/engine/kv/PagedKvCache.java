package io.stepstream.engine.kv;

import io.stepstream.engine.KvCache;

/**
 * One sequence's KV cache: a block table into its model's {@link KvBlockPool}. A new block is taken only
 * when the sequence crosses a block boundary; close() hands all blocks back.
 */
public final class PagedKvCache implements KvCache {
    private final KvBlockPool pool;
    private final int capacity;
    private final int[] table;
    private int blockCount;
    private int length;
    private boolean closed;
    /** Marks the forward step this cache was last seen in, so a step can reject a cache listed twice. */
    private long stepStamp = -1;

    public PagedKvCache(KvBlockPool pool, int capacity) {
        this.pool = pool;
        this.capacity = capacity;
        this.table = new int[(capacity + KvBlockPool.BLOCK_POSITIONS - 1) / KvBlockPool.BLOCK_POSITIONS];
    }

    public KvBlockPool pool() {
        return pool;
    }

    @Override
    public synchronized int length() {
        return length;
    }

    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public synchronized long bytes() {
        return blockCount * pool.blockBytes();
    }

    public synchronized int blockCount() {
        return blockCount;
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    /** Blocks needed beyond those held so that {@code positions} positions fit. */
    public synchronized int blocksMissingFor(int positions) {
        int needed = (positions + KvBlockPool.BLOCK_POSITIONS - 1) / KvBlockPool.BLOCK_POSITIONS;
        return Math.max(0, needed - blockCount);
    }

    /** Makes room for {@code positions} positions, taking blocks from the pool as needed. */
    public synchronized void reserve(int positions) {
        checkOpen();
        if (positions > capacity) {
            throw new IllegalArgumentException("sequence of " + positions + " positions exceeds the context length "
                    + capacity);
        }
        int missing = blocksMissingFor(positions);
        if (missing > 0) {
            pool.allocate(missing, table, blockCount);
            blockCount += missing;
        }
    }

    /** Records that positions up to {@code newLength} are now written. */
    public synchronized void advance(int newLength) {
        checkOpen();
        if (newLength < length || newLength > blockCount * KvBlockPool.BLOCK_POSITIONS) {
            throw new IllegalStateException("cannot advance cache from " + length + " to " + newLength);
        }
        length = newLength;
    }

    /** The block table (valid entries 0..blockCount-1); read by the forward pass, never modified there. */
    public int[] blockTable() {
        return table;
    }

    public long stepStamp() {
        return stepStamp;
    }

    public void stepStamp(long stamp) {
        this.stepStamp = stamp;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("KV cache is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            pool.release(table, blockCount);
            blockCount = 0;
        }
    }
}
