package io.stepstream.engine.dlm;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.RecursiveAction;

/**
 * Runs the independent host pieces of a diffusion step (the requests of a batch after its forward, the positions of
 * one request's block) at once. {@link #run} splits {@code [0, size)} into chunks of {@code grain} and returns once
 * every chunk has run; chunk k is {@code [k * grain, min(size, (k + 1) * grain))}, so a task can keep scratch per
 * chunk ({@code from / grain}). Chunks must not depend on one another; each does its own work in its own order, so
 * results are the same whichever thread runs a chunk and whatever runs beside it.
 *
 * <p>Calls may nest: a chunk may itself call {@link #run} (a request's apply splitting its positions while the
 * requests of the batch run in parallel). The fork-join implementation lets a thread waiting for its sub-chunks run
 * others meanwhile, so nesting never deadlocks. (The model's {@code ComputePool} is not used for this: it runs one
 * job at a time and cannot nest.)
 */
public interface RangeExecutor {
    /** Work over {@code [from, to)}. */
    @FunctionalInterface
    interface RangeTask {
        void run(int from, int to);
    }

    /** Runs {@code task} over {@code [0, size)} in chunks of {@code grain} (at least 1); returns when all are done. */
    void run(int size, int grain, RangeTask task);

    /** Threads that may run chunks at once (1: everything on the caller). */
    int parallelism();

    /** Everything on the caller's thread, chunks in ascending order: for tests that must not start threads. */
    static RangeExecutor sameThread() {
        return SameThread.INSTANCE;
    }

    /** One shared fork-join pool as wide as the machine's cores; its threads are daemons, started on demand. */
    static RangeExecutor machine() {
        return OnForkJoin.MACHINE;
    }

    /** Chunks on {@code pool}; the caller waits (or, inside that pool, helps). */
    static RangeExecutor on(ForkJoinPool pool) {
        return new OnForkJoin(pool);
    }

    /** How many chunks of {@code grain} cover {@code size}. */
    static int chunks(int size, int grain) {
        return size <= 0 ? 0 : (int) ((size + (long) Math.max(1, grain) - 1) / Math.max(1, grain));
    }

    /** Runs every chunk on the caller. */
    final class SameThread implements RangeExecutor {
        private static final SameThread INSTANCE = new SameThread();

        private SameThread() {
        }

        @Override
        public void run(int size, int grain, RangeTask task) {
            int g = Math.max(1, grain);
            for (int from = 0; from < size; from += g) {
                task.run(from, Math.min(size, from + g));
            }
        }

        @Override
        public int parallelism() {
            return 1;
        }
    }

    /** Chunks as fork-join tasks. */
    final class OnForkJoin implements RangeExecutor {
        private static final OnForkJoin MACHINE = new OnForkJoin(
                new ForkJoinPool(Runtime.getRuntime().availableProcessors()));

        private final ForkJoinPool pool;

        private OnForkJoin(ForkJoinPool pool) {
            if (pool == null) {
                throw new IllegalArgumentException("pool must not be null");
            }
            this.pool = pool;
        }

        @Override
        public void run(int size, int grain, RangeTask task) {
            int g = Math.max(1, grain);
            int n = chunks(size, g);
            if (n == 0) {
                return;
            }
            if (n == 1) {
                task.run(0, size);
                return;
            }
            RecursiveAction all = new RecursiveAction() {
                @Override
                protected void compute() {
                    List<RecursiveAction> parts = new ArrayList<>(n);
                    for (int k = 0; k < n; k++) {
                        int from = k * g;
                        int to = Math.min(size, from + g);
                        parts.add(new RecursiveAction() {
                            @Override
                            protected void compute() {
                                task.run(from, to);
                            }
                        });
                    }
                    invokeAll(parts); // the current thread runs one and helps with the rest while it waits
                }
            };
            if (Thread.currentThread() instanceof ForkJoinWorkerThread w && w.getPool() == pool) {
                all.invoke(); // nested: stay on this worker, which helps instead of blocking
            } else {
                pool.invoke(all);
            }
        }

        @Override
        public int parallelism() {
            return pool.getParallelism();
        }
    }
}
