package io.stepstream.loadtest;

import java.util.Arrays;
import java.util.Locale;

/**
 * Collects the client-side timeline of one streaming call and turns it into a {@link RequestOutcome}.
 * Callers pass the clock reading of each event, so the arithmetic is testable without a clock or threads.
 *
 * <p>TTFT is taken at the first token event whose text is non-empty: a tokenizer may hold back a partial
 * character, and the user sees nothing before that. If no token event carried text but the final event
 * releases held-back text, that release is the first token. ITL gaps are measured between successive
 * token events from the first one with text on (each event is one decoded token); the final event is not a
 * token and adds no gap.
 *
 * <p>gRPC delivers the callbacks of one call serially, so an instance needs no locking.
 */
final class RequestTimeline {

    private final long sentNanos;
    private long firstTokenNanos = -1;
    private long lastTokenNanos = -1;
    private long[] gaps = new long[16];
    private int gapCount;
    private boolean finalSeen;
    private String finishReason;
    private int promptTokens;
    private int outputTokens;
    private RequestOutcome outcome;

    RequestTimeline(long sentNanos) {
        this.sentNanos = sentNanos;
    }

    void onToken(long nowNanos, String text) {
        if (finalSeen || outcome != null) {
            return; // nothing may follow the final event; ignore rather than corrupt the timing
        }
        if (firstTokenNanos < 0) {
            if (text.isEmpty()) {
                return;
            }
            firstTokenNanos = nowNanos;
        } else {
            if (gapCount == gaps.length) {
                gaps = Arrays.copyOf(gaps, gaps.length * 2);
            }
            gaps[gapCount++] = nowNanos - lastTokenNanos;
        }
        lastTokenNanos = nowNanos;
    }

    void onFinal(long nowNanos, String finishReason, int promptTokens, int outputTokens, String text) {
        if (finalSeen || outcome != null) {
            return;
        }
        finalSeen = true;
        this.finishReason = finishReason;
        this.promptTokens = promptTokens;
        this.outputTokens = outputTokens;
        if (firstTokenNanos < 0 && !text.isEmpty()) {
            firstTokenNanos = nowNanos;
        }
    }

    /** The server closed the stream normally. */
    RequestOutcome onCompleted(long nowNanos) {
        if (outcome != null) {
            return outcome;
        }
        long e2e = nowNanos - sentNanos;
        if (!finalSeen) {
            outcome = RequestOutcome.failed("MISSING_FINAL_EVENT", "the stream ended without a final event", null, e2e);
        } else if (!"stop".equals(finishReason) && !"length".equals(finishReason)) {
            // "error" or "cancelled" from the server: the client asked for neither, so the request failed.
            String reason = finishReason.isEmpty() ? "UNSET" : finishReason.toUpperCase(Locale.ROOT);
            outcome = RequestOutcome.failed("FINISH_REASON_" + reason,
                    "the server finished the request with reason '" + finishReason + "'", finishReason, e2e);
        } else {
            long ttft = firstTokenNanos < 0 ? RequestOutcome.NO_TTFT : firstTokenNanos - sentNanos;
            outcome = new RequestOutcome(null, null, finishReason, e2e, ttft,
                    Arrays.copyOf(gaps, gapCount), promptTokens, outputTokens);
        }
        return outcome;
    }

    /** The call failed with a gRPC status (or the harness could not start it). */
    RequestOutcome onError(long nowNanos, String statusCode, String message) {
        if (outcome == null) {
            outcome = RequestOutcome.failed(statusCode, message, finishReason, nowNanos - sentNanos);
        }
        return outcome;
    }
}
