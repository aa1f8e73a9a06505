package io.stepstream.engine.dlm;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A plain float64 transcription of Fast-dLLM's cached LLaDA decoding (generate_with_prefix_cache and
 * generate_with_dual_cache) on the tinystories-dlm weights, for the tests. Its own forward pass that takes
 * "past key values" the way the Hugging Face style model does: with a prefix cache the fresh keys of the rows run
 * are appended after the cached ones; with a dual cache they replace the cached keys of the block's positions. It
 * shares only the weights (and argmax / softmax) with the other references, never production code.
 */
final class ReferenceFastDllm {
    /** Per layer, per position: RoPE-rotated key and the value of each kv head, concatenated ([layer][pos][kvDim]). */
    record Past(double[][][] keys, double[][][] values) {
        int length() {
            return keys[0].length;
        }

        /** Positions [0, end) only: what the prefix cache keeps. */
        Past truncate(int end) {
            double[][][] k = new double[keys.length][][];
            double[][][] v = new double[keys.length][][];
            for (int l = 0; l < keys.length; l++) {
                k[l] = java.util.Arrays.copyOf(keys[l], end);
                v[l] = java.util.Arrays.copyOf(values[l], end);
            }
            return new Past(k, v);
        }
    }

    /** Logits of the rows run ([rows][vocab]) and, when asked, every layer's keys and values of the whole canvas. */
    record Pass(double[][] logits, Past present) {
    }

    private final ReferenceDlm m;

    ReferenceFastDllm(ReferenceDlm m) {
        this.m = m;
    }

    /**
     * Runs canvas rows [from, to) through the model. {@code past == null}: from must be 0 and to the canvas length
     * (the block's first step), and the result carries every layer's keys and values. PREFIX ({@code dual false}):
     * past holds positions [0, from) and to is the canvas end; the keys attended are past followed by the fresh
     * rows. DUAL: past holds the whole canvas, and the fresh rows stand in for past's positions [from, to).
     */
    Pass forward(int[] canvas, int from, int to, Past past, boolean dual) {
        int n = to - from;
        int kvDim = m.kvHeads * m.headDim;
        double[][] h = new double[n][];
        double[] emb = m.weight("model.embed_tokens.weight");
        for (int r = 0; r < n; r++) {
            h[r] = new double[m.dim];
            for (int i = 0; i < m.dim; i++) {
                h[r][i] = emb[canvas[from + r] * m.dim + i];
            }
        }
        double[][][] presentK = new double[m.layers][][];
        double[][][] presentV = new double[m.layers][][];
        for (int l = 0; l < m.layers; l++) {
            String pre = "model.layers." + l + ".";
            double[][] q = new double[n][];
            double[][] k = new double[n][];
            double[][] v = new double[n][];
            for (int r = 0; r < n; r++) {
                double[] normed = rmsnorm(h[r], m.weight(pre + "input_layernorm.weight"));
                q[r] = linear(m.weight(pre + "self_attn.q_proj.weight"), normed, m.heads * m.headDim);
                k[r] = linear(m.weight(pre + "self_attn.k_proj.weight"), normed, kvDim);
                v[r] = linear(m.weight(pre + "self_attn.v_proj.weight"), normed, kvDim);
                rope(q[r], from + r);
                rope(k[r], from + r);
            }
            double[][] keys;
            double[][] values;
            if (past == null) {
                keys = k;
                values = v;
            } else if (!dual) {
                if (past.length() != from || to != canvas.length) {
                    throw new IllegalStateException("prefix cache: past of " + past.length() + " positions, rows ["
                            + from + ", " + to + ") of " + canvas.length);
                }
                keys = concat(past.keys()[l], k);
                values = concat(past.values()[l], v);
            } else {
                keys = past.keys()[l].clone();
                values = past.values()[l].clone();
                for (int r = 0; r < n; r++) {
                    keys[from + r] = k[r];
                    values[from + r] = v[r];
                }
            }
            presentK[l] = keys;
            presentV[l] = values;
            double[][] attended = Float64Reference.attend(q, keys, values, m.heads, m.kvHeads, m.headDim, null);
            for (int r = 0; r < n; r++) {
                Float64Reference.outputAndMlp(h[r], attended[r], m::weight, pre, m.hidden, m.eps);
            }
        }
        double[][] logits = new double[n][];
        for (int r = 0; r < n; r++) {
            logits[r] = linear(m.weight("lm_head.weight"), rmsnorm(h[r], m.weight("model.norm.weight")), m.vocab);
        }
        return new Pass(logits, past == null ? new Past(presentK, presentV) : null);
    }

