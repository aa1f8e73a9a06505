package io.stepstream.scheduler;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Tokenizer;

/** A model that passes everything to another one; test wrappers override only what they watch or gate. */
public abstract class ForwardingModel implements Model {
    protected final Model inner;

    protected ForwardingModel(Model inner) {
        this.inner = inner;
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public ModelConfig config() {
        return inner.config();
    }

    @Override
    public Tokenizer tokenizer() {
        return inner.tokenizer();
    }

    @Override
    public KvCache newKvCache() {
        return inner.newKvCache();
    }

    @Override
    public void forward(ForwardBatch batch, float[][] logits) {
        inner.forward(batch, logits);
    }

    @Override
    public void close() {
        inner.close();
    }
}
