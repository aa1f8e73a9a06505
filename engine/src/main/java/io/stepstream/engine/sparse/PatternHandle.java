package io.stepstream.engine.sparse;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Names one request's pattern in a {@link PatternCache}. Compared by identity; the id is for logs. The request
 * owns it from its first step until it ends, when the scheduler calls {@link PatternCache#release}.
 */
public final class PatternHandle {
    private static final AtomicLong NEXT = new AtomicLong();
    private final long id = NEXT.incrementAndGet();

    public long id() {
        return id;
    }

    @Override
    public String toString() {
        return "PatternHandle#" + id;
    }
}
