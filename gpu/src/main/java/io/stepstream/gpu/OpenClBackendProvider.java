package io.stepstream.gpu;

import io.stepstream.engine.Model;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.spi.BackendModel;
import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.spi.BackendProvider;
import io.stepstream.engine.spi.CpuBackendProvider;
import io.stepstream.engine.spi.DiffusionBackendModel;

/**
 * "opencl": the model's forward on one OpenCL device through Aparapi ({@link OpenClLlama2Model}), wrapped in a
 * {@link FailoverModel} that continues on the CPU backend if a kernel fails at run time. The device is chosen
 * by {@link OpenClDevices#select} from {@code options.device()}.
 */
public final class OpenClBackendProvider implements BackendProvider {
    public static final String NAME = "opencl";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public boolean available() {
        try {
            return !OpenClDevices.list().isEmpty();
        } catch (RuntimeException | LinkageError e) {
            return false;
        }
    }

    @Override
    public BackendModel load(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, BackendOptions options) {
        OpenClLlama2Model device = new OpenClLlama2Model(name, weights, tokenizer,
                OpenClDevices.select(options.device()), options.model().kvBlocks(), options.weightType(),
                Dispatch.fromSystemProperty(), Matmul.fromSystemProperty(), TensorCores.fromSystemProperties(),
                kvCacheType(options));
        // The CPU model reads the F32 weights in place (and keeps an f32 KV cache); it is built only if the device
        // fails.
        BackendOptions cpu = options.withDevice("").withWeightType(io.stepstream.engine.tensor.TensorType.F32)
                .withKvCache(null);
        return new FailoverModel(device, () -> {
            Model m = new CpuBackendProvider().load(name, weights, tokenizer, cpu);
            return m;
        });
    }

    /** The options' KV element type; without one, {@value KvCacheType#PROPERTY} (default f32). */
    static KvCacheType kvCacheType(BackendOptions options) {
        if (options.kvCache() == null) {
            return KvCacheType.fromSystemProperty();
        }
        return options.kvCache() == io.stepstream.engine.tensor.TensorType.F16 ? KvCacheType.F16 : KvCacheType.F32;
    }

    /**
     * A LLaDA-style diffusion LM on the device ({@link OpenClDiffusionModel}): dense steps there, SparseD and
     * Fast-dLLM-cache steps on {@code model} itself. Dream is refused with a message saying it runs on the CPU. The
     * options' KV element type does not apply: a diffusion model's pool is a step's f32 scratch for its canvases, not
     * a long-lived cache (so {@code serve --kv-cache f16} serves its autoregressive models with f16 pools beside it).
     */
    @Override
    public DiffusionBackendModel loadDiffusion(DiffusionModel model, BackendOptions options) {
        OpenClDiffusionModel.check(model);
        return new OpenClDiffusionModel(model, OpenClDevices.select(options.device()), options.model().kvBlocks(),
                options.weightType());
    }
}
