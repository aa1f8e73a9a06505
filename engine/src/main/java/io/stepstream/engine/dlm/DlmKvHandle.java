package io.stepstream.engine.dlm;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Names one request's keys and values in a {@link DlmKvCache}. Compared by identity; the id is for logs. The request
 * owns it from its first step until it ends, when the scheduler calls {@link DiffusionModel#releaseKvCache}.
 */
public final class DlmKvHandle {
    private static final AtomicLong NEXT = new AtomicLong();
    private final long id = NEXT.incrementAndGet();

    public long id() {
        return id;
    }

    @Override
    public String toString() {
        return "DlmKvHandle#" + id;
    }
}
