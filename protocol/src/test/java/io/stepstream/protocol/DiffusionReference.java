package io.stepstream.protocol;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.LladaGeneration;
import java.util.ArrayList;
import java.util.List;

/**
 * What a diffusion request must stream, from the engine's LladaGeneration run alone on a model of the test's own:
 * the generated tokens up to the first EOS (masks skipped) and their text after the prompt's last token.
 */
final class DiffusionReference {
    private static DiffusionModel model;

    record Expected(List<Integer> tokens, String text, String finishReason) {
    }

    private DiffusionReference() {
    }

    static synchronized DiffusionModel model() {
        if (model == null) {
            model = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults().withComputeThreads(1));
        }
        return model;
    }

    static Expected of(String prompt, DiffusionParams params) {
        DiffusionModel m = model();
        int[] ids = m.tokenizer().encode(prompt, true, false);
        LladaGeneration gen = LladaGeneration.start(m, ids, params);
        float[][] logits = {new float[gen.logitsLength()]};
        while (!gen.done()) {
            m.forward(List.of(gen.nextInput()), logits);
            gen.apply(logits[0]);
        }
        m.releasePattern(gen.patternHandle()); // a SparseD reference leaves nothing in the cache
        StreamingDecoder decoder = m.tokenizer().streamingDecoder().after(ids[ids.length - 1]);
        List<Integer> tokens = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        String reason = "length";
        for (int t : gen.generated()) {
            if (t == m.maskId()) {
                continue;
            }
            if (t == m.tokenizer().eosId()) {
                reason = "stop";
                break;
            }
            tokens.add(t);
            text.append(decoder.push(t));
        }
        text.append(decoder.flush());
        return new Expected(tokens, text.toString(), reason);
    }
}
