package io.stepstream.engine.tools;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama.LlamaFamily;

import java.util.ArrayList;
import java.util.List;

/**
 * The tensors of a Llama-family model under llama.cpp's GGUF names, with their row-major shapes, in the order
 * llama.cpp's converters write them; and the float32 values of each, supplied on demand so that models larger
 * than the heap can be written one tensor at a time.
 */
public final class LlamaTensors {
    private LlamaTensors() {
    }

    /** One tensor: {@code rows x cols} (a vector when {@code rows == 1 && vector}). */
    public record Entry(String name, int rows, int cols, boolean vector) {
        public long elements() {
            return (long) rows * cols;
        }
    }

    /** The values of a named tensor, row-major, exactly {@code rows * cols} floats. */
    @FunctionalInterface
    public interface Source {
        float[] values(Entry tensor);
    }

    /** Every tensor of a model of this shape and family (output only when not tied, rope_freqs when scaled). */
    public static List<Entry> layout(ModelConfig c, LlamaFamily family, boolean ropeFreqs) {
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        List<Entry> out = new ArrayList<>();
        out.add(new Entry("token_embd.weight", c.vocabSize(), dim, false));
        if (ropeFreqs) {
            out.add(new Entry("rope_freqs.weight", 1, c.headSize() / 2, true));
        }
        for (int l = 0; l < c.nLayers(); l++) {
            String b = "blk." + l + ".";
            out.add(new Entry(b + "attn_norm.weight", 1, dim, true));
            out.add(new Entry(b + "attn_q.weight", dim, dim, false));
            out.add(new Entry(b + "attn_k.weight", kvDim, dim, false));
            out.add(new Entry(b + "attn_v.weight", kvDim, dim, false));
            if (family.qkvBias()) {
                out.add(new Entry(b + "attn_q.bias", 1, dim, true));
                out.add(new Entry(b + "attn_k.bias", 1, kvDim, true));
                out.add(new Entry(b + "attn_v.bias", 1, kvDim, true));
            }
            out.add(new Entry(b + "attn_output.weight", dim, dim, false));
            out.add(new Entry(b + "ffn_norm.weight", 1, dim, true));
            out.add(new Entry(b + "ffn_gate.weight", hidden, dim, false));
            out.add(new Entry(b + "ffn_up.weight", hidden, dim, false));
            out.add(new Entry(b + "ffn_down.weight", dim, hidden, false));
        }
        out.add(new Entry("output_norm.weight", 1, dim, true));
        if (!c.sharedClassifier()) {
            out.add(new Entry("output.weight", c.vocabSize(), dim, false));
        }
        return out;
    }
}
