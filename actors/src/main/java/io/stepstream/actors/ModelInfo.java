package io.stepstream.actors;

import io.stepstream.scheduler.PatternCacheStats;

/**
 * What ListModels reports of one loaded model.
 *
 * @param patternCache a diffusion model's SparseD pattern cache counters when this was read; null for an
 *                     autoregressive model
 */
public record ModelInfo(String name, String kind, int contextLength, int vocabSize, String backend, String device,
                        PatternCacheStats patternCache) {
    /** A model without a pattern cache. */
    public ModelInfo(String name, String kind, int contextLength, int vocabSize, String backend, String device) {
        this(name, kind, contextLength, vocabSize, backend, device, null);
    }

    /** The same model with other pattern cache counters. */
    public ModelInfo withPatternCache(PatternCacheStats patternCache) {
        return new ModelInfo(name, kind, contextLength, vocabSize, backend, device, patternCache);
    }
}
