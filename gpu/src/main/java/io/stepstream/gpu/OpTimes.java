package io.stepstream.gpu;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Profiled device kernel time split by op: index = label, the {@link Llama2Kernel} op codes 0..OPS-1 plus the
 * labels of kernels that are no pass of their own (the split-K reduction, the fused attention, the row
 * summaries). Both RMSNorms of a layer report as "rmsnorm".
 */
public record OpTimes(long[] nanos) {
    /** The split-K reduction kernel of a tiled matmul pass. */
    public static final int MM_REDUCE = Llama2Kernel.OPS;
    /** The fused attention kernel (scores + softmax + weighted sum). */
    public static final int ATTENTION = Llama2Kernel.OPS + 1;
    /** The row-summary kernel of a diffusion step (argmax and confidence per logits row, summary.cl). */
    public static final int SUMMARY = Llama2Kernel.OPS + 2;
    /** The persistent layer tail of a one-token step (WO, W1/W3, W2 and the next QKV in one kernel: tail.cl). */
    public static final int TAIL = Llama2Kernel.OPS + 3;

    private static final String[] NAMES = names();

    public OpTimes {
        nanos = Arrays.copyOf(nanos, Math.max(nanos.length, TAIL + 1));
    }

    private static String[] names() {
        String[] n = new String[TAIL + 1];
        n[Llama2Kernel.OP_EMBED] = "embed";
        n[Llama2Kernel.OP_RMSNORM_ATT] = "rmsnorm";
        n[Llama2Kernel.OP_QKV_ROPE] = "qkv";
        n[Llama2Kernel.OP_SCORES] = "scores";
        n[Llama2Kernel.OP_SOFTMAX] = "softmax";
        n[Llama2Kernel.OP_ATTN_OUT] = "attn-out";
        n[Llama2Kernel.OP_WO_RESIDUAL] = "wo";
        n[Llama2Kernel.OP_RMSNORM_FFN] = "rmsnorm";
        n[Llama2Kernel.OP_FFN_SWIGLU] = "w1w3";
        n[Llama2Kernel.OP_W2_RESIDUAL] = "w2";
        n[Llama2Kernel.OP_FINAL_NORM] = "final-norm";
        n[Llama2Kernel.OP_LOGITS] = "logits";
        n[MM_REDUCE] = "mm_reduce";
        n[ATTENTION] = "attention";
        n[SUMMARY] = "summary";
        n[TAIL] = "tail";
        return n;
    }

    public OpTimes minus(OpTimes o) {
        long[] d = nanos.clone();
        for (int i = 0; i < Math.min(d.length, o.nanos.length); i++) {
            d[i] -= o.nanos[i];
        }
        return new OpTimes(d);
    }

    /** Milliseconds per step of each op with any time, in schedule order, ops of one name summed. */
    public Map<String, Double> msPerStep(int steps) {
        Map<String, Double> ms = new LinkedHashMap<>();
        for (int i = 0; i < NAMES.length; i++) {
            if (nanos[i] > 0) {
                ms.merge(NAMES[i], nanos[i] / 1e6 / steps, Double::sum);
            }
        }
        return ms;
    }

    /** {@code " op ms op ms ..."}: a map from {@link #msPerStep} as one line of a bench's output. */
    public static String line(Map<String, Double> msPerStep) {
        StringBuilder sb = new StringBuilder();
        msPerStep.forEach((op, ms) -> sb.append(String.format(java.util.Locale.ROOT, " %s %.3f", op, ms)));
        return sb.toString();
    }
}
