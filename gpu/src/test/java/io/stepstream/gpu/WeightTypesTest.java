package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.llama.LlamaLoader;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.bench.GpuBench;
import io.stepstream.gpu.bench.SyntheticLlama;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * F16 and Q8_0 matrices decoded inside the kernel: a whole model's prefill and decode logits against the CPU
 * forward on the same weights after the engine's own encode/decode (Quants), on fresh random weights. The
 * rounding each encoding introduces is far larger than the tolerance, so a kernel that ignored the encoding
 * (or decoded it wrongly) fails.
 */
class WeightTypesTest {
    /** Every matrix is a whole number of 32-element blocks per layer, as real checkpoints are. */
    private static final ModelConfig C = new ModelConfig(64, 96, 2, 4, 2, 100, 48, 1e-5f, 10000f, false);

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void logitsMatchTheCpuForwardOnTheDecodedWeights(TensorType type) {
        Llama2Weights w = SyntheticLlama.weights(C, 7 + type.ordinal());
        Llama2Tokenizer tok = SyntheticLlama.tokenizer(C.vocabSize());
        Llama2Weights decoded = GpuBench.decodedAs(w, type);
        Random random = new Random(type.ordinal());
        int[] prompt = new int[21];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = random.nextInt(C.vocabSize());
        }
        try (OpenClLlama2Model gpu = new OpenClLlama2Model("t", w, tok, OpenClTestSupport.device(), 16, type);
             Model reference = LlamaLoader.llama2c("ref", decoded, tok, ModelOptions.defaults().withKvBlocks(16));
             Model f32 = LlamaLoader.llama2c("f32", w, tok, ModelOptions.defaults().withKvBlocks(16));
             KvCache g = gpu.newKvCache(); KvCache r = reference.newKvCache(); KvCache f = f32.newKvCache()) {
            assertEquals(type, gpu.weightType());
            float[] gl = step(gpu, g, prompt, 0, prompt.length);
            float[] rl = step(reference, r, prompt, 0, prompt.length);
            float[] fl = step(f32, f, prompt, 0, prompt.length);
            assertTrue(relativeError(gl, rl) <= 1e-4, type + " prefill: relative error " + relativeError(gl, rl));
            if (type != TensorType.F32) {
                // The device must follow the encoded weights, not the F32 ones: it is far closer to the former.
                assertTrue(relativeError(gl, rl) * 10 < relativeError(fl, rl), type + ": device error "
                        + relativeError(gl, rl) + " vs the encoding's own rounding " + relativeError(fl, rl));
            }
            for (int s = 0; s < 4; s++) {
                int[] next = {random.nextInt(C.vocabSize())};
                gl = step(gpu, g, next, 0, 1);
                rl = step(reference, r, next, 0, 1);
                assertTrue(relativeError(gl, rl) <= 1e-4, type + " decode " + s + ": relative error "
                        + relativeError(gl, rl));
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F16", "Q8_0"})
    void bytesPerStepShrinkWithTheEncoding(TensorType type) {
        Llama2Weights w = SyntheticLlama.weights(C, 3);
        Llama2Tokenizer tok = SyntheticLlama.tokenizer(C.vocabSize());
        try (OpenClLlama2Model f32 = new OpenClLlama2Model("a", w, tok, OpenClTestSupport.device(), 4, TensorType.F32);
             OpenClLlama2Model other = new OpenClLlama2Model("b", w, tok, OpenClTestSupport.device(), 4, type)) {
            long elements = f32.matrixBytesPerStep() / 4;
            long expected = type == TensorType.F16 ? 2 * elements : elements + elements / 32 * 4;
            assertEquals(expected, other.matrixBytesPerStep());
        }
    }

    static float[] step(Model model, KvCache cache, int[] tokens, int offset, int length) {
        float[][] logits = new float[1][model.config().vocabSize()];
        model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, tokens, offset, length))), logits);
        return logits[0];
    }
}
