package io.stepstream.engine.bench;

/**
 * One timed run: {@code batch} sequences, each a prompt of {@code promptTokens} prefilled together, then
 * {@code decodeSteps} steps in which every sequence decodes one token (all of them in one forward per step).
 *
 * @param engine       who ran it ("stepstream", "llama.cpp", "llama.cpp FA")
 * @param prefillNanos the prefill forward (all prompts in one batch)
 * @param decodeNanos  all decode steps
 */
public record RunResult(String engine, int batch, int promptTokens, int decodeSteps, long prefillNanos,
                        long decodeNanos) {
    public RunResult {
        if (batch < 1 || promptTokens < 1 || decodeSteps < 1 || prefillNanos <= 0 || decodeNanos <= 0) {
            throw new IllegalArgumentException("run of " + engine + " out of range: batch " + batch + ", prompt "
                    + promptTokens + ", steps " + decodeSteps + ", " + prefillNanos + " ns prefill, " + decodeNanos
                    + " ns decode");
        }
    }

    /** Tokens decoded per second, all sequences together, decode steps only. */
    public double decodeTokensPerSecond() {
        return (double) batch * decodeSteps * 1e9 / decodeNanos;
    }

    /** Tokens decoded per second over the whole run, prefill included (what a user waiting for the text sees). */
    public double overallTokensPerSecond() {
        return (double) batch * decodeSteps * 1e9 / (prefillNanos + decodeNanos);
    }

    /** Milliseconds per decode step (one forward of {@code batch} tokens). */
    public double msPerStep() {
        return decodeNanos / 1e6 / decodeSteps;
    }
}
