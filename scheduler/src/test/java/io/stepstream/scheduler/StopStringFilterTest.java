package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The incremental stop-string filter against a plain whole-text reference, on random texts and splits. */
class StopStringFilterTest {

    /**
     * Reference: scanning the whole text left to right, the start of the first stop string to end (the longest
     * of those ending at the same place), or -1.
     */
    private static int earliestStop(String text, List<String> stops) {
        for (int end = 1; end <= text.length(); end++) {
            int best = -1;
            for (String s : stops) {
                if (end >= s.length() && text.startsWith(s, end - s.length())) {
                    best = best < 0 ? end - s.length() : Math.min(best, end - s.length());
                }
            }
            if (best >= 0) {
                return best;
            }
        }
        return -1;
    }

    /** Reference: the longest suffix of text that is a proper prefix of some stop. */
    private static int mayStillMatch(String text, List<String> stops) {
        int best = 0;
        for (String s : stops) {
            for (int k = 1; k < s.length() && k <= text.length(); k++) {
                if (text.endsWith(s.substring(0, k))) {
                    best = Math.max(best, k);
                }
            }
        }
        return best;
    }

    private static String randomText(Random r, int length) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < length; i++) {
            b.append("abc".charAt(r.nextInt(3)));
        }
        return b.toString();
    }

    @Test
    void matchesTheWholeTextReferenceOnRandomInputs() {
        Random r = new Random(1234);
        for (int trial = 0; trial < 3000; trial++) {
            List<String> stops = new ArrayList<>();
            for (int i = 0, n = 1 + r.nextInt(3); i < n; i++) {
                stops.add(randomText(r, 1 + r.nextInt(4)));
            }
            String text = randomText(r, r.nextInt(25));
            List<String> pieces = new ArrayList<>();
            for (int at = 0; at < text.length(); ) {
                int n = Math.min(text.length() - at, r.nextInt(4)); // empty pieces too (incomplete characters)
                pieces.add(text.substring(at, at + n));
                at += n;
            }
            StopStringFilter filter = new StopStringFilter(stops);
            StringBuilder released = new StringBuilder();
            StringBuilder seen = new StringBuilder();
            boolean stopped = false;
            for (String piece : pieces) {
                seen.append(piece);
                StopStringFilter.Release rel = filter.push(piece);
                released.append(rel.text());
                if (rel.stopped()) {
                    stopped = true;
                    break;
                }
                // Everything that can no longer start a stop string is out, and nothing more.
                assertEquals(seen.length() - mayStillMatch(seen.toString(), stops), released.length(),
                        "seen '" + seen + "' stops " + stops);
                assertEquals(seen.substring(0, released.length()), released.toString());
            }
            if (!stopped) {
                StopStringFilter.Release rest = filter.finish("");
                released.append(rest.text());
                stopped = rest.stopped();
            }
            int cut = earliestStop(text, stops);
            String what = "text '" + text + "' stops " + stops + " pieces " + pieces;
            assertEquals(cut >= 0, stopped, what);
            assertEquals(cut >= 0 ? text.substring(0, cut) : text, released.toString(), what);
        }
    }

    @Test
    void noStopStringsPassEverythingThrough() {
        StopStringFilter f = new StopStringFilter(List.of());
        assertEquals("abc", f.push("abc").text());
        assertFalse(f.push("").stopped());
        assertTrue(f.finish("").text().isEmpty());
    }
}
