package io.stepstream.engine.dlm;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A plain transcription of LLaDA's generate (and Fast-dLLM's threshold rule), whole canvas at a time, for the
 * tests: transfer counts, argmax, float64 softmax, Gumbel-max with the documented draw order, a sorted top-k with
 * ties to the lower position. Written against the algorithm, not against LladaGeneration's loops.
 */
final class ReferenceLlada {
    /** Logits of canvas positions [from, to): [to-from][vocab]. */
    interface Logits {
        double[][] of(int[] canvas, int from, int to);
    }

    record Result(int[] canvas, int forwards) {
    }

    private ReferenceLlada() {
    }

    static int[] numTransferTokens(int maskCount, int steps) {
        int[] n = new int[steps];
        for (int s = 0; s < steps; s++) {
            n[s] = maskCount / steps + (s < maskCount % steps ? 1 : 0);
        }
        return n;
    }

    static Result generate(Logits model, int[] prompt, int vocab, int maskId, int genLength, int blockLength,
                           int steps, double temperature, boolean randomRemasking, Double threshold, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] x = new int[prompt.length + genLength];
        for (int i = 0; i < x.length; i++) {
            x[i] = i < prompt.length ? prompt[i] : maskId;
        }
        int blocks = genLength / blockLength;
        int stepsPerBlock = steps / blocks;
        int forwards = 0;
        for (int b = 0; b < blocks; b++) {
            int start = prompt.length + b * blockLength;
            int end = start + blockLength;
            int masks = 0;
            for (int p = start; p < end; p++) {
                masks += x[p] == maskId ? 1 : 0;
            }
            int[] transfer = numTransferTokens(masks, stepsPerBlock);
            for (int i = 0; ; i++) {
                double[][] logits = model.of(x.clone(), start, end);
                forwards++;
                int[] x0 = new int[blockLength];
                double[] conf = new double[blockLength];
                for (int j = 0; j < blockLength; j++) {
                    double[] row = logits[j];
                    double[] scored = new double[vocab];
                    for (int id = 0; id < vocab; id++) {
                        scored[id] = temperature == 0 ? row[id]
                                : Math.exp(row[id]) / Math.pow(-Math.log(rng.nextDouble()), temperature);
                    }
                    x0[j] = argmax(scored);
                    conf[j] = softmax(row)[x0[j]];
                }
                if (randomRemasking) {
                    for (int j = 0; j < blockLength; j++) {
                        conf[j] = rng.nextDouble();
                    }
                }
                List<Integer> candidates = new ArrayList<>();
                for (int j = 0; j < blockLength; j++) {
                    if (x[start + j] == maskId) {
                        candidates.add(j);
                    }
                }
                candidates.sort(Comparator.<Integer>comparingDouble(j -> -conf[j]).thenComparingInt(j -> j));
                List<Integer> commit = new ArrayList<>();
                if (threshold == null) {
                    commit.addAll(candidates.subList(0, Math.min(transfer[i], candidates.size())));
                } else {
                    for (int c = 0; c < candidates.size(); c++) {
                        if (c == 0 || conf[candidates.get(c)] >= threshold) {
                            commit.add(candidates.get(c));
                        }
                    }
                }
                for (int j : commit) {
                    x[start + j] = x0[j];
                }
                boolean blockDone;
                if (threshold == null) {
                    blockDone = i + 1 == stepsPerBlock;
                } else {
                    blockDone = i + 1 == blockLength;
                    boolean anyMask = false;
                    for (int p = start; p < end; p++) {
                        anyMask |= x[p] == maskId;
                    }
                    blockDone |= !anyMask;
                }
                if (blockDone) {
                    break;
                }
            }
        }
        return new Result(x, forwards);
    }

    static int argmax(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    static double[] softmax(double[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (double l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }
}
