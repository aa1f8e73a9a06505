package io.stepstream.engine.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * The engine's own small pool of compute threads. {@link #run} splits an index range into chunks that the
 * caller and the workers claim until none is left, and returns when all are done. Nothing is allocated
 * per call: the task object is reused by its owner and the claim counter packs (job generation, next chunk)
 * into one atomic long, so a worker that wakes late can never claim a chunk of a newer job by mistake.
 * One job at a time (callers are the model's single step thread).
 */
public final class ComputePool implements AutoCloseable {
    /** Work over {@code [from, to)}; {@code worker} is 0 for the caller and 1..n-1 for pool threads. */
    @FunctionalInterface
    public interface RangeTask {
        void run(int from, int to, int worker);
    }

    private static final int SPINS_BEFORE_PARK = 1 << 10;
    /**
     * How long an idle worker keeps spinning before it parks. A batch-1 step of a small model is dozens of
     * pool runs with a few to a few dozen microseconds of serial work between them; a parked worker costs a
     * wake-up (tens of microseconds, more on a busy machine) during which the caller does the chunks alone, so
     * the spin must outlast those gaps. A count of spins did not: PAUSE takes from ~10 to ~140 cycles
     * depending on the CPU, so 1024 of them can be as little as a few microseconds.
     */
    private static final long SPIN_NANOS_BEFORE_PARK = 200_000;

    private final Thread[] workers;
    /** High 32 bits: job generation; low 32 bits: next chunk to claim. */
    private final AtomicLong claim = new AtomicLong();
    private final AtomicInteger chunksLeft = new AtomicInteger();
    private volatile boolean closed;
    private volatile Throwable failure;
    // Job fields: written by the caller before it publishes the job through `claim`.
    private RangeTask task;
    private int size;
    private int grain;
    private int chunks;

    /** @param threads total threads including the caller's; 1 means everything runs on the caller */
    public ComputePool(int threads, String name) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            int index = i + 1;
            workers[i] = Thread.ofPlatform().daemon().name(name + "-" + index).unstarted(() -> workLoop(index));
            workers[i].start();
        }
    }

    /** Threads that may run a task at once, counting the caller; also the number of worker indexes. */
    public int threads() {
        return workers.length + 1;
    }

    /**
     * Runs {@code task} over {@code [0, size)} in chunks of {@code grain}; on the caller alone when
     * {@code parallel} is false, the pool has no workers, or there is only one chunk.
     */
    public void run(RangeTask task, int size, int grain, boolean parallel) {
        if (size <= 0) {
            return;
        }
        int g = Math.max(1, grain);
        int n = (int) ((size + (long) g - 1) / g);
        if (!parallel || workers.length == 0 || n == 1) {
            task.run(0, size, 0);
            return;
        }
        if (closed) {
            throw new IllegalStateException("compute pool is closed");
        }
        // Seal the previous job's counter before touching the job fields: a worker that read the old,
        // exhausted counter could otherwise see the new (larger) chunk count, win its CAS on the old
        // generation and run a chunk of the new task twice.
        long previous = claim.get() >>> 32;
        claim.set((previous << 32) | Integer.MAX_VALUE);
        this.task = task;
        this.size = size;
        this.grain = g;
        this.chunks = n;
        chunksLeft.set(n);
        long generation = previous + 1;
        claim.set(generation << 32); // publishes the job fields above (volatile write)
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
        work(generation, 0);
        int spins = 0;
        while (chunksLeft.get() > 0) {
            if (++spins < SPINS_BEFORE_PARK) {
                Thread.onSpinWait();
            } else {
                Thread.yield();
            }
        }
        this.task = null;
        Throwable t = failure;
        if (t != null) {
            failure = null;
            if (t instanceof RuntimeException re) {
                throw re;
            }
            if (t instanceof Error e) {
                throw e;
            }
            throw new IllegalStateException("compute task failed", t);
        }
    }

    private void work(long generation, int worker) {
        while (true) {
            long c = claim.get();
            if ((c >>> 32) != generation) {
                return;
            }
            int chunk = (int) c;
            if (chunk >= chunks) {
                return;
            }
            if (!claim.compareAndSet(c, c + 1)) {
                continue;
            }
            // The job cannot finish (and its fields cannot change) before this claimed chunk is counted down.
            int from = chunk * grain;
            try {
                task.run(from, Math.min(size, from + grain), worker);
            } catch (Throwable t) {
                failure = t; // reported by the caller; the worker thread must survive
            } finally {
                chunksLeft.decrementAndGet();
            }
        }
    }

    private void workLoop(int index) {
        long seen = 0;
        int spins = 0;
        long idleSince = System.nanoTime();
        while (!closed) {
            long generation = claim.get() >>> 32;
            if (generation != seen) {
                seen = generation;
                work(generation, index);
                spins = 0;
                idleSince = System.nanoTime();
            } else if ((++spins & 63) != 0 || System.nanoTime() - idleSince < SPIN_NANOS_BEFORE_PARK) {
                Thread.onSpinWait(); // the clock is read once per 64 spins
            } else {
                LockSupport.park(this);
                idleSince = System.nanoTime(); // woken (or spuriously): spin again before parking
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
