package io.stepstream.loadtest;

import io.stepstream.protocol.client.DiffusionSettings;

/**
 * What one load run does. Exactly one of {@code concurrency} (closed loop: that many streams kept in flight)
 * and {@code ratePerSecond} (open loop: gamma arrivals at that mean rate, {@code burstiness} 1 = Poisson;
 * infinity sends everything at once) is set.
 *
 * @param server           gRPC target, host:port
 * @param model            model name; empty selects the server's default
 * @param seed             seeds the arrival process and, as seed + request index, each request; null = random
 * @param warmupRequests   requests sent (and discarded) before the measured ones
 * @param requestTimeoutMs per-request gRPC deadline
 * @param diffusion        diffusion-LM settings sent with every request (then max_tokens is not sent: a diffusion
 *                         model refuses it); null for an autoregressive model
 */
public record LoadTestConfig(
        String server,
        String model,
        Integer concurrency,
        Double ratePerSecond,
        double burstiness,
        int requests,
        int maxTokens,
        float temperature,
        Long seed,
        int warmupRequests,
        long requestTimeoutMs,
        SloTargets slo,
        Diffusion diffusion) {

    /**
     * The diffusion options of the requests; a null field is left to the server's default.
     *
     * @param genLength   --gen-length
     * @param blockLength --block-length
     * @param steps       --steps
     * @param threshold   --threshold, in (0, 1]
     * @param remasking   --remasking, "low_confidence" or "random"
     * @param sparsed     --sparsed and its --sparsed-* settings; null for dense attention
     * @param cache       --dlm-cache, "none", "prefix" or "dual" (null: the server's default, none)
     */
    public record Diffusion(Integer genLength, Integer blockLength, Integer steps, Double threshold,
                            String remasking, SparseD sparsed, String cache) {
        public Diffusion {
            requirePositive("--gen-length", genLength);
            requirePositive("--block-length", blockLength);
            requirePositive("--steps", steps);
            if (threshold != null && !(threshold > 0 && threshold <= 1)) {
                throw new IllegalArgumentException("--threshold must be in (0, 1], got " + threshold);
            }
            if (cache != null && !java.util.List.of("none", "prefix", "dual").contains(cache)) {
                throw new IllegalArgumentException("--dlm-cache must be none, prefix or dual, got " + cache);
            }
        }

        /** Dense attention, without the Fast-dLLM cache option (the server's default). */
        public Diffusion(Integer genLength, Integer blockLength, Integer steps, Double threshold, String remasking) {
            this(genLength, blockLength, steps, threshold, remasking, null, null);
        }

        /** SparseD settings ({@code null}: dense), without the Fast-dLLM cache option. */
        public Diffusion(Integer genLength, Integer blockLength, Integer steps, Double threshold, String remasking,
                         SparseD sparsed) {
            this(genLength, blockLength, steps, threshold, remasking, sparsed, null);
        }

        /** The command line's options, checked here (naming the flag) before any request is sent. */
        public static Diffusion of(DiffusionSettings s) {
            DiffusionSettings.SparseD sp = s.sparsed();
            return new Diffusion(s.genLength(), s.blockLength(), s.steps(), s.threshold(), s.remasking(),
                    sp == null ? null : new SparseD(sp.skip(), sp.select(), sp.blockSize()), s.cache());
        }

        /** What each request carries (protocol's one mapping of these options to the wire). */
        public DiffusionSettings settings() {
            return new DiffusionSettings(genLength, blockLength, steps, remasking, threshold,
                    sparsed == null ? null
                            : new DiffusionSettings.SparseD(sparsed.skip(), sparsed.select(), sparsed.blockSize()),
                    null, null, null, cache, false);
        }

        private static void requirePositive(String flag, Integer value) {
            if (value != null && value < 1) {
                throw new IllegalArgumentException(flag + " must be >= 1, got " + value);
            }
        }
    }

    /**
     * SparseD attention for every request; a null field is left to the server's default (skip 0.2, select 0.3, a
     * block size by canvas length). The server checks a block size against each canvas.
     *
     * @param skip      --sparsed-skip, in [0, 1]
     * @param select    --sparsed-select, in (0, 1]
     * @param blockSize --sparsed-block, >= 1
     */
    public record SparseD(Double skip, Double select, Integer blockSize) {
        public SparseD {
            if (skip != null && !(skip >= 0 && skip <= 1)) {
                throw new IllegalArgumentException("--sparsed-skip must be in [0, 1], got " + skip);
            }
            if (select != null && !(select > 0 && select <= 1)) {
                throw new IllegalArgumentException("--sparsed-select must be in (0, 1], got " + select);
            }
            if (blockSize != null && blockSize < 1) {
                throw new IllegalArgumentException("--sparsed-block must be >= 1, got " + blockSize);
            }
        }
    }

    /** A run of autoregressive requests. */
    public LoadTestConfig(String server, String model, Integer concurrency, Double ratePerSecond, double burstiness,
                          int requests, int maxTokens, float temperature, Long seed, int warmupRequests,
                          long requestTimeoutMs, SloTargets slo) {
        this(server, model, concurrency, ratePerSecond, burstiness, requests, maxTokens, temperature, seed,
                warmupRequests, requestTimeoutMs, slo, null);
    }

    public LoadTestConfig {
        if (server == null || server.isBlank()) {
            throw new IllegalArgumentException("--server must name the gRPC server as HOST:PORT");
        }
        model = model == null ? "" : model;
        if ((concurrency == null) == (ratePerSecond == null)) {
            throw new IllegalArgumentException("give exactly one of --concurrency and --rate");
        }
        if (concurrency != null && concurrency < 1) {
            throw new IllegalArgumentException("--concurrency must be >= 1, got " + concurrency);
        }
        if (ratePerSecond != null && !(ratePerSecond > 0)) {
            throw new IllegalArgumentException("--rate must be > 0 requests/s (or inf), got " + ratePerSecond);
        }
        if (!(burstiness > 0) || Double.isInfinite(burstiness)) {
            throw new IllegalArgumentException("--burstiness must be a finite number > 0, got " + burstiness);
        }
        if (requests < 1) {
            throw new IllegalArgumentException("--requests must be >= 1, got " + requests);
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("--max-tokens must be >= 1, got " + maxTokens);
        }
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("--temperature must be a finite number >= 0, got " + temperature);
        }
        if (warmupRequests < 0) {
            throw new IllegalArgumentException("--warmup must be >= 0, got " + warmupRequests);
        }
        if (requestTimeoutMs < 1) {
            throw new IllegalArgumentException("--request-timeout-s must be > 0, got " + requestTimeoutMs + " ms");
        }
        slo = slo == null ? SloTargets.NONE : slo;
    }

    /** "concurrency" or "rate". */
    public String mode() {
        return concurrency != null ? "concurrency" : "rate";
    }
}
