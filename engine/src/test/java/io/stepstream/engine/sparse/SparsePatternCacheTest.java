package io.stepstream.engine.sparse;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Pattern byte accounting, the cache's cap, eviction, refusal, release, and hit/miss counts. */
class SparsePatternCacheTest {

    @Test
    void bytesAreExactlyTheIndexArrays() {
        SplittableRandom r = new SplittableRandom(3);
        for (int round = 0; round < 20; round++) {
            int layers = 1 + r.nextInt(3);
            int heads = 1 + r.nextInt(4);
            int tokens = 1 + r.nextInt(200);
            int bs = 1 + r.nextInt(40);
            SparsePattern p = BlockSparseAttentionTest.randomPattern(r, layers, heads, tokens, bs);
            int blocks = (tokens + bs - 1) / bs;
            long ints = 0;
            long kept = 0;
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < heads; h++) {
                    assertEquals(blocks + 1, p.indptr(l, h).length);
                    ints += p.indptr(l, h).length + p.indices(l, h).length;
                    kept += p.indices(l, h).length;
                }
            }
            assertEquals(4 * ints, p.bytes());
            assertEquals(kept, p.keptBlocks());
        }
        // Dense: per (layer, head) (blocks + 1) + blocks^2 ints.
        SparsePattern dense = SparsePattern.dense(2, 3, 100, 32);
        assertEquals(2 * 3 * 4L * (5 + 16), dense.bytes());
        assertEquals(1.0, dense.density());
    }

    @Test
    void malformedPatternsNameTheProblem() {
        int[][] ptr = {{0, 1, 2}};
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> SparsePattern.of(1, 1, 8, 4, new int[][]{{0, 2, 3}}, new int[][]{{1, 1, 0}})).getMessage()
                .contains("ascending"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> SparsePattern.of(1, 1, 8, 4, ptr, new int[][]{{0, 2}})).getMessage().contains("ascending"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> SparsePattern.of(1, 1, 8, 4, new int[][]{{0, 0, 1}}, new int[][]{{0}})).getMessage()
                .contains("at least one key block"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> SparsePattern.of(1, 1, 8, 4, ptr, new int[][]{{0}})).getMessage().contains("indices has 1"));
        // The copy is the pattern's own.
        int[][] idx = {{0, 1}};
        SparsePattern p = SparsePattern.of(1, 1, 8, 4, ptr, idx);
        idx[0][0] = 1;
        assertEquals(0, p.keyBlocks(0, 0, 0)[0]);
    }

    private static SparsePattern patternOf(long bytes) {
        // 1 layer, 1 head, 1 block: indptr 2 ints + 1 index = 12 bytes; grow by heads.
        int heads = (int) (bytes / 12);
        assertEquals(bytes, heads * 12L);
        return SparsePattern.dense(1, heads, 4, 4);
    }

    @Test
    void capIsHonouredByEvictingTheLeastRecentlyUsed() {
        PatternCache cache = new PatternCache(120);
        PatternHandle a = new PatternHandle();
        PatternHandle b = new PatternHandle();
        PatternHandle c = new PatternHandle();
        assertNull(cache.lookup(a));
        assertTrue(cache.store(a, patternOf(48)));
        assertTrue(cache.store(b, patternOf(48)));
        assertEquals(96, cache.bytesHeld());
        assertSame(cache.lookup(a), cache.lookup(a)); // a is now the most recently used
        assertTrue(cache.store(c, patternOf(48)));      // 144 > 120: b (least recent) goes
        assertEquals(96, cache.bytesHeld());
        assertTrue(cache.bytesHeld() <= cache.capBytes());
        assertFalse(cache.holds(b));
        assertTrue(cache.holds(a) && cache.holds(c));
        assertEquals(1, cache.evictions());
        assertNull(cache.lookup(b)); // the evicted request misses and would rebuild
        assertEquals(2, cache.hits());
        assertEquals(2, cache.misses());
        assertEquals(0.5, cache.hitRate());
        // Replacing a pattern re-accounts its bytes.
        assertTrue(cache.store(c, patternOf(24)));
        assertEquals(72, cache.bytesHeld());
    }

    @Test
    void oversizedPatternIsRefusedWithoutEvictingOthers() {
        PatternCache cache = new PatternCache(60);
        PatternHandle small = new PatternHandle();
        PatternHandle big = new PatternHandle();
        assertTrue(cache.store(small, patternOf(36)));
        assertFalse(cache.store(big, patternOf(72)));
        assertTrue(cache.isRefused(big));
        assertFalse(cache.isRefused(small));
        assertEquals(36, cache.bytesHeld());
        assertEquals(1, cache.refusals());
        assertEquals(0, cache.evictions());
        cache.release(big);
        assertFalse(cache.isRefused(big));
    }

    @Test
    void releaseFreesTheBytesAndIsIdempotent() {
        PatternCache cache = new PatternCache(1000);
        PatternHandle a = new PatternHandle();
        PatternHandle b = new PatternHandle();
        cache.store(a, patternOf(120));
        cache.store(b, patternOf(240));
        assertEquals(360, cache.bytesHeld());
        assertEquals(2, cache.patterns());
        cache.release(a);
        assertEquals(240, cache.bytesHeld());
        cache.release(a);
        cache.release(null);
        assertEquals(240, cache.bytesHeld());
        cache.release(b);
        assertEquals(0, cache.bytesHeld());
        assertEquals(0, cache.patterns());
        assertThrows(IllegalArgumentException.class, () -> new PatternCache(-1));
        assertThrows(IllegalArgumentException.class, () -> cache.lookup(null));
    }
}
