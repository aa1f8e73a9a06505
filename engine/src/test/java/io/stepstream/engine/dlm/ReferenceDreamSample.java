package io.stepstream.engine.dlm;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A plain transcription of Dream's {@code _sample} and {@code sample_tokens} for the tests, whole canvas at a time,
 * written against Dream's algorithm (not DreamGeneration's loops), with the random draws in DreamGeneration's
 * documented order: origin: one per masked position, then one per filled position when temperature > 0; others:
 * one per masked position when temperature > 0, then one per position drawn when alg_temp > 0.
 */
final class ReferenceDreamSample {
    /** Dream's shifted logits of every canvas position: [n][vocab]. */
    interface Logits {
        double[][] of(int[] canvas);
    }

    record Result(int[] canvas, int forwards) {
    }

    private record Sampled(double confidence, int token) {
    }

    private ReferenceDreamSample() {
    }

    /** torch.linspace(1, eps, steps + 1) with torch's float32 arithmetic (halves counted from either end). */
    static float[] linspace(int steps, double eps) {
        int points = steps + 1;
        float first = 1.0f;
        float last = (float) eps;
        float delta = (last - first) / (float) steps;
        float[] out = new float[points];
        for (int i = 0; i < points; i++) {
            out[i] = i < points / 2 ? first + delta * i : last - delta * (steps - i);
        }
        return out;
    }

    static Result generate(Logits model, int[] prompt, int vocab, int maskId, DreamParams p) {
        SplittableRandom rng = new SplittableRandom(p.seed());
        int[] x = new int[prompt.length + p.genLength()];
        for (int i = 0; i < x.length; i++) {
            x[i] = i < prompt.length ? prompt[i] : maskId;
        }
        float[] timesteps = linspace(p.steps(), p.eps());
        int forwards = 0;
        for (int i = 0; i < p.steps(); i++) {
            List<Integer> maskIndex = new ArrayList<>();
            for (int pos = 0; pos < x.length; pos++) {
                if (x[pos] == maskId) {
                    maskIndex.add(pos);
                }
            }
            if (maskIndex.isEmpty()) {
                break; // the remaining steps of Dream would see no mask and change nothing
            }
            double[][] logits = model.of(x.clone());
            forwards++;
            float t = timesteps[i];
            float s = timesteps[i + 1];
            if (p.alg() == DreamAlgorithm.ORIGIN) {
                float pTransfer = i < p.steps() - 1 ? 1 - s / t : 1;
                boolean[] transfer = new boolean[maskIndex.size()];
                for (int m = 0; m < transfer.length; m++) {
                    transfer[m] = rng.nextDouble() < pTransfer;
                }
                for (int m = 0; m < transfer.length; m++) {
                    if (transfer[m]) {
                        int pos = maskIndex.get(m);
                        x[pos] = sampleTokens(logits[pos], p, rng).token();
                    }
                }
                continue;
            }
            int n = maskIndex.size();
            double[] confidence = new double[n];
            int[] x0 = new int[n];
            for (int m = 0; m < n; m++) {
                Sampled sampled = sampleTokens(logits[maskIndex.get(m)], p, rng);
                confidence[m] = sampled.confidence();
                x0[m] = sampled.token();
            }
            int number = i < p.steps() - 1 ? (int) (n * (1 - s / t)) : n;
            if (number <= 0) {
                continue;
            }
            List<Integer> chosen = new ArrayList<>();
            if (p.algTemp() == null || p.algTemp() == 0) {
                List<Integer> ranked = new ArrayList<>();
                for (int m = 0; m < n; m++) {
                    ranked.add(m);
                }
                ranked.sort(Comparator.<Integer>comparingDouble(m -> -confidence[m]).thenComparingInt(m -> m));
                chosen.addAll(ranked.subList(0, number));
            } else {
                double[] scaled = new double[n];
                for (int m = 0; m < n; m++) {
                    scaled[m] = confidence[m] / p.algTemp();
                }
                double[] weights = softmax(scaled);
                boolean[] taken = new boolean[n];
                for (int draw = 0; draw < number; draw++) {
                    double left = 0;
                    for (int m = 0; m < n; m++) {
                        left += taken[m] ? 0 : weights[m];
                    }
                    double target = rng.nextDouble() * left;
                    double acc = 0;
                    int pick = -1;
                    for (int m = 0; m < n; m++) {
                        if (!taken[m]) {
                            acc += weights[m];
                            pick = m;
                            if (target < acc) {
                                break;
                            }
                        }
                    }
                    taken[pick] = true;
                    chosen.add(pick);
                }
            }
            for (int m : chosen) {
                x[maskIndex.get(m)] = x0[m];
            }
        }
        return new Result(x, forwards);
    }

