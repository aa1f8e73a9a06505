package io.stepstream.engine.sparse;

import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The sparse patterns of the requests in flight, bounded in bytes ({@link SparsePattern#bytes()}).
 *
 * <p>Past the cap, the least recently used patterns of other requests are evicted to make room; an evicted request
 * misses at its next step and rebuilds its pattern while that step runs dense (so eviction costs time, never
 * correctness of the forward). A pattern larger than the whole cap is refused: it is not stored, and its request
 * runs dense for the rest of its life (rebuilding it every step would be the worst of both). Every lookup counts a
 * hit or a miss; the switch step of a request is its first miss.
 *
 * <p>The scheduler calls {@link #release} when a request ends (finished, cancelled, failed), which frees its
 * bytes. Thread-safe (the step thread stores and looks up, the scheduler may release from elsewhere).
 */
public final class PatternCache {
    /** Large enough for many long-context requests of a ~100M model (a 32k canvas in 128-blocks at select 0.3 and
     *  144 heads is about 4 MiB), small beside the model. */
    public static final long DEFAULT_CAP_BYTES = 256L << 20;

    private final long capBytes;
    private final LinkedHashMap<PatternHandle, SparsePattern> patterns = new LinkedHashMap<>(16, 0.75f, true);
    private final Set<PatternHandle> refused = new HashSet<>();
    private long bytesHeld;
    private long hits;
    private long misses;
    private long evictions;
    private long refusals;

    /** @param capBytes the most pattern bytes held at once, >= 0 (0 refuses everything: all requests run dense) */
    public PatternCache(long capBytes) {
        if (capBytes < 0) {
            throw new IllegalArgumentException("pattern cache cap must be >= 0 bytes, got " + capBytes);
        }
        this.capBytes = capBytes;
    }

    public static PatternCache withDefaultCap() {
        return new PatternCache(DEFAULT_CAP_BYTES);
    }

    /** The request's pattern, or null (a miss: never built, evicted, or refused). Counts a hit or a miss. */
    public synchronized SparsePattern lookup(PatternHandle handle) {
        SparsePattern p = patterns.get(requireHandle(handle));
        if (p == null) {
            misses++;
        } else {
            hits++;
        }
        return p;
    }

    /** True when the request's pattern was refused for size: it runs dense until released. */
    public synchronized boolean isRefused(PatternHandle handle) {
        return refused.contains(requireHandle(handle));
    }

    /**
     * Stores (or replaces) the request's pattern, evicting least recently used ones of other requests until it fits.
     *
     * @return false when the pattern alone is larger than the cap: nothing is evicted, it is not stored, and the
     *         request is marked refused
     */
    public synchronized boolean store(PatternHandle handle, SparsePattern pattern) {
        requireHandle(handle);
        if (pattern == null) {
            throw new IllegalArgumentException("pattern must not be null");
        }
        SparsePattern old = patterns.remove(handle);
        if (old != null) {
            bytesHeld -= old.bytes();
        }
        if (pattern.bytes() > capBytes) {
            refused.add(handle);
            refusals++;
            return false;
        }
        Iterator<Map.Entry<PatternHandle, SparsePattern>> eldest = patterns.entrySet().iterator();
        while (bytesHeld + pattern.bytes() > capBytes) {
            Map.Entry<PatternHandle, SparsePattern> e = eldest.next();
            bytesHeld -= e.getValue().bytes();
            eldest.remove();
            evictions++;
        }
        patterns.put(handle, pattern);
        bytesHeld += pattern.bytes();
        return true;
    }

    /** Frees the request's pattern (if held) and forgets it; safe to call more than once, or for a dense request. */
    public synchronized void release(PatternHandle handle) {
        if (handle == null) {
            return;
        }
        SparsePattern p = patterns.remove(handle);
        if (p != null) {
            bytesHeld -= p.bytes();
        }
        refused.remove(handle);
    }

    /** Whether the request's pattern is held now (does not count as a lookup). */
    public synchronized boolean holds(PatternHandle handle) {
        return patterns.containsKey(handle);
    }

    public long capBytes() {
        return capBytes;
    }

    public synchronized long bytesHeld() {
        return bytesHeld;
    }

    public synchronized int patterns() {
        return patterns.size();
    }

    public synchronized long hits() {
        return hits;
    }

    public synchronized long misses() {
        return misses;
    }

    public synchronized long evictions() {
        return evictions;
    }

    public synchronized long refusals() {
        return refusals;
    }

    /** Hits over lookups, 0 before any. */
    public synchronized double hitRate() {
        long lookups = hits + misses;
        return lookups == 0 ? 0 : hits / (double) lookups;
    }

    private static PatternHandle requireHandle(PatternHandle handle) {
        if (handle == null) {
            throw new IllegalArgumentException("pattern handle must not be null");
        }
        return handle;
    }

    @Override
    public synchronized String toString() {
        return "PatternCache[" + patterns.size() + " patterns, " + bytesHeld + "/" + capBytes + " bytes, hits " + hits
                + ", misses " + misses + ", evictions " + evictions + ", refusals " + refusals + "]";
    }
}
