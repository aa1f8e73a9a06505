package io.stepstream.loadtest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Per-request metric arithmetic on hand-made timelines (clock readings passed in; no threads). */
class RequestTimelineTest {

    private static final long MS = 1_000_000;

    @Test
    void ttftSkipsHeldBackTokensAndItlTpotE2eFollowTheDefinitions() {
        long sent = 5_000 * MS; // an arbitrary clock origin: only differences matter
        RequestTimeline t = new RequestTimeline(sent);
        t.onToken(sent + 50 * MS, "");       // a held-back partial character: nothing visible yet
        t.onToken(sent + 80 * MS, "Once");   // first visible token
        t.onToken(sent + 110 * MS, " upon");
        t.onToken(sent + 150 * MS, "");      // held back again after the first: still a decoded token
        t.onToken(sent + 190 * MS, " a");
        t.onFinal(sent + 200 * MS, "length", 7, 5, " time");
        RequestOutcome o = t.onCompleted(sent + 205 * MS);

        assertTrue(o.succeeded());
        assertEquals("length", o.finishReason());
        assertEquals(80 * MS, o.ttftNanos());
        assertArrayEquals(new long[] {30 * MS, 40 * MS, 40 * MS}, o.interTokenNanos());
        assertEquals(205 * MS, o.e2eNanos());
        assertEquals(7, o.promptTokens());
        assertEquals(5, o.outputTokens());
        assertEquals((205 - 80) * MS / 4.0, o.tpotNanos(), 1e-9);
    }

    @Test
    void randomTimelinesAgreeWithAPlainRecomputation() {
        long seed = System.nanoTime();
        SplittableRandom random = new SplittableRandom(seed);
        for (int trial = 0; trial < 200; trial++) {
            long sent = random.nextLong(1L << 40);
            int tokens = 1 + random.nextInt(40);
            long[] at = new long[tokens];
            boolean[] visible = new boolean[tokens];
            long now = sent;
            RequestTimeline t = new RequestTimeline(sent);
            for (int i = 0; i < tokens; i++) {
                now += random.nextLong(1, 50 * MS);
                at[i] = now;
                visible[i] = random.nextInt(4) != 0;
                t.onToken(now, visible[i] ? "x" : "");
            }
            long end = now + random.nextLong(0, 5 * MS);
            t.onFinal(end, "stop", 3, tokens, "");
            RequestOutcome o = t.onCompleted(end);

            int first = -1;
            for (int i = 0; i < tokens && first < 0; i++) {
                if (visible[i]) {
                    first = i;
                }
            }
            String why = "seed " + seed + " trial " + trial;
            assertEquals(end - sent, o.e2eNanos(), why);
            if (first < 0) {
                assertFalse(o.hasTtft(), why);
                assertEquals(0, o.interTokenNanos().length, why);
                assertFalse(o.hasTpot(), why);
                continue;
            }
            assertEquals(at[first] - sent, o.ttftNanos(), why);
            long[] gaps = new long[tokens - 1 - first];
            for (int i = first + 1; i < tokens; i++) {
                gaps[i - first - 1] = at[i] - at[i - 1];
            }
            assertArrayEquals(gaps, o.interTokenNanos(), why);
            assertEquals(tokens >= 2, o.hasTpot(), why);
            if (tokens >= 2) {
                assertEquals((double) (end - at[first]) / (tokens - 1), o.tpotNanos(), 1e-6, why);
            }
        }
    }

    @Test
    void textReleasedOnlyByTheFinalEventIsTheFirstToken() {
        RequestTimeline t = new RequestTimeline(0);
        t.onToken(10 * MS, "");
        t.onToken(20 * MS, "");
        t.onFinal(30 * MS, "stop", 2, 2, "é");
        RequestOutcome o = t.onCompleted(31 * MS);
        assertEquals(30 * MS, o.ttftNanos());
        assertEquals(0, o.interTokenNanos().length);
        assertEquals((31 - 30) * MS, o.tpotNanos(), 1e-9);
    }

    @Test
    void aSingleTokenHasNoTpot() {
        RequestTimeline t = new RequestTimeline(0);
        t.onToken(10 * MS, "Hi");
        t.onFinal(11 * MS, "length", 1, 1, "");
        RequestOutcome o = t.onCompleted(12 * MS);
        assertTrue(o.succeeded());
        assertFalse(o.hasTpot());
        assertThrows(IllegalStateException.class, o::tpotNanos);
    }

    @Test
    void aStreamWithoutAFinalEventFails() {
        RequestTimeline t = new RequestTimeline(0);
        t.onToken(10 * MS, "Hi");
        RequestOutcome o = t.onCompleted(20 * MS);
        assertEquals("MISSING_FINAL_EVENT", o.failure());
        assertEquals(20 * MS, o.e2eNanos());
    }

    @Test
    void aServerSideErrorOrCancelFinishFails() {
        RequestTimeline error = new RequestTimeline(0);
        error.onFinal(5 * MS, "error", 1, 0, "");
        assertEquals("FINISH_REASON_ERROR", error.onCompleted(6 * MS).failure());
        RequestTimeline cancelled = new RequestTimeline(0);
        cancelled.onFinal(5 * MS, "cancelled", 1, 0, "");
        assertEquals("FINISH_REASON_CANCELLED", cancelled.onCompleted(6 * MS).failure());
    }

    @Test
    void aGrpcErrorKeepsItsStatusAndTheFirstOutcomeWins() {
        RequestTimeline t = new RequestTimeline(100);
        t.onToken(200, "a");
        RequestOutcome o = t.onError(400, "INVALID_ARGUMENT", "prompt: too long");
        assertEquals("INVALID_ARGUMENT", o.failure());
        assertEquals("prompt: too long", o.failureMessage());
        assertEquals(300, o.e2eNanos());
        assertFalse(o.succeeded());
        assertSame(o, t.onCompleted(500));
    }

    @Test
    void eventsAfterTheFinalEventAreIgnored() {
        RequestTimeline t = new RequestTimeline(0);
        t.onToken(10 * MS, "a");
        t.onToken(20 * MS, "b");
        t.onFinal(30 * MS, "stop", 1, 2, "");
        t.onToken(40 * MS, "late");
        t.onFinal(50 * MS, "length", 9, 9, "");
        RequestOutcome o = t.onCompleted(60 * MS);
        assertArrayEquals(new long[] {10 * MS}, o.interTokenNanos());
        assertEquals("stop", o.finishReason());
        assertEquals(2, o.outputTokens());
        assertNull(o.failure());
    }
}
