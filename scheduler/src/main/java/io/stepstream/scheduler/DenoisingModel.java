package io.stepstream.scheduler;

import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DlmKvHandle;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.sparse.PatternHandle;
import io.stepstream.engine.spi.DiffusionBackendModel;
import java.util.List;

/**
 * What the {@link DiffusionScheduler} needs of a diffusion LM: its ids and limits, and one forward pass over a
 * batch of canvases ({@link DiffusionModel#forward}'s contract). A seam so that tests can watch or bend a real
 * model's logits.
 */
public interface DenoisingModel {
    String name();

    Tokenizer tokenizer();

    int maskId();

    int vocabSize();

    int contextLength();

    /** Which generation its requests run: LLaDA's (the default) or Dream's. */
    default DiffusionFamily family() {
        return DiffusionFamily.LLADA;
    }

    /** {@code logits[i]} gets input i's logits range, position-major, vocabSize floats per position. */
    void forward(List<DenoiseInput> batch, float[][] logits);

    /**
     * Whether {@link #forwardSummaries} reduces each logits row where the logits are made (a device), so that a step
     * whose requests all accept row summaries gains by asking for them. False by default.
     */
    default boolean summarizesOnDevice() {
        return false;
    }

    /**
     * {@link DiffusionBackendModel#forwardSummaries}'s contract: {@code summaries[i]} gets the argmax and float64
     * confidence of each row of input i's logits range; {@code logits} are scratch rows for what is not summarized on
     * a device. This default runs {@link #forward} and summarizes on the calling thread (bitwise the host's apply).
     */
    default void forwardSummaries(List<DenoiseInput> batch, float[][] logits, RowSummaries[] summaries) {
        RowSummaries.checkBatch(batch, summaries);
        forward(batch, logits);
        for (int i = 0; i < batch.size(); i++) {
            summaries[i].summarize(logits[i], batch.get(i).logitsLength(), vocabSize());
        }
    }

    /**
     * Frees the SparseD pattern of a request that ended ({@code null}: a dense request). The scheduler calls it
     * once per request, whatever ended it. A model that keeps no patterns has nothing to free.
     */
    default void releasePattern(PatternHandle handle) {
    }

    /** The model's SparseD pattern cache counters, or null when it keeps no patterns. */
    default PatternCacheStats patternCacheStats() {
        return null;
    }

    /** Frees a request's Fast-dLLM keys and values ({@code null}: the request had none). */
    default void releaseKvCache(DlmKvHandle handle) {
    }

    /** Bytes of Fast-dLLM keys and values held for this model's requests. */
    default long kvCacheBytes() {
        return 0;
    }

    static DenoisingModel of(DiffusionModel model) {
        return of(DiffusionBackendModel.onCpu(model));
    }

    /**
     * A diffusion LM where a backend placed it: the forward is the placement's (e.g. dense canvases on an OpenCL
     * device), everything else its CPU model's.
     */
    static DenoisingModel of(DiffusionBackendModel placed) {
        DiffusionModel model = placed.cpuModel();
        return new DenoisingModel() {
            @Override
            public String name() {
                return model.name();
            }

            @Override
            public Tokenizer tokenizer() {
                return model.tokenizer();
            }

            @Override
            public int maskId() {
                return model.maskId();
            }

            @Override
            public int vocabSize() {
                return model.vocabSize();
            }

            @Override
            public int contextLength() {
                return model.contextLength();
            }

            @Override
            public DiffusionFamily family() {
                return model.family();
            }

            @Override
            public void forward(List<DenoiseInput> batch, float[][] logits) {
                placed.forward(batch, logits);
            }

            @Override
            public boolean summarizesOnDevice() {
                return placed.summarizesOnDevice();
            }

            @Override
            public void forwardSummaries(List<DenoiseInput> batch, float[][] logits, RowSummaries[] summaries) {
                placed.forwardSummaries(batch, logits, summaries);
            }

            @Override
            public void releasePattern(PatternHandle handle) {
                model.releasePattern(handle);
            }

            @Override
            public PatternCacheStats patternCacheStats() {
                return PatternCacheStats.of(model.patternCache());
            }

            @Override
            public void releaseKvCache(DlmKvHandle handle) {
                model.releaseKvCache(handle);
            }

            @Override
            public long kvCacheBytes() {
                return model.kvCache().bytesHeld();
            }
        };
    }
}
