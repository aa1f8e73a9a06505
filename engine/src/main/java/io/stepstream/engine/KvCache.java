package io.stepstream.engine;

/** The keys and values one sequence has written so far, across all layers. */
public interface KvCache extends AutoCloseable {
    /** Number of positions already written. */
    int length();

    /** Positions this cache can hold at most (the model's context length). */
    int capacity();

    /** Bytes of memory currently held. */
    long bytes();

    /** Releases the memory; the cache must not be used afterwards. */
    @Override
    void close();
}
