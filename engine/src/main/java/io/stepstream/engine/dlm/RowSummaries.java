package io.stepstream.engine.dlm;

import java.util.List;

/**
 * What greedy low-confidence remasking needs of each logits row of one input, instead of the row itself: the argmax
 * id (over every id, the mask id included, ties to the lowest id) and its float64 softmax probability, which is
 * {@code 1 / sum_i exp((double) l_i - (double) l_max)}. Row r of the input's logits range is entry r; the arrays may
 * be longer than a step's rows (scratch reused across steps, see {@link #ofRows}).
 *
 * <p>{@link #argmax(float[], int, int)} and {@link #probability} are the one host code path: {@link LladaGeneration}
 * computes its x0 and confidences with them, and {@link #summarize} fills a summary with them, so summaries made on
 * the host give bitwise the decisions of applying the logits. A backend that reduces the rows on its device (the
 * OpenCL backend) returns the same argmax but a confidence from its own double exp and summation order: equal to the
 * host's to about 1e-15 relative, not bitwise. Logits are assumed finite (no NaN).
 */
public record RowSummaries(int[] argmax, double[] confidence) {
    public RowSummaries {
        if (argmax == null || confidence == null || argmax.length != confidence.length) {
            throw new IllegalArgumentException("argmax and confidence must be non-null arrays of one length, got "
                    + (argmax == null ? "null" : argmax.length) + " and "
                    + (confidence == null ? "null" : confidence.length));
        }
    }

    /** Room for {@code rows} rows. */
    public static RowSummaries ofRows(int rows) {
        if (rows < 1) {
            throw new IllegalArgumentException("rows must be >= 1, got " + rows);
        }
        return new RowSummaries(new int[rows], new double[rows]);
    }

    /** Rows this summary has room for. */
    public int capacity() {
        return argmax.length;
    }

    /** Fills rows {@code [0, rows)} from {@code rows x vocab} logits, position-major, on the calling thread. */
    public void summarize(float[] logits, int rows, int vocab) {
        if (rows > capacity()) {
            throw new IllegalArgumentException("summaries have room for " + capacity() + " rows, " + rows + " asked");
        }
        for (int r = 0; r < rows; r++) {
            summarizeRow(r, logits, r * vocab, vocab);
        }
    }

    /** Fills row {@code r} from {@code logits[from .. from + vocab)}, on the calling thread. */
    public void summarizeRow(int r, float[] logits, int from, int vocab) {
        argmax[r] = argmax(logits, from, vocab);
        confidence[r] = probability(logits, from, vocab, argmax[r]);
    }

    /**
     * {@code log(confidence[r])}: for an autoregressive greedy step, the log-probability of the token
     * {@code argmax[r]}. From a host summary it is what {@link io.stepstream.engine.Sampler#logprob} computes to within
     * {@code 2^-52 * (|l_max| + log sum)} plus an ulp or two (the same float64 sum, but {@code -log(sum)} where the
     * sampler takes {@code l_max - (l_max + log(sum))}): under 1e-13 for logits of magnitude below ~100.
     */
    public double logprob(int r) {
        return Math.log(confidence[r]);
    }

    /** The argmax of {@code logits[row .. row + vocab)}, ties to the lowest id. */
    public static int argmax(float[] logits, int row, int vocab) {
        int best = 0;
        float max = logits[row];
        for (int id = 1; id < vocab; id++) {
            if (logits[row + id] > max) {
                max = logits[row + id];
                best = id;
            }
        }
        return best;
    }

    /** softmax(logits[row ..])[id] in float64. */
    public static double probability(float[] logits, int row, int vocab, int id) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < vocab; v++) {
            max = Math.max(max, logits[row + v]);
        }
        double sum = 0;
        for (int v = 0; v < vocab; v++) {
            sum += Math.exp(logits[row + v] - max);
        }
        return Math.exp(logits[row + id] - max) / sum;
    }

    /** Refuses summaries that cannot take a batch's rows: one per input, each with room for its logits range. */
    public static void checkBatch(List<DenoiseInput> batch, RowSummaries[] summaries) {
        if (summaries == null || summaries.length < batch.size()) {
            throw new IllegalArgumentException("summaries must have an entry per input: " + batch.size()
                    + " inputs, " + (summaries == null ? "null" : summaries.length + " entries"));
        }
        for (int i = 0; i < batch.size(); i++) {
            int rows = batch.get(i).logitsLength();
            if (summaries[i] == null || summaries[i].capacity() < rows) {
                throw new IllegalArgumentException("summaries[" + i + "] must have room for " + rows + " rows, has "
                        + (summaries[i] == null ? "null" : summaries[i].capacity()));
            }
        }
    }
}
