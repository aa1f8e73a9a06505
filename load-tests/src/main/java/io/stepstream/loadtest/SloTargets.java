package io.stepstream.loadtest;

/**
 * Service-level objectives for goodput, in milliseconds; a null target is not checked. A request counts
 * towards goodput only if it succeeded and meets every target that is set (vLLM's definition).
 */
public record SloTargets(Double ttftMs, Double tpotMs, Double e2eMs) {

    public static final SloTargets NONE = new SloTargets(null, null, null);

    public SloTargets {
        requirePositive("--slo-ttft-ms", ttftMs);
        requirePositive("--slo-tpot-ms", tpotMs);
        requirePositive("--slo-e2e-ms", e2eMs);
    }

    /** Whether any target is set; goodput is only reported then. */
    public boolean any() {
        return ttftMs != null || tpotMs != null || e2eMs != null;
    }

    /**
     * Whether the outcome meets every set target. A request without a first-token time cannot meet a TTFT
     * target. A request with fewer than two output tokens has no TPOT and meets the TPOT target vacuously,
     * as vLLM treats it (TPOT 0).
     */
    public boolean metBy(RequestOutcome outcome) {
        if (!outcome.succeeded()) {
            return false;
        }
        if (ttftMs != null && (!outcome.hasTtft() || outcome.ttftNanos() > ttftMs * 1e6)) {
            return false;
        }
        if (tpotMs != null && outcome.hasTpot() && outcome.tpotNanos() > tpotMs * 1e6) {
            return false;
        }
        return e2eMs == null || outcome.e2eNanos() <= e2eMs * 1e6;
    }

    private static void requirePositive(String flag, Double value) {
        if (value != null && !(value > 0 && Double.isFinite(value))) {
            throw new IllegalArgumentException(flag + " must be a finite number of milliseconds > 0, got " + value);
        }
    }
}
