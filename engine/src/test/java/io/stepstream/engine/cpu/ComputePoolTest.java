package io.stepstream.engine.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ComputePoolTest {
    @Test
    void everyIndexRunsExactlyOnceAcrossManyJobs() {
        Random rnd = new Random(3);
        try (ComputePool pool = new ComputePool(3, "test-pool")) {
            assertEquals(3, pool.threads());
            for (int job = 0; job < 2000; job++) {
                int size = 1 + rnd.nextInt(300);
                int grain = 1 + rnd.nextInt(40);
                AtomicIntegerArray hits = new AtomicIntegerArray(size);
                boolean[] badWorker = new boolean[1];
                boolean parallel = rnd.nextBoolean();
                pool.run((from, to, worker) -> {
                    // serial runs get the whole range on the caller; parallel ones chunks of at most grain
                    boolean shapeOk = parallel ? to - from <= grain : from == 0 && to == size && worker == 0;
                    if (worker < 0 || worker >= 3 || !shapeOk) {
                        badWorker[0] = true;
                    }
                    for (int i = from; i < to; i++) {
                        hits.incrementAndGet(i);
                    }
                }, size, grain, parallel);
                for (int i = 0; i < size; i++) {
                    assertEquals(1, hits.get(i), "job " + job + " index " + i);
                }
                assertTrue(!badWorker[0], "ranges within grain, worker ids within the pool");
            }
        }
    }

    @Test
    void taskFailureReachesTheCallerAndThePoolSurvives() {
        try (ComputePool pool = new ComputePool(2, "test-pool")) {
            assertThrows(IllegalStateException.class, () -> pool.run((from, to, worker) -> {
                if (from == 0) {
                    throw new IllegalStateException("boom");
                }
            }, 100, 1, true));
            AtomicIntegerArray hits = new AtomicIntegerArray(50);
            pool.run((from, to, worker) -> hits.incrementAndGet(from), 50, 1, true);
            for (int i = 0; i < 50; i++) {
                assertEquals(1, hits.get(i));
            }
        }
    }
}
