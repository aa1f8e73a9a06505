package io.stepstream.gpu;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BlockSparsePatternTest {
    @Test
    void densePatternListsEveryCausalBlock() {
        BlockSparsePattern p = BlockSparsePattern.dense(2, 3, 4);
        assertArrayEquals(new int[]{0, 1, 2}, p.keyBlocks(1, 2, 2));
        assertArrayEquals(new int[]{0}, p.keyBlocks(0, 0, 0));
    }

    @Test
    void badPatternsAreRejectedWithTheReason() {
        // one layer, one head, two query blocks
        assertMessage("indptr must hold rows + 1", () -> new BlockSparsePattern(1, 1, 2, new int[]{0, 1}, new int[]{0}));
        assertMessage("causal", () -> new BlockSparsePattern(1, 1, 2, new int[]{0, 2, 3}, new int[]{0, 1, 1}));
        assertMessage("own query block", () -> new BlockSparsePattern(1, 1, 2, new int[]{0, 1, 2}, new int[]{0, 0}));
        assertMessage("listed twice", () -> new BlockSparsePattern(1, 1, 2, new int[]{0, 1, 3}, new int[]{0, 1, 1}));
        assertMessage("end at indices.length", () -> new BlockSparsePattern(1, 1, 2, new int[]{0, 1, 2}, new int[]{0}));
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable bad) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, bad);
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }
}
