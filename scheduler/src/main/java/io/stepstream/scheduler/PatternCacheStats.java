package io.stepstream.scheduler;

import io.stepstream.engine.sparse.PatternCache;

/**
 * What a diffusion model's SparseD {@link PatternCache} holds and has done, read at one moment: for snapshots,
 * ListModels and operators.
 *
 * @param hits       lookups that found the request's pattern (a sparse step)
 * @param misses     lookups that did not (the switch step, a step after an eviction, or a refused pattern)
 * @param bytesInUse pattern bytes held now
 * @param capBytes   the most pattern bytes held at once
 * @param entries    patterns held now (one per request past its switch step)
 * @param evictions  patterns dropped to make room for another request's (that request rebuilds it)
 * @param refusals   patterns larger than the whole cap, not stored (their requests run dense)
 */
public record PatternCacheStats(long hits, long misses, long bytesInUse, long capBytes, int entries, long evictions,
                                long refusals) {
    /** The cache's counters, consistent with each other. */
    public static PatternCacheStats of(PatternCache cache) {
        // PatternCache synchronizes every method on itself, so holding its monitor reads all counters at one moment.
        synchronized (cache) {
            return new PatternCacheStats(cache.hits(), cache.misses(), cache.bytesHeld(), cache.capBytes(),
                    cache.patterns(), cache.evictions(), cache.refusals());
        }
    }
}
