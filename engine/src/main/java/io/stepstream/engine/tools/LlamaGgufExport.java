package io.stepstream.engine.tools;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.format.gguf.GgufValue;
import io.stepstream.engine.format.gguf.GgufWriter;
import io.stepstream.engine.format.gguf.Quants;
import io.stepstream.engine.llama.LlamaFamily;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tokenizer.TokenizerSpec;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes a Llama-family model as a GGUF file llama.cpp loads: general.architecture and the {@code <arch>.*} shape
 * keys, the tokenizer as {@code tokenizer.ggml.*}, matrices in the requested encoding and vectors in F32. A
 * matrix whose rows are not a whole number of the encoding's blocks is written in F16 instead (as llama.cpp's
 * quantizer falls back for such tensors). Tensors are encoded one at a time into a temporary spill file that is
 * mapped for the writer, so a model larger than the heap is written with little memory.
 */
public final class LlamaGgufExport {
    private LlamaGgufExport() {
    }

    /** ggml's general.file_type for a whole-model encoding. */
    static int fileType(TensorType type) {
        return switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            case Q4_K -> 14; // LLAMA_FTYPE_MOSTLY_Q4_K_S: every quantizable matrix in Q4_K
            case Q6_K -> 18;
            case BF16 -> 32;
        };
    }

    /** The encoding a matrix with rows of {@code cols} elements gets when {@code type} is asked for. */
    public static TensorType matrixType(TensorType type, int cols) {
        return cols % type.blockSize() == 0 ? type : TensorType.F16;
    }

    public static void write(Path out, String name, ModelConfig c, LlamaFamily family, float[] ropeFreqFactors,
                             LlamaTensors.Source source, TensorType type, TokenizerSpec tokenizer) throws IOException {
        GgufWriter w = new GgufWriter();
        String a = family.id() + ".";
        w.putString("general.architecture", family.id());
        w.putString("general.name", name);
        w.putUInt32("general.file_type", fileType(type));
        w.putUInt32(a + "context_length", c.contextLength());
        w.putUInt32(a + "embedding_length", c.dim());
        w.putUInt32(a + "block_count", c.nLayers());
        w.putUInt32(a + "feed_forward_length", c.hiddenDim());
        w.putUInt32(a + "attention.head_count", c.nHeads());
        w.putUInt32(a + "attention.head_count_kv", c.nKvHeads());
        w.putFloat32(a + "attention.layer_norm_rms_epsilon", c.rmsNormEps());
        w.putFloat32(a + "rope.freq_base", c.ropeTheta());
        w.putUInt32(a + "rope.dimension_count", c.headSize());
        w.putUInt32(a + "vocab_size", c.vocabSize());
        putTokenizer(w, tokenizer);
        List<LlamaTensors.Entry> layout = LlamaTensors.layout(c, family, ropeFreqFactors != null);
        Path spill = Files.createTempFile(out.toAbsolutePath().getParent(), ".spill-", ".tmp");
        try (Arena arena = Arena.ofConfined()) {
            List<long[]> places = new ArrayList<>();
            List<TensorType> types = new ArrayList<>();
            try (FileChannel ch = FileChannel.open(spill, StandardOpenOption.WRITE)) {
                long at = 0;
                for (LlamaTensors.Entry t : layout) {
                    float[] v = t.name().equals("rope_freqs.weight") ? ropeFreqFactors : source.values(t);
                    if (v.length != t.elements()) {
                        throw new IllegalArgumentException(t.name() + ": " + v.length + " values, expected "
                                + t.elements());
                    }
                    TensorType tt = t.vector() ? TensorType.F32 : matrixType(type, t.cols());
                    byte[] bytes = Quants.quantize(tt, v);
                    ByteBuffer buf = ByteBuffer.wrap(bytes);
                    while (buf.hasRemaining()) {
                        at += ch.write(buf, at);
                    }
                    places.add(new long[]{at - bytes.length, bytes.length});
                    types.add(tt);
                }
            }
            try (FileChannel ch = FileChannel.open(spill, StandardOpenOption.READ)) {
                MemorySegment data = ch.size() == 0 ? MemorySegment.NULL
                        : ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
                for (int i = 0; i < layout.size(); i++) {
                    LlamaTensors.Entry t = layout.get(i);
                    long[] dims = t.vector() ? new long[]{t.cols()} : new long[]{t.cols(), t.rows()};
                    w.addTensor(t.name(), types.get(i), dims, data.asSlice(places.get(i)[0], places.get(i)[1]));
                }
                w.write(out);
            }
        } finally {
            Files.deleteIfExists(spill);
        }
    }

    /** The tokenizer.ggml.* keys of a tokenizer given as plain data. */
    public static void putTokenizer(GgufWriter w, TokenizerSpec t) {
        String p = "tokenizer.ggml.";
        w.putString(p + "model", t.model());
        if (t.pre() != null) {
            w.putString(p + "pre", t.pre());
        }
        w.putArray(p + "tokens", GgufValue.Array.strings(t.tokens()));
        if (t.scores() != null) {
            w.putArray(p + "scores", GgufValue.Array.float32s(t.scores()));
        }
        if (t.tokenTypes() != null) {
            w.putArray(p + "token_type", GgufValue.Array.int32s(t.tokenTypes()));
        }
        if (t.merges() != null) {
            w.putArray(p + "merges", GgufValue.Array.strings(t.merges()));
        }
        if (t.bosId() != null) {
            w.putUInt32(p + "bos_token_id", t.bosId());
        }
        if (t.eosId() != null) {
            w.putUInt32(p + "eos_token_id", t.eosId());
        }
        if (t.unknownId() != null) {
            w.putUInt32(p + "unknown_token_id", t.unknownId());
        }
        if (t.addBos() != null) {
            w.putBool(p + "add_bos_token", t.addBos());
        }
        if (t.addEos() != null) {
            w.putBool(p + "add_eos_token", t.addEos());
        }
        if (t.addSpacePrefix() != null) {
            w.putBool(p + "add_space_prefix", t.addSpacePrefix());
        }
    }
}