    /**
     * Fast-dLLM's cached generate: per block, one full pass that also yields the keys and values (kept whole for
     * DUAL, cut to the positions before the block for PREFIX), then passes over the block and suffix (PREFIX) or the
     * block alone (DUAL) until the block has no mask. The decisions are LLaDA's / the threshold rule, with the
     * random draws in the documented order (per block position; per id within it with temperature).
     */
    ReferenceLlada.Result generate(int[] prompt, int genLength, int blockLength, int steps, double temperature,
                                   boolean randomRemasking, Double threshold, long seed, boolean dual) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] x = new int[prompt.length + genLength];
        for (int i = 0; i < x.length; i++) {
            x[i] = i < prompt.length ? prompt[i] : m.maskId;
        }
        int stepsPerBlock = steps / (genLength / blockLength);
        int forwards = 0;
        for (int start = prompt.length; start < x.length; start += blockLength) {
            int end = start + blockLength;
            int masks = 0;
            for (int p = start; p < end; p++) {
                masks += x[p] == m.maskId ? 1 : 0;
            }
            int[] transfer = ReferenceLlada.numTransferTokens(masks, stepsPerBlock);
            Pass full = forward(x, 0, x.length, null, dual);
            forwards++;
            double[][] blockLogits = java.util.Arrays.copyOfRange(full.logits(), start, end);
            decide(blockLogits, x, start, blockLength, transfer[0], threshold, temperature, randomRemasking, rng);
            Past past = dual ? full.present() : full.present().truncate(start);
            for (int i = 1; hasMask(x, start, end); i++) {
                // The same valves as production (unreachable unless the model keeps choosing the mask id itself).
                if (threshold == null ? i == stepsPerBlock : i == blockLength) {
                    break;
                }
                int to = dual ? end : x.length;
                Pass pass = forward(x, start, to, past, dual);
                forwards++;
                decide(java.util.Arrays.copyOf(pass.logits(), blockLength), x, start, blockLength,
                        threshold == null ? transfer[i] : 0, threshold, temperature, randomRemasking, rng);
            }
        }
        return new ReferenceLlada.Result(x, forwards);
    }

    private boolean hasMask(int[] x, int from, int to) {
        for (int p = from; p < to; p++) {
            if (x[p] == m.maskId) {
                return true;
            }
        }
        return false;
    }

    /** One step's commits on the block [start, start+blockLength) from its logits. */
    private void decide(double[][] logits, int[] x, int start, int blockLength, int transfer, Double threshold,
                        double temperature, boolean randomRemasking, SplittableRandom rng) {
        int[] x0 = new int[blockLength];
        double[] conf = new double[blockLength];
        for (int j = 0; j < blockLength; j++) {
            double[] scored = new double[m.vocab];
            for (int id = 0; id < m.vocab; id++) {
                scored[id] = temperature == 0 ? logits[j][id]
                        : Math.exp(logits[j][id]) / Math.pow(-Math.log(rng.nextDouble()), temperature);
            }
            x0[j] = ReferenceLlada.argmax(scored);
            conf[j] = ReferenceLlada.softmax(logits[j])[x0[j]];
        }
        if (randomRemasking) {
            for (int j = 0; j < blockLength; j++) {
                conf[j] = rng.nextDouble();
            }
        }
        List<Integer> masked = new ArrayList<>();
        for (int j = 0; j < blockLength; j++) {
            if (x[start + j] == m.maskId) {
                masked.add(j);
            }
        }
        masked.sort(Comparator.<Integer>comparingDouble(j -> -conf[j]).thenComparingInt(j -> j));
        for (int c = 0; c < masked.size(); c++) {
            boolean commit = threshold == null ? c < transfer : c == 0 || conf[masked.get(c)] >= threshold;
            if (commit) {
                x[start + masked.get(c)] = x0[masked.get(c)];
            }
        }
    }

    private static double[][] concat(double[][] a, double[][] b) {
        double[][] out = new double[a.length + b.length][];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static double[] linear(double[] weight, double[] x, int out) {
        return Float64Reference.linear(weight, x, out);
    }

    private double[] rmsnorm(double[] x, double[] gain) {
        return Float64Reference.rmsnorm(x, gain, m.eps);
    }

    /** Interleaved pairs (2i, 2i+1) of each head at absolute canvas position pos. */
    private void rope(double[] vec, int pos) {
        Float64Reference.ropeInterleaved(vec, pos, m.headDim, m.theta);
    }
}
