package io.stepstream.scheduler;

import java.util.List;

/**
 * Releases generated text piece by piece, holding back any tail that could still grow into a stop string, and
 * cutting the text before the first stop string to be complete once one appears.
 *
 * <p>Invariant: the held-back text is the longest suffix of everything seen that is a proper prefix of some stop
 * string, so a stop string can never start inside text already released.
 */
final class StopStringFilter {
    /** Text that may be streamed now; {@code stopped} when a stop string ended the text. */
    record Release(String text, boolean stopped) {
    }

    private final List<String> stops;
    private final int longestStop;
    private final StringBuilder held = new StringBuilder();

    StopStringFilter(List<String> stops) {
        this.stops = List.copyOf(stops);
        this.longestStop = stops.stream().mapToInt(String::length).max().orElse(0);
    }

    Release push(String piece) {
        if (stops.isEmpty()) {
            return new Release(piece, false);
        }
        held.append(piece);
        int stopAt = earliestStop();
        if (stopAt >= 0) {
            String before = held.substring(0, stopAt);
            held.setLength(0);
            return new Release(before, true);
        }
        int keep = longestSuffixThatStartsAStop();
        String released = held.substring(0, held.length() - keep);
        held.delete(0, held.length() - keep);
        return new Release(released, false);
    }

    /** The end of the text: everything held back plus {@code tail}, cut before a stop string if one appears. */
    Release finish(String tail) {
        held.append(tail);
        int stopAt = earliestStop();
        String rest = stopAt >= 0 ? held.substring(0, stopAt) : held.toString();
        held.setLength(0);
        return new Release(rest, stopAt >= 0);
    }

    /**
     * Where the text is cut: the start of the stop string that is complete soonest (the smallest end), the longer
     * one on a tie. That is what a reader watching the text grow sees first, however the text is split in pieces.
     */
    private int earliestStop() {
        int cut = -1;
        int cutEnd = Integer.MAX_VALUE;
        for (String stop : stops) {
            int at = held.indexOf(stop);
            if (at < 0) {
                continue;
            }
            int end = at + stop.length();
            if (end < cutEnd || end == cutEnd && at < cut) {
                cut = at;
                cutEnd = end;
            }
        }
        return cut;
    }

    private int longestSuffixThatStartsAStop() {
        for (int k = Math.min(held.length(), longestStop - 1); k > 0; k--) {
            int from = held.length() - k;
            for (String stop : stops) {
                if (stop.length() > k && regionEquals(stop, from, k)) {
                    return k;
                }
            }
        }
        return 0;
    }

    private boolean regionEquals(String stop, int from, int k) {
        for (int i = 0; i < k; i++) {
            if (held.charAt(from + i) != stop.charAt(i)) {
                return false;
            }
        }
        return true;
    }
}
