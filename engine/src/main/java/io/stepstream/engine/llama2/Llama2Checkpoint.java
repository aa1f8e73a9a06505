package io.stepstream.engine.llama2;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelLoadException;

import java.nio.file.Path;

/**
 * Reads llama2.c checkpoints in the legacy (v0) layout: 7 little-endian int32 (dim, hidden_dim, n_layers,
 * n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier is stored separately
 * at the end), then float32 arrays in llama2.c order. The header is validated and the file size checked
 * against it (in long arithmetic) before any weight array is allocated.
 */
public final class Llama2Checkpoint {
    public static final int HEADER_BYTES = 7 * Integer.BYTES;
    public static final float RMS_NORM_EPS = 1e-5f;
    public static final float ROPE_THETA = 10000f;
    /** Largest float[] the JVM reliably allocates. */
    private static final long MAX_ARRAY = Integer.MAX_VALUE - 16;

    private Llama2Checkpoint() {
    }

    public static Llama2Weights read(Path file) {
        try (ByteSource src = ByteSource.open(file)) {
            return read(src);
        }
    }

    public static Llama2Weights read(String name, byte[] bytes) {
        try (ByteSource src = ByteSource.of(name, bytes)) {
            return read(src);
        }
    }

    /** Reads only the header and checks it against the file size; exposed for tools and tests. */
    public static ModelConfig readConfig(Path file) {
        try (ByteSource src = ByteSource.open(file)) {
            return readHeader(src);
        }
    }

    static Llama2Weights read(ByteSource src) {
        ModelConfig c = readHeader(src);
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        int layers = c.nLayers();
        float[] embedding = floats(src, (long) c.vocabSize() * dim, "token_embedding");
        float[][] rmsAtt = perLayer(src, layers, dim, "rms_att");
        float[][] wq = perLayer(src, layers, (long) dim * dim, "wq");
        float[][] wk = perLayer(src, layers, (long) kvDim * dim, "wk");
        float[][] wv = perLayer(src, layers, (long) kvDim * dim, "wv");
        float[][] wo = perLayer(src, layers, (long) dim * dim, "wo");
        float[][] rmsFfn = perLayer(src, layers, dim, "rms_ffn");
        float[][] w1 = perLayer(src, layers, (long) hidden * dim, "w1");
        float[][] w2 = perLayer(src, layers, (long) dim * hidden, "w2");
        float[][] w3 = perLayer(src, layers, (long) hidden * dim, "w3");
        float[] rmsFinal = floats(src, dim, "rms_final");
        // llama2.c stores precomputed RoPE tables here; we recompute them exactly as run.c does.
        src.skip(2L * c.contextLength() * (c.headSize() / 2) * Float.BYTES, "freq_cis");
        float[] classifier = c.sharedClassifier() ? embedding
                : floats(src, (long) c.vocabSize() * dim, "wcls");
        return new Llama2Weights(c, embedding, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, classifier);
    }

    private static ModelConfig readHeader(ByteSource src) {
        String file = src.name();
        if (src.size() < HEADER_BYTES) {
            throw new ModelLoadException(file + ": truncated: the llama2.c header needs " + HEADER_BYTES
                    + " bytes, file has " + src.size());
        }
        int dim = src.readInt("dim");
        int hidden = src.readInt("hidden_dim");
        int layers = src.readInt("n_layers");
        int heads = src.readInt("n_heads");
        int kvHeads = src.readInt("n_kv_heads");
        int vocabField = src.readInt("vocab_size");
        int seqLen = src.readInt("seq_len");
        boolean shared = vocabField > 0;
        int vocab = vocabField == Integer.MIN_VALUE ? 0 : Math.abs(vocabField);
        String header = "dim=" + dim + " hidden_dim=" + hidden + " n_layers=" + layers + " n_heads=" + heads
                + " n_kv_heads=" + kvHeads + " vocab_size=" + vocabField + " seq_len=" + seqLen;
        requirePositive(file, "dim", dim, header);
        requirePositive(file, "hidden_dim", hidden, header);
        requirePositive(file, "n_layers", layers, header);
        requirePositive(file, "n_heads", heads, header);
        requirePositive(file, "n_kv_heads", kvHeads, header);
        requirePositive(file, "vocab_size", vocab, header);
        requirePositive(file, "seq_len", seqLen, header);
        if (dim % heads != 0) {
            throw new ModelLoadException(file + ": bad header: n_heads " + heads + " does not divide dim " + dim
                    + " (" + header + ")");
        }
        if (heads % kvHeads != 0) {
            throw new ModelLoadException(file + ": bad header: n_kv_heads " + kvHeads + " does not divide n_heads "
                    + heads + " (" + header + ")");
        }
        int headSize = dim / heads;
        if (headSize % 2 != 0) {
            throw new ModelLoadException(file + ": bad header: head size " + headSize
                    + " is odd; RoPE rotates pairs (" + header + ")");
        }
        long expected;
        try {
            long kvDim = (long) headSize * kvHeads;
            long perLayer = Math.addExact(Math.addExact(2L * dim, 2 * checkedTensor(file, (long) dim * dim, "wq")),
                    Math.addExact(2 * checkedTensor(file, kvDim * dim, "wk"),
                            3 * checkedTensor(file, (long) hidden * dim, "w1")));
            long floats = checkedTensor(file, (long) vocab * dim, "token_embedding");
            floats = Math.addExact(floats, Math.multiplyExact(perLayer, (long) layers));
            floats = Math.addExact(floats, dim);
            floats = Math.addExact(floats, Math.multiplyExact((long) seqLen, (long) headSize)); // freq_cis re+im
            if (!shared) {
                floats = Math.addExact(floats, (long) vocab * dim);
            }
            expected = Math.addExact(HEADER_BYTES, Math.multiplyExact(floats, (long) Float.BYTES));
        } catch (ArithmeticException e) {
            throw new ModelLoadException(file + ": bad header: sizes overflow 64-bit arithmetic (" + header + ")");
        }
        if (src.size() < expected) {
            throw new ModelLoadException(file + ": truncated: header implies " + expected + " bytes, file has "
                    + src.size() + " (" + header + ")");
        }
        if (src.size() > expected) {
            throw new ModelLoadException(file + ": " + (src.size() - expected)
                    + " unexpected trailing bytes: header implies " + expected + " bytes, file has " + src.size()
                    + " (" + header + "; not a legacy v0 llama2.c checkpoint?)");
        }
        return new ModelConfig(dim, hidden, layers, heads, kvHeads, vocab, seqLen, RMS_NORM_EPS, ROPE_THETA, shared);
    }

    private static void requirePositive(String file, String field, int value, String header) {
        if (value <= 0) {
            throw new ModelLoadException(file + ": bad header: " + field + " must be positive, got " + value
                    + " (" + header + ")");
        }
    }

    private static long checkedTensor(String file, long elements, String name) {
        if (elements > MAX_ARRAY) {
            throw new ModelLoadException(file + ": bad header: tensor " + name + " has " + elements
                    + " elements, more than one Java array holds");
        }
        return elements;
    }

    private static float[] floats(ByteSource src, long count, String name) {
        float[] a = new float[(int) count];
        src.readFloats(a, 0, (int) count, name);
        return a;
    }

    private static float[][] perLayer(ByteSource src, int layers, long count, String name) {
        float[][] a = new float[layers][];
        for (int l = 0; l < layers; l++) {
            a[l] = floats(src, count, name + "[" + l + "]");
        }
        return a;
    }
}
