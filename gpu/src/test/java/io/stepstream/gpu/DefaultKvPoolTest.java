package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The default device KV pool: full-context sequences up to what the device's memory holds beside the weights. */
class DefaultKvPoolTest {
    private static final long GIB = 1L << 30;

    private static ModelConfig llama7b() {
        return new ModelConfig(4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 10000f, false);
    }

    private static long blockBytes(ModelConfig c) {
        return (long) c.nLayers() * 2 * KvBlockPool.BLOCK_POSITIONS * c.kvDim() * Float.BYTES;
    }

    @Test
    void aSevenBModelOnAnH200GetsWhatOneBufferHoldsNotTwoGib() {
        ModelConfig c = llama7b();
        long h200 = 143155L << 20;
        // a position is 32 layers x K and V x 4096 floats = 1 MiB, a block 16 of them
        assertEquals(16L << 20, blockBytes(c));
        // no buffer limit: 16 sequences of full context (4096 positions each)
        int blocks = OpenClLlama2Model.defaultBlocks(c, TensorType.F16, h200, 0.9, Long.MAX_VALUE, "H200");
        assertEquals(OpenClLlama2Model.DEFAULT_DEVICE_SEQUENCES * DeviceLlama2.blocksPerSequence(c), blocks);
        assertEquals(4096, blocks);
        // NVIDIA's driver allows a quarter of the memory in one buffer: 35,784 MiB, 2,236 blocks, 35,776 positions
        // (8.7 full contexts; the 2 GiB cap of before held 128 blocks, half of one context)
        assertEquals(2236, OpenClLlama2Model.defaultBlocks(c, TensorType.F16, h200, 0.9, h200 / 4, "H200"));
    }

    @Test
    void theDevicesMemoryBesideTheWeightsBoundsThePool() {
        ModelConfig c = llama7b();
        long global = 40 * GIB;
        long weights = OpenClLlama2Model.deviceWeightBytes(c, TensorType.F16);
        // 7B f16: the seven layer matrices and the classifier at 2 bytes, the embedding, norms and rope tables at 4
        long matrices = 32L * (4L * 4096 * 4096 + 3L * 4096 * 11008) + 32000L * 4096;
        assertEquals(matrices * 2 + (32000L * 4096 + 65L * 4096 + 4096L * 128) * 4, weights);
        int blocks = OpenClLlama2Model.defaultBlocks(c, TensorType.F16, global, 0.9, Long.MAX_VALUE, "d");
        long budget = (long) (0.9 * global) - weights - OpenClLlama2Model.ACTIVATION_RESERVE_BYTES;
        assertEquals(budget / blockBytes(c), blocks);
        assertTrue(blocks < OpenClLlama2Model.DEFAULT_DEVICE_SEQUENCES * DeviceLlama2.blocksPerSequence(c));
        // a smaller fraction, a smaller pool; one buffer's limit caps it too
        assertTrue(OpenClLlama2Model.defaultBlocks(c, TensorType.F16, global, 0.6, Long.MAX_VALUE, "d") < blocks);
        assertEquals(2 * GIB / blockBytes(c),
                OpenClLlama2Model.defaultBlocks(c, TensorType.F16, global, 0.9, 2 * GIB, "d"));
        // Q8_0 weights (1 byte + a float scale per 32) leave more room than F16
        assertTrue(OpenClLlama2Model.defaultBlocks(c, TensorType.Q8_0, global, 0.9, Long.MAX_VALUE, "d") > blocks);
    }

    @Test
    void noRoomForOneBlockIsAClearError() {
        ModelConfig c = llama7b();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> OpenClLlama2Model.defaultBlocks(c, TensorType.F32, 24 * GIB, 0.9, Long.MAX_VALUE, "small-gpu"));
        assertTrue(e.getMessage().contains("small-gpu") && e.getMessage().contains("F32 weights take")
                && e.getMessage().contains(OpenClLlama2Model.MEMORY_FRACTION_PROPERTY), e.getMessage());
    }

    @Test
    void theFractionPropertyIsCheckedWhenRead() {
        for (String bad : new String[]{"0", "1.5", "-0.2", "most", "NaN"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> OpenClTestSupport.withProperty(
                    OpenClLlama2Model.MEMORY_FRACTION_PROPERTY, bad, OpenClLlama2Model::memoryFractionFromSystemProperty));
            assertTrue(e.getMessage().contains(OpenClLlama2Model.MEMORY_FRACTION_PROPERTY) && e.getMessage().contains(bad),
                    e.getMessage());
        }
        assertEquals(0.5, OpenClTestSupport.withProperty(OpenClLlama2Model.MEMORY_FRACTION_PROPERTY, "0.5",
                OpenClLlama2Model::memoryFractionFromSystemProperty));
        assertEquals(0.9, OpenClLlama2Model.memoryFractionFromSystemProperty());
    }
}
