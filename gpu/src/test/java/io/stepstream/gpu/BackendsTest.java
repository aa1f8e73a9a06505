package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Models;
import io.stepstream.engine.spi.BackendModel;
import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.spi.BackendProvider;
import io.stepstream.engine.spi.Backends;
import org.junit.jupiter.api.Test;

import java.util.List;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The backend SPI: both providers are found by ServiceLoader, and both run stories260K to the same tokens. */
class BackendsTest {
    @Test
    void serviceLoaderFindsCpuAndOpencl() {
        List<String> names = Backends.providers().stream().map(BackendProvider::name).toList();
        assertTrue(names.contains("cpu") && names.contains("opencl"), names.toString());
        assertTrue(Backends.provider("OpenCL").available());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.provider("cuda"));
        assertTrue(e.getMessage().contains("--backend 'cuda'") && e.getMessage().contains("opencl"), e.getMessage());
    }

    @Test
    void openclAndCpuBackendsReportWhereTheyRunAndAgreeOnGreedyTokens() {
        BackendOptions options = BackendOptions.defaults().withDevice(OpenClTestSupport.SELECTOR)
                .withModel(io.stepstream.engine.ModelOptions.defaults().withKvBlocks(32));
        try (BackendModel gpu = Backends.load("opencl", Models.DEFAULT_MODEL, options);
             BackendModel cpu = Backends.load("cpu", Models.DEFAULT_MODEL, BackendOptions.defaults())) {
            assertInstanceOf(FailoverModel.class, gpu);
            assertEquals("opencl", Backends.backendOf(gpu));
            assertTrue(Backends.deviceOf(gpu).startsWith(OpenClTestSupport.device().getName().strip()),
                    Backends.deviceOf(gpu));
            assertEquals("cpu", Backends.backendOf(cpu));
            assertEquals(greedy(cpu, 20), greedy(gpu, 20));
        }
        assertThrows(IllegalArgumentException.class, () -> Backends.load("cpu", Models.DEFAULT_MODEL,
                BackendOptions.defaults().withWeightType(io.stepstream.engine.tensor.TensorType.F16)));
    }

    @Test
    void theKvCacheOptionReachesTheDevicePool() {
        BackendOptions options = BackendOptions.defaults().withDevice(OpenClTestSupport.SELECTOR)
                .withModel(io.stepstream.engine.ModelOptions.defaults().withKvBlocks(32));
        try (BackendModel half = Backends.load("opencl", Models.DEFAULT_MODEL,
                options.withKvCache(io.stepstream.engine.tensor.TensorType.F16));
             BackendModel full = Backends.load("opencl", Models.DEFAULT_MODEL,
                     options.withKvCache(io.stepstream.engine.tensor.TensorType.F32))) {
            assertTrue(Backends.deviceOf(half).contains("f16 KV cache"), Backends.deviceOf(half));
            assertTrue(!Backends.deviceOf(full).contains("KV cache"), Backends.deviceOf(full));
            assertEquals(greedy(full, 20), greedy(half, 20));
        }
        IllegalArgumentException cpu = assertThrows(IllegalArgumentException.class, () -> Backends.load("cpu",
                Models.DEFAULT_MODEL, BackendOptions.defaults().withKvCache(io.stepstream.engine.tensor.TensorType.F16)));
        assertTrue(cpu.getMessage().contains("--kv-cache f16"), cpu.getMessage());
        assertEquals(io.stepstream.engine.tensor.TensorType.F16, BackendOptions.parseKvCache(" F16 "));
        assertEquals(io.stepstream.engine.tensor.TensorType.F32, BackendOptions.parseKvCache("f32"));
        assertEquals(null, BackendOptions.parseKvCache(""));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> BackendOptions.parseKvCache("q8_0"));
        assertTrue(bad.getMessage().contains("--kv-cache") && bad.getMessage().contains("q8_0"), bad.getMessage());
    }

    private static List<Integer> greedy(BackendModel model, int steps) {
        List<Integer> out = new java.util.ArrayList<>();
        try (KvCache c = model.newKvCache()) {
            float[][] logits = new float[1][model.config().vocabSize()];
            int[] token = {1};
            for (int s = 0; s < steps; s++) {
                model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(c, token, 0, 1))), logits);
                token[0] = argmax(logits[0]);
                out.add(token[0]);
            }
        }
        return out;
    }
}