    /** Dream's sample_tokens for one position's logits. */
    private static Sampled sampleTokens(double[] raw, DreamParams p, SplittableRandom rng) {
        int vocab = raw.length;
        double[] logits = raw.clone();
        if (p.temperature() > 0) {
            for (int id = 0; id < vocab; id++) {
                logits[id] /= p.temperature();
            }
        }
        if (p.topP() != null && p.topP() < 1) {
            List<Integer> sorted = new ArrayList<>();
            for (int id = 0; id < vocab; id++) {
                sorted.add(id);
            }
            double[] l = logits;
            sorted.sort(Comparator.<Integer>comparingDouble(id -> -l[id]).thenComparingInt(id -> id));
            double[] sortedLogits = new double[vocab];
            for (int r = 0; r < vocab; r++) {
                sortedLogits[r] = logits[sorted.get(r)];
            }
            double[] sortedProbs = softmax(sortedLogits);
            double[] cumulative = new double[vocab];
            for (int r = 0; r < vocab; r++) {
                cumulative[r] = (r == 0 ? 0 : cumulative[r - 1]) + sortedProbs[r];
            }
            // remove where cumulative > top_p, shifted one to the right so the crossing token stays
            for (int r = vocab - 1; r >= 1; r--) {
                if (cumulative[r - 1] > p.topP()) {
                    logits[sorted.get(r)] = Double.NEGATIVE_INFINITY;
                }
            }
        }
        if (p.topK() != null) {
            int k = Math.min(p.topK(), vocab);
            double[] desc = logits.clone();
            java.util.Arrays.sort(desc);
            double kth = desc[vocab - k];
            for (int id = 0; id < vocab; id++) {
                if (logits[id] < kth) {
                    logits[id] = Double.NEGATIVE_INFINITY;
                }
            }
        }
        double[] probs = softmax(logits);
        int token;
        if (p.temperature() > 0) {
            double u = rng.nextDouble();
            double acc = 0;
            token = -1;
            for (int id = 0; id < vocab; id++) {
                if (probs[id] > 0) {
                    token = id;
                    acc += probs[id];
                    if (u < acc) {
                        break;
                    }
                }
            }
        } else {
            token = 0;
            for (int id = 0; id < vocab; id++) {
                if (probs[id] > probs[token]) {
                    token = id;
                }
            }
        }
        double confidence = probs[token];
        if (p.alg() == DreamAlgorithm.TOPK_MARGIN) {
            double[] desc = probs.clone();
            java.util.Arrays.sort(desc);
            confidence = desc[vocab - 1] - desc[vocab - 2];
        } else if (p.alg() == DreamAlgorithm.ENTROPY) {
            double sum = 0;
            for (double pr : probs) {
                sum += pr * Math.log(pr + 1e-10);
            }
            confidence = sum;
        }
        return new Sampled(confidence, token);
    }

    static double[] softmax(double[] v) {
        double max = Double.NEGATIVE_INFINITY;
        for (double x : v) {
            max = Math.max(max, x);
        }
        double[] out = new double[v.length];
        double sum = 0;
        for (int i = 0; i < v.length; i++) {
            out[i] = Math.exp(v[i] - max);
            sum += out[i];
        }
        for (int i = 0; i < v.length; i++) {
            out[i] /= sum;
        }
        return out;
    }
}
