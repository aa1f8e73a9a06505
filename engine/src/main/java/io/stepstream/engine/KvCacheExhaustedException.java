package io.stepstream.engine;

/** The model's bounded KV block pool has no free block left for a sequence that needs one. */
public class KvCacheExhaustedException extends RuntimeException {
    public KvCacheExhaustedException(String message) {
        super(message);
    }
}
