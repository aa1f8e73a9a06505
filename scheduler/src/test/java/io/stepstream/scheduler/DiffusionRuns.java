package io.stepstream.scheduler;

import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.dlm.DenoisingGeneration;
import io.stepstream.engine.dlm.DreamGeneration;
import io.stepstream.engine.dlm.LladaGeneration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The references the diffusion scheduler tests compare with: a request's generation run alone, one forward pass
 * of its canvas per step, and the stream that generation implies.
 */
final class DiffusionRuns {
    private DiffusionRuns() {
    }

    /** LLaDA's generation of {@code r} alone through {@code m}; its pattern and cached keys freed at the end. */
    static LladaGeneration lladaAlone(DenoisingModel m, SequenceRequest r) {
        return runAlone(m, new LladaGeneration(r.promptTokens(), r.diffusion(), m.maskId(), m.vocabSize(),
                m.contextLength()));
    }

    /** Dream's generation of {@code r} alone through {@code m}. */
    static DreamGeneration dreamAlone(DenoisingModel m, SequenceRequest r) {
        return runAlone(m, new DreamGeneration(r.promptTokens(), r.dream(), m.maskId(), m.vocabSize(),
                m.contextLength()));
    }

    private static <G extends DenoisingGeneration> G runAlone(DenoisingModel m, G gen) {
        float[][] logits = {new float[gen.logitsLength()]};
        while (!gen.done()) {
            m.forward(List.of(gen.nextInput()), logits);
            gen.apply(logits[0]);
        }
        m.releasePattern(gen.patternHandle());
        m.releaseKvCache(gen.kvHandle());
        return gen;
    }

    /** The tokens a stream of that generation holds: generated ones without mask ids, up to the first EOS. */
    static int[] streamedTokens(DenoisingModel m, DenoisingGeneration gen) {
        int eos = m.tokenizer().eosId();
        return Arrays.stream(gen.generated()).filter(t -> t != m.maskId()).takeWhile(t -> t != eos).toArray();
    }

    /**
     * The stream a generation of {@code r} implies: the generated tokens in position order without mask ids, up to
     * the first EOS (then STOP, the EOS counted), cut before a stop string.
     */
    static StepLoop.Outcome expectedStream(DenoisingModel m, SequenceRequest r, DenoisingGeneration gen) {
        int[] prompt = r.promptTokens();
        StreamingDecoder decoder = m.tokenizer().streamingDecoder().after(prompt[prompt.length - 1]);
        List<Integer> ids = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        FinishReason reason = FinishReason.LENGTH;
        int completion = 0;
        for (int t : gen.generated()) {
            if (t == m.maskId()) {
                continue;
            }
            completion++;
            if (t == m.tokenizer().eosId()) {
                reason = FinishReason.STOP;
                break;
            }
            ids.add(t);
            text.append(decoder.push(t));
            int stop = firstStop(text, r.stopStrings());
            if (stop >= 0) {
                text.setLength(stop);
                reason = FinishReason.STOP;
                break;
            }
        }
        if (reason == FinishReason.LENGTH || completion > ids.size()) {
            text.append(decoder.flush());
        }
        return new StepLoop.Outcome(ids.stream().mapToInt(Integer::intValue).toArray(), text.toString(), reason,
                prompt.length, completion);
    }

    private static int firstStop(CharSequence text, List<String> stops) {
        int cut = -1;
        for (String s : stops) {
            int at = text.toString().indexOf(s);
            if (at >= 0 && (cut < 0 || at < cut)) {
                cut = at;
            }
        }
        return cut;
    }
}
