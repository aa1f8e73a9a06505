package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClQueue;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;

/**
 * The non-matmul passes of a step (embed, the three RMSNorms, scores, softmax, attention output) as step.cl's
 * small kernels in the direct launcher's queue on its buffers, with Llama2Kernel's arithmetic: with these and
 * the hand matmuls a step enqueues no Aparapi pass, whose ~80 arguments make each enqueue costly on NVIDIA.
 * Per enqueue only the sizes and layer that changed are set; buffers are re-read when the launcher rebound
 * a field.
 */
final class HandStep {
    /** Work items of the row kernels (rmsnorm, softmax). */
    static final int NORM_WG = 256;
    private static final int ELEMENT_WG = 256;

    private final ClQueue queue;
    private final DirectLauncher launcher;
    private final Llama2Kernel k;
    private final Kernel embed;
    private final Kernel normAtt;
    private final Kernel normFfn;
    private final Kernel normFinal;
    private final Kernel scores;
    private final Kernel softmax;
    private final Kernel attnOut;
    private final Kernel[] all;

    /** One kernel object: its buffer arguments by field name and the int arguments it last set. */
    private final class Kernel {
        final MemorySegment handle;
        final int[] bufferArgs;
        final String[] fields;
        final long[] bound;
        final long[] ints = new long[24];

        Kernel(MemorySegment program, String name, Object... bufferArgsAndFields) {
            this.handle = queue.createKernel(program, name);
            int n = bufferArgsAndFields.length / 2;
            bufferArgs = new int[n];
            fields = new String[n];
            bound = new long[n];
            for (int i = 0; i < n; i++) {
                bufferArgs[i] = (Integer) bufferArgsAndFields[2 * i];
                fields[i] = (String) bufferArgsAndFields[2 * i + 1];
            }
            java.util.Arrays.fill(ints, Long.MIN_VALUE);
        }

        void bind() {
            for (int i = 0; i < bufferArgs.length; i++) {
                MemorySegment b = launcher.buffer(fields[i]);
                if (bound[i] != b.address()) {
                    queue.setArgBuffer(handle, bufferArgs[i], b);
                    bound[i] = b.address();
                }
            }
        }

        Kernel setInt(int index, int value) {
            if (ints[index] != value) {
                queue.setArgInt(handle, index, value);
                ints[index] = value;
            }
            return this;
        }

        Kernel setFloat(int index, float value) {
            queue.setArgFloat(handle, index, value);
            return this;
        }

        void enqueue(long items, long local, MemorySegment event) {
            queue.enqueue(handle, (items + local - 1) / local * local, local, event);
        }
    }

    HandStep(DirectLauncher launcher, Llama2Kernel k) {
        this.launcher = launcher;
        this.queue = launcher.queue();
        this.k = k;
        MemorySegment program = queue.buildProgram(source(), "-DNORM_WG=" + NORM_WG);
        embed = new Kernel(program, "embed", 2, "tokenIds", 3, "emb", 4, "x");
        embed.setInt(1, k.dim);
        normAtt = norm(program, "rmsAtt", 0);
        normFfn = norm(program, "rmsFfn", 0);
        normFinal = norm(program, "rmsFinal", 1);
        scores = new Kernel(program, "scores", 12, "tokenPos", 13, "tokenSeq", 14, "blockTable", 15, "entryIndptr",
                16, "entryIndices", 17, "patIndptr", 18, "patIndices", 19, "q", 20, "kv", 21, "att", 22, "entryLen");
        scores.setInt(1, k.nHeads).setInt(3, k.ctx).setInt(4, k.headSize).setInt(5, k.dim).setInt(6, k.kvDim)
                .setInt(7, k.kvGroup).setInt(8, k.maxBlocksPerSeq).setInt(9, k.blockFloats).setFloat(11, k.attScale);
        softmax = new Kernel(program, "softmax", 3, "tokenPos", 4, "att", 5, "tokenSeq", 6, "entryLen");
        softmax.setInt(1, k.nHeads).setInt(2, k.ctx);
        attnOut = new Kernel(program, "attn_out", 10, "tokenPos", 11, "tokenSeq", 12, "blockTable", 13,
                "entryIndptr", 14, "entryIndices", 15, "patIndptr", 16, "patIndices", 17, "att", 18, "kv", 19, "xb",
                20, "entryLen");
        attnOut.setInt(1, k.dim).setInt(2, k.nHeads).setInt(3, k.ctx).setInt(4, k.headSize).setInt(5, k.kvDim)
                .setInt(6, k.kvGroup).setInt(7, k.maxBlocksPerSeq).setInt(8, k.blockFloats);
        all = new Kernel[]{embed, normAtt, normFfn, normFinal, scores, softmax, attnOut};
    }

    private Kernel norm(MemorySegment program, String weight, int useLastRow) {
        Kernel n = new Kernel(program, "rmsnorm", 5, "x", 6, "logitRow", 7, weight, 8, "xb");
        n.setInt(1, k.dim).setFloat(2, k.eps).setInt(4, useLastRow);
        return n;
    }

    static String source() {
        try (InputStream in = HandStep.class.getResourceAsStream("step.cl")) {
            if (in == null) {
                throw new IllegalStateException("resource io/stepstream/gpu/step.cl is missing from the classpath");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read step.cl", e);
        }
    }

    /** Re-reads every kernel's buffers (after the launcher rebound some field). */
    void bindAll() {
        for (Kernel kernel : all) {
            kernel.bind();
        }
    }

    /** Enqueues pass {@code op} of {@code layer} for the step's sizes in the kernel's fields; false if not ours. */
    boolean enqueue(int op, int layer, MemorySegment event) {
        switch (op) {
            case Llama2Kernel.OP_EMBED -> embed.setInt(0, k.tokens * k.dim).enqueue((long) k.tokens * k.dim,
                    ELEMENT_WG, event);
            case Llama2Kernel.OP_RMSNORM_ATT -> norm(normAtt, k.tokens, layer, event);
            case Llama2Kernel.OP_RMSNORM_FFN -> norm(normFfn, k.tokens, layer, event);
            case Llama2Kernel.OP_FINAL_NORM -> norm(normFinal, k.logitRows, 0, event);
            case Llama2Kernel.OP_SCORES -> scores.setInt(0, k.tokens).setInt(2, k.maxLen).setInt(10, layer)
                    .enqueue((long) k.tokens * k.nHeads * k.maxLen, ELEMENT_WG, event);
            case Llama2Kernel.OP_SOFTMAX -> softmax.setInt(0, k.tokens * k.nHeads)
                    .enqueue((long) k.tokens * k.nHeads * NORM_WG, NORM_WG, event);
            case Llama2Kernel.OP_ATTN_OUT -> attnOut.setInt(0, k.tokens).setInt(9, layer)
                    .enqueue((long) k.tokens * k.dim, ELEMENT_WG, event);
            default -> {
                return false;
            }
        }
        return true;
    }

    private void norm(Kernel n, int rows, int layer, MemorySegment event) {
        n.setInt(0, rows).setInt(3, layer).enqueue((long) rows * NORM_WG, NORM_WG, event);
    }
}
