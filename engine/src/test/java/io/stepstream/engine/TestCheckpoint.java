package io.stepstream.engine;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

/**
 * A llama2.c checkpoint held in plain arrays, written and read by the tests independently of the
 * production loader: random ones for the forward tests, the real stories260K for the reference forward.
 */
record TestCheckpoint(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen,
                      boolean shared, float[] embedding, float[][] rmsAtt, float[][] wq, float[][] wk,
                      float[][] wv, float[][] wo, float[][] rmsFfn, float[][] w1, float[][] w2, float[][] w3,
                      float[] rmsFinal, float[] wcls) {

    int headSize() {
        return dim / heads;
    }

    int kvDim() {
        return headSize() * kvHeads;
    }

    /** Random weights of a plausible scale (matrices ~ U(-1,1)/sqrt(fan-in), norms near 1). */
    static TestCheckpoint random(Random rnd, int dim, int hidden, int layers, int heads, int kvHeads, int vocab,
                                 int seqLen, boolean shared) {
        int kvDim = dim / heads * kvHeads;
        float[] emb = uniform(rnd, vocab * dim, 1f);
        return new TestCheckpoint(dim, hidden, layers, heads, kvHeads, vocab, seqLen, shared, emb,
                norms(rnd, layers, dim), mats(rnd, layers, dim, dim), mats(rnd, layers, kvDim, dim),
                mats(rnd, layers, kvDim, dim), mats(rnd, layers, dim, dim), norms(rnd, layers, dim),
                mats(rnd, layers, hidden, dim), mats(rnd, layers, dim, hidden), mats(rnd, layers, hidden, dim),
                norms(rnd, 1, dim)[0], shared ? emb : uniform(rnd, vocab * dim, (float) (1 / Math.sqrt(dim))));
    }

    private static float[] uniform(Random rnd, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (rnd.nextFloat() * 2 - 1) * scale;
        }
        return a;
    }

    private static float[][] mats(Random rnd, int layers, int rows, int cols) {
        float[][] a = new float[layers][];
        for (int l = 0; l < layers; l++) {
            a[l] = uniform(rnd, rows * cols, (float) (1.7 / Math.sqrt(cols)));
        }
        return a;
    }

    private static float[][] norms(Random rnd, int layers, int dim) {
        float[][] a = new float[layers][dim];
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < dim; i++) {
                a[l][i] = 0.8f + 0.4f * rnd.nextFloat();
            }
        }
        return a;
    }

    byte[] toBytes() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ints(out, dim, hidden, layers, heads, kvHeads, shared ? vocab : -vocab, seqLen);
        floats(out, embedding);
        for (float[][] group : List.of(rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3)) {
            for (float[] a : group) {
                floats(out, a);
            }
        }
        floats(out, rmsFinal);
        // freq_cis_real and freq_cis_imag as llama2.c export.py stores them (the engine recomputes them)
        int half = headSize() / 2;
        float[] re = new float[seqLen * half];
        float[] im = new float[seqLen * half];
        for (int p = 0; p < seqLen; p++) {
            for (int i = 0; i < half; i++) {
                double angle = p / Math.pow(10000, 2.0 * i / headSize());
                re[p * half + i] = (float) Math.cos(angle);
                im[p * half + i] = (float) Math.sin(angle);
            }
        }
        floats(out, re);
        floats(out, im);
        if (!shared) {
            floats(out, wcls);
        }
        return out.toByteArray();
    }

    Path write(Path file) throws IOException {
        Files.write(file, toBytes());
        return file;
    }

    static void ints(ByteArrayOutputStream out, int... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            b.putInt(v);
        }
        out.writeBytes(b.array());
    }

    static void floats(ByteArrayOutputStream out, float[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        out.writeBytes(b.array());
    }

    /** Reads a legacy llama2.c checkpoint with nothing but a little-endian ByteBuffer. */
    static TestCheckpoint read(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int dim = b.getInt();
        int hidden = b.getInt();
        int layers = b.getInt();
        int heads = b.getInt();
        int kvHeads = b.getInt();
        int vocabField = b.getInt();
        int seqLen = b.getInt();
        int vocab = Math.abs(vocabField);
        int kvDim = dim / heads * kvHeads;
        float[] emb = take(b, vocab * dim);
        float[][] rmsAtt = take(b, layers, dim);
        float[][] wq = take(b, layers, dim * dim);
        float[][] wk = take(b, layers, kvDim * dim);
        float[][] wv = take(b, layers, kvDim * dim);
        float[][] wo = take(b, layers, dim * dim);
        float[][] rmsFfn = take(b, layers, dim);
        float[][] w1 = take(b, layers, hidden * dim);
        float[][] w2 = take(b, layers, dim * hidden);
        float[][] w3 = take(b, layers, hidden * dim);
        float[] rmsFinal = take(b, dim);
        take(b, seqLen * (dim / heads)); // freq_cis real + imag
        float[] wcls = vocabField > 0 ? emb : take(b, vocab * dim);
        if (b.hasRemaining()) {
            throw new IllegalStateException("trailing bytes in test checkpoint");
        }
        return new TestCheckpoint(dim, hidden, layers, heads, kvHeads, vocab, seqLen, vocabField > 0, emb, rmsAtt,
                wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, wcls);
    }

    private static float[] take(ByteBuffer b, int n) {
        float[] a = new float[n];
        b.asFloatBuffer().get(a);
        b.position(b.position() + n * 4);
        return a;
    }

    private static float[][] take(ByteBuffer b, int layers, int n) {
        float[][] a = new float[layers][];
        for (int l = 0; l < layers; l++) {
            a[l] = take(b, n);
        }
        return a;
    }

    /**
     * A llama2.c tokenizer file for a vocabulary of {@code vocab} tokens: the three specials, the 256 byte
     * tokens, then distinct random merges of printable pieces with scores drawn from a few values, so many
     * merges tie and the leftmost-wins rule matters.
     */
    static byte[] randomTokenizer(Random rnd, int vocab) {
        if (vocab < 259 + 40) {
            throw new IllegalArgumentException("need room for byte tokens and merges");
        }
        Set<String> pieces = new LinkedHashSet<>();
        pieces.add("<unk>");
        pieces.add("\n<s>\n");
        pieces.add("\n</s>\n");
        for (int b = 0; b < 256; b++) {
            pieces.add(String.format("<0x%02X>", b));
        }
        String alphabet = " abcdeo\n1é中";
        for (char c : alphabet.toCharArray()) {
            pieces.add(String.valueOf(c));
        }
        List<String> grow = new java.util.ArrayList<>(pieces.stream().skip(259).toList());
        while (pieces.size() < vocab) {
            String merged = grow.get(rnd.nextInt(grow.size())) + grow.get(rnd.nextInt(grow.size()));
            if (merged.length() <= 6 && pieces.add(merged)) {
                grow.add(merged);
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int maxLen = 0;
        for (String p : pieces) {
            maxLen = Math.max(maxLen, p.getBytes(StandardCharsets.UTF_8).length);
        }
        ints(out, maxLen);
        int id = 0;
        for (String p : pieces) {
            byte[] bytes = p.getBytes(StandardCharsets.UTF_8);
            float score = id < 259 ? 0f : -rnd.nextInt(4);
            floats(out, new float[]{score});
            ints(out, bytes.length);
            out.writeBytes(bytes);
            id++;
        }
        return out.toByteArray();
    }
}
