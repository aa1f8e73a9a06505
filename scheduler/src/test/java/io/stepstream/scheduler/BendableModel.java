package io.stepstream.scheduler;

import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DlmKvHandle;
import io.stepstream.engine.sparse.PatternHandle;
import java.util.List;

/**
 * A real diffusion model whose logits a test bends after each forward pass: from canvas position {@link #eosFrom}
 * on EOS gets a logit far above the rest (a story that ends there, as the model pads a finished story with EOS);
 * with {@link #noEos} EOS gets one far below everywhere (stories that run to gen_length); {@link #failNext} fails
 * the next forward pass. Everything else, patterns and Fast-dLLM keys and values included, is the real model's;
 * with nothing bent it passes everything through, a base for test models that only watch.
 */
class BendableModel implements DenoisingModel {
    final DenoisingModel real;
    int eosFrom = Integer.MAX_VALUE;
    boolean noEos;
    boolean failNext;

    BendableModel(DenoisingModel real) {
        this.real = real;
    }

    static BendableModel endingAt(DenoisingModel real, int eosFrom) {
        BendableModel m = new BendableModel(real);
        m.eosFrom = eosFrom;
        return m;
    }

    static BendableModel withoutEos(DenoisingModel real) {
        BendableModel m = new BendableModel(real);
        m.noEos = true;
        return m;
    }

    @Override
    public void forward(List<DenoiseInput> batch, float[][] logits) {
        if (failNext) {
            failNext = false;
            throw new IllegalStateException("injected forward failure");
        }
        real.forward(batch, logits);
        int vocab = vocabSize();
        int eos = tokenizer().eosId();
        for (int i = 0; i < batch.size(); i++) {
            DenoiseInput in = batch.get(i);
            for (int p = 0; p < in.logitsLength(); p++) {
                if (noEos) {
                    logits[i][p * vocab + eos] = -100f;
                } else if (in.logitsStart() + p >= eosFrom) {
                    logits[i][p * vocab + eos] = 100f;
                }
            }
        }
    }

    @Override
    public String name() {
        return real.name();
    }

    @Override
    public Tokenizer tokenizer() {
        return real.tokenizer();
    }

    @Override
    public int maskId() {
        return real.maskId();
    }

    @Override
    public int vocabSize() {
        return real.vocabSize();
    }

    @Override
    public int contextLength() {
        return real.contextLength();
    }

    @Override
    public DiffusionFamily family() {
        return real.family();
    }

    @Override
    public void releasePattern(PatternHandle handle) {
        real.releasePattern(handle);
    }

    @Override
    public PatternCacheStats patternCacheStats() {
        return real.patternCacheStats();
    }

    @Override
    public void releaseKvCache(DlmKvHandle handle) {
        real.releaseKvCache(handle);
    }

    @Override
    public long kvCacheBytes() {
        return real.kvCacheBytes();
    }
}
