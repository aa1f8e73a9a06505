package io.stepstream.engine.llama;

/**
 * Llama 3's RoPE frequency scaling as per-pair divisors. Long wavelengths (beyond the original context over
 * {@code lowFreqFactor}) are slowed by {@code factor}, short ones (under the original context over
 * {@code highFreqFactor}) are kept, and those between are blended smoothly. GGUF files store the resulting
 * divisors as the {@code rope_freqs.weight} tensor; config.json states the four parameters.
 */
public final class RopeScaling {
    private RopeScaling() {
    }

    /** The divisor of each of the {@code headSize/2} pair frequencies {@code theta^(-2p/headSize)}. */
    public static float[] llama3Factors(double theta, int headSize, double factor, double lowFreqFactor,
                                        double highFreqFactor, double originalContext) {
        if (!(factor > 0) || !(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor) || !(originalContext > 0)) {
            throw new IllegalArgumentException("llama3 rope scaling needs factor > 0, 0 < low_freq_factor <"
                    + " high_freq_factor and original_max_position_embeddings > 0; got factor " + factor
                    + ", low_freq_factor " + lowFreqFactor + ", high_freq_factor " + highFreqFactor
                    + ", original_max_position_embeddings " + originalContext);
        }
        int pairs = headSize / 2;
        float[] divisors = new float[pairs];
        double lowFreqWavelen = originalContext / lowFreqFactor;
        double highFreqWavelen = originalContext / highFreqFactor;
        for (int p = 0; p < pairs; p++) {
            double freq = Math.pow(theta, -(2.0 * p) / headSize);
            double wavelen = 2 * Math.PI / freq;
            double divisor;
            if (wavelen < highFreqWavelen) {
                divisor = 1;
            } else if (wavelen > lowFreqWavelen) {
                divisor = factor;
            } else {
                double smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                divisor = 1 / ((1 - smooth) / factor + smooth);
            }
            divisors[p] = (float) divisor;
        }
        return divisors;
    }
}
