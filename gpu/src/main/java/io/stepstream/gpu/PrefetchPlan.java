package io.stepstream.gpu;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Which lines of the weights after it a matvec asks the L2 cache for ({@link L2Prefetch}): the first {@code budget}
 * bytes of the upcoming weight stream, in the order the next matmuls' groups read it.
 *
 * <p>A matmul reads its weights as phases: the segments of a pass one after another (wq, then wk, then wv), each
 * a phase of one stream; W1 and W3, whose rows the FFN pass interleaves, one phase of two streams read side by side
 * (x bytes of the phase are x / 2 of each). Ranges are whole lines inside their buffer (a partial last line of a
 * buffer is left out, so no prefetch touches an address past it).
 */
final class PrefetchPlan {
    private PrefetchPlan() {
    }

    /** Bytes {@code offset .. offset + bytes - 1} of a device buffer of {@code bufferBytes}, read in order. */
    record Stream(MemorySegment buffer, long bufferBytes, long offset, long bytes) {
        Stream {
            if (offset < 0 || bytes < 0 || offset + bytes > bufferBytes) {
                throw new IllegalArgumentException("stream of " + bytes + " bytes at " + offset + " is outside a buffer"
                        + " of " + bufferBytes);
            }
        }
    }

    /** Streams read side by side at the same rate. */
    record Phase(List<Stream> streams) {
        Phase {
            streams = List.copyOf(streams);
            if (streams.isEmpty()) {
                throw new IllegalArgumentException("a phase reads at least one stream");
            }
        }
    }

    /** Lines {@code firstLine .. firstLine + lines - 1} of {@code buffer}. */
    record Range(MemorySegment buffer, int firstLine, int lines) {
    }

    /**
     * The ranges (at most {@code maxRanges}) that cover the first {@code budget} bytes of {@code upcoming}, in
     * lines of {@code lineBytes}.
     */
    static List<Range> plan(List<Phase> upcoming, long budget, int lineBytes, int maxRanges) {
        List<Range> out = new ArrayList<>(maxRanges);
        long left = budget;
        for (Phase phase : upcoming) {
            int m = phase.streams().size();
            if (left < m || out.size() + m > maxRanges) {
                break;
            }
            long each = Long.MAX_VALUE;
            for (Stream s : phase.streams()) {
                each = Math.min(each, s.bytes());
            }
            each = Math.min(each, left / m);
            for (Stream s : phase.streams()) {
                long first = s.offset() / lineBytes;
                long end = Math.min(Math.ceilDiv(s.offset() + each, lineBytes), s.bufferBytes() / lineBytes);
                if (end > first) {
                    if (end > Integer.MAX_VALUE) {
                        throw new IllegalArgumentException("prefetch line " + end + " is past an int");
                    }
                    out.add(new Range(s.buffer(), (int) first, (int) (end - first)));
                }
            }
            left -= each * m;
        }
        return out;
    }
}
