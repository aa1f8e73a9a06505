package io.stepstream.engine.dlm;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * The kept keys and values of the cached (Fast-dLLM) diffusion requests in flight, bounded in bytes.
 *
 * <p>A request holds one entry: per layer, the RoPE-rotated keys and the values of every canvas position
 * ({@code 2 x layers x canvas x kvDim} floats; PREFIX mode reads only the positions before the block from it, but the
 * rows it recomputes are written into the same buffers so that one attention loop serves every mode). The entry is
 * made at the request's first block refresh and reused by the later ones. Nothing is evicted: a held entry belongs
 * to a running request whose next step needs it. An entry that would pass the cap is refused; that request's steps
 * then run the whole canvas without a cache (exact LLaDA for those steps) until a later block refresh finds room.
 * Every reuse step's lookup counts a hit or a miss.
 *
 * <p>The scheduler frees a request's entry when the request ends (done, stopped, cancelled, failed). Thread-safe.
 */
public final class DlmKvCache {
    /** Room for dozens of long canvases of a ~100M model (a 4k canvas at 12 layers x 768 wide is about 300 MiB). */
    public static final long DEFAULT_CAP_BYTES = 1L << 30;

    /** One request's buffers: {@code keys[layer][position * kvDim + i]}, likewise values. */
    record Entry(float[][] keys, float[][] values, int tokens, int kvDim) {
        long bytes() {
            return bytesFor(keys.length, tokens, kvDim);
        }
    }

    private final long capBytes;
    private final Map<DlmKvHandle, Entry> entries = new IdentityHashMap<>();
    private long bytesHeld;
    private long hits;
    private long misses;
    private long refusals;

    /** @param capBytes the most bytes held at once, >= 0 (0 refuses every request: all run without a cache) */
    public DlmKvCache(long capBytes) {
        if (capBytes < 0) {
            throw new IllegalArgumentException("dlm kv cache cap must be >= 0 bytes, got " + capBytes);
        }
        this.capBytes = capBytes;
    }

    public static DlmKvCache withDefaultCap() {
        return new DlmKvCache(DEFAULT_CAP_BYTES);
    }

    /** Bytes of one request's entry. */
    public static long bytesFor(int layers, int tokens, int kvDim) {
        return 2L * layers * tokens * kvDim * Float.BYTES;
    }

    /**
     * The request's entry for a block refresh: the one it holds when its shape fits, else a new one if the cap
     * allows (the old one is freed first). Null when refused.
     */
    synchronized Entry acquire(DlmKvHandle handle, int layers, int tokens, int kvDim) {
        requireHandle(handle);
        Entry old = entries.get(handle);
        if (old != null && old.keys().length == layers && old.tokens() == tokens && old.kvDim() == kvDim) {
            return old;
        }
        if (old != null) {
            entries.remove(handle);
            bytesHeld -= old.bytes();
        }
        long need = bytesFor(layers, tokens, kvDim);
        if (bytesHeld + need > capBytes || (long) tokens * kvDim > Integer.MAX_VALUE) {
            refusals++;
            return null;
        }
        Entry e = new Entry(new float[layers][tokens * kvDim], new float[layers][tokens * kvDim], tokens, kvDim);
        entries.put(handle, e);
        bytesHeld += need;
        return e;
    }

    /** The request's entry for a reuse step, or null (never made, or refused). Counts a hit or a miss. */
    synchronized Entry lookup(DlmKvHandle handle) {
        Entry e = entries.get(requireHandle(handle));
        if (e == null) {
            misses++;
        } else {
            hits++;
        }
        return e;
    }

    /** Frees the request's entry; {@code null} and unknown handles are ignored (a request may never have had one). */
    public synchronized void release(DlmKvHandle handle) {
        if (handle == null) {
            return;
        }
        Entry e = entries.remove(handle);
        if (e != null) {
            bytesHeld -= e.bytes();
        }
    }

    /** True while the request holds an entry. */
    public synchronized boolean holds(DlmKvHandle handle) {
        return entries.containsKey(requireHandle(handle));
    }

    public synchronized long bytesHeld() {
        return bytesHeld;
    }

    public long capBytes() {
        return capBytes;
    }

    public synchronized int entries() {
        return entries.size();
    }

    public synchronized long hits() {
        return hits;
    }

    public synchronized long misses() {
        return misses;
    }

    public synchronized long refusals() {
        return refusals;
    }

    private static DlmKvHandle requireHandle(DlmKvHandle handle) {
        if (handle == null) {
            throw new IllegalArgumentException("cache handle must not be null");
        }
        return handle;
    }
}
