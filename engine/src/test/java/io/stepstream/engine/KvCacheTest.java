package io.stepstream.engine;

import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.kv.PagedKvCache;
import io.stepstream.engine.llama.LlamaModel;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KvCacheTest {
    @Test
    void blocksAreTakenAtBoundariesAndReturnedOnClose() {
        try (Model model = Models.load(Models.DEFAULT_MODEL)) {
            KvBlockPool pool = ((LlamaModel) model).kvBlockPool();
            ModelConfig c = model.config();
            long blockBytes = (long) KvBlockPool.BLOCK_POSITIONS * c.nLayers() * 2 * c.kvDim() * Float.BYTES;
            assertEquals(blockBytes, pool.blockBytes());
            assertEquals(256 * ((c.contextLength() + 15) / 16), pool.maxBlocks(), "default: 256 full sequences");
            KvCache cache = model.newKvCache();
            assertEquals(0, cache.bytes());
            assertEquals(c.contextLength(), cache.capacity());
            int[] expectedBlocks = new int[40];
            int[] heldBlocks = new int[40];
            for (int i = 0; i < 40; i++) {
                TestSupport.step(model, cache, new int[]{5 + i}, 0, 1);
                expectedBlocks[i] = (i + 1 + 15) / 16;
                heldBlocks[i] = (int) (cache.bytes() / blockBytes);
            }
            assertArrayEquals(expectedBlocks, heldBlocks);
            assertEquals(40, cache.length());
            assertEquals(3, pool.usedBlocks());
            cache.close();
            assertEquals(0, pool.usedBlocks());
            assertEquals(0, cache.bytes());
            assertThrows(IllegalArgumentException.class, () -> TestSupport.step(model, cache, new int[]{5}, 0, 1));
        }
    }

    @Test
    void anAccountingOnlyPoolBoundsAndRecyclesBlocksWithoutHostStorage() {
        KvBlockPool pool = KvBlockPool.accountingOnly(5, 32, 3);
        assertTrue(!pool.hostStorage());
        PagedKvCache a = new PagedKvCache(pool, 256);
        a.reserve(33); // 3 blocks
        assertEquals(3, pool.usedBlocks());
        assertEquals(3 * pool.blockBytes(), a.bytes());
        int first = a.blockTable()[0];
        IllegalStateException noStorage = assertThrows(IllegalStateException.class, () -> pool.block(first));
        assertTrue(noStorage.getMessage().contains("device"), noStorage.getMessage());
        PagedKvCache b = new PagedKvCache(pool, 256);
        assertThrows(KvCacheExhaustedException.class, () -> b.reserve(1));
        assertEquals(0, b.bytes());
        a.close();
        assertEquals(0, pool.usedBlocks());
        b.reserve(17); // the recycled ids
        assertEquals(2, pool.usedBlocks());
        b.close();
        // a storing pool keeps arrays of a block's size
        KvBlockPool storing = new KvBlockPool(5, 32, 3);
        PagedKvCache c = new PagedKvCache(storing, 256);
        c.reserve(1);
        assertEquals(storing.blockBytes(), (long) storing.block(c.blockTable()[0]).length * Float.BYTES);
        c.close();
    }

    @Test
    void exhaustedPoolThrowsWithoutTakingBlocksAndRecoversAfterClose() {
        try (Model model = Models.load(Models.DEFAULT_MODEL, ModelOptions.defaults().withKvBlocks(3))) {
            KvCache a = model.newKvCache();
            TestSupport.step(model, a, new int[33], 0, 33); // 3 blocks
            KvCache b = model.newKvCache();
            KvCacheExhaustedException e = assertThrows(KvCacheExhaustedException.class,
                    () -> TestSupport.step(model, b, new int[]{1}, 0, 1));
            assertTrue(e.getMessage().contains("exhausted"), e.getMessage());
            assertEquals(0, b.length());
            assertEquals(0, b.bytes());
            a.close();
            TestSupport.step(model, b, new int[]{1}, 0, 1);
            assertEquals(1, b.length());
            b.close();
        }
    }

    @Test
    void forwardRejectsBadEntries() {
        try (Model model = Models.load(Models.DEFAULT_MODEL); Model other = Models.load(Models.DEFAULT_MODEL)) {
            KvCache cache = model.newKvCache();
            int ctx = model.config().contextLength();
            assertThrows(IllegalArgumentException.class,
                    () -> TestSupport.step(model, other.newKvCache(), new int[]{1}, 0, 1), "foreign cache");
            assertThrows(IllegalArgumentException.class,
                    () -> TestSupport.step(model, cache, new int[]{512}, 0, 1), "token out of range");
            assertThrows(IllegalArgumentException.class,
                    () -> TestSupport.step(model, cache, new int[ctx + 1], 0, ctx + 1), "past context");
            List<ForwardBatch.Entry> twice = new ArrayList<>();
            twice.add(new ForwardBatch.Entry(cache, new int[]{1}, 0, 1));
            twice.add(new ForwardBatch.Entry(cache, new int[]{1}, 0, 1));
            assertThrows(IllegalArgumentException.class,
                    () -> model.forward(new ForwardBatch(twice), new float[2][512]), "same cache twice");
            assertEquals(0, cache.length());
            cache.close();
        }
    }
}
