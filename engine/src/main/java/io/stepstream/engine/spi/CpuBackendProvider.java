package io.stepstream.engine.spi;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.llama.LlamaLoader;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;

/** The engine's own float32 forward on the CPU: always available, reads the weights in place. */
public final class CpuBackendProvider implements BackendProvider {
    public static final String NAME = "cpu";

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public boolean available() {
        return true;
    }

    @Override
    public BackendModel load(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, BackendOptions options) {
        if (options.weightType() != TensorType.F32) {
            throw new IllegalArgumentException("--dtype " + options.weightType() + ": the cpu backend runs F32 only");
        }
        refuseHalfKvCache(options);
        if (!options.device().isEmpty() && !options.device().equalsIgnoreCase(NAME)
                && !options.device().equalsIgnoreCase("auto")) {
            throw new IllegalArgumentException("--device '" + options.device() + "': the cpu backend has one device,"
                    + " 'cpu'");
        }
        return new CpuModel(LlamaLoader.llama2c(name, weights, tokenizer, options.model()), describeCpu(options));
    }

    /** The engine's own diffusion forward, as loaded. */
    @Override
    public DiffusionBackendModel loadDiffusion(io.stepstream.engine.dlm.DiffusionModel model, BackendOptions options) {
        if (options.weightType() != TensorType.F32) {
            throw new IllegalArgumentException("--dtype " + options.weightType() + ": the cpu backend runs F32 only");
        }
        refuseHalfKvCache(options);
        return DiffusionBackendModel.onCpu(model);
    }

    private static void refuseHalfKvCache(BackendOptions options) {
        if (options.kvCache() == TensorType.F16) {
            throw new IllegalArgumentException("--kv-cache f16: the cpu backend keeps an f32 KV cache");
        }
    }

    private static String describeCpu(BackendOptions options) {
        return "cpu (" + options.model().computeThreads() + " threads of " + Runtime.getRuntime().availableProcessors()
                + " cores)";
    }

    /** The CPU model with its placement; forwards everything. */
    record CpuModel(Model model, String deviceName) implements BackendModel {
        @Override
        public String backendName() {
            return NAME;
        }

        @Override
        public String name() {
            return model.name();
        }

        @Override
        public ModelConfig config() {
            return model.config();
        }

        @Override
        public Tokenizer tokenizer() {
            return model.tokenizer();
        }

        @Override
        public KvCache newKvCache() {
            return model.newKvCache();
        }

        @Override
        public void forward(ForwardBatch batch, float[][] logits) {
            model.forward(batch, logits);
        }

        @Override
        public void close() {
            model.close();
        }
    }
}
