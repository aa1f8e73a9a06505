package io.stepstream.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * summary.cl's row reduction on the test device against a plain float64 reference on fresh random rows: normal
 * rows, rows of small integers (exact ties in the max, several ids holding it), rows with a huge spread (most
 * terms underflow to 0), rows whose max is the last id; vocabularies that are not a multiple of the work-group
 * and smaller than it; one group a row and rows split over several groups (row_summary_split). The argmax must be
 * bitwise the reference's (lowest id of the max), the confidence within 1e-12 relative (the device's double exp and
 * summation order are its own).
 */
class RowSummaryKernelTest {
    /** Lowest id of the largest logit and 1 / sum exp((double) l_i - (double) l_max), summed in order. */
    private static double[] reference(float[] logits, int row, int vocab) {
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (logits[row * vocab + i] > logits[row * vocab + best]) {
                best = i;
            }
        }
        double max = logits[row * vocab + best];
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += Math.exp((double) logits[row * vocab + i] - max);
        }
        return new double[]{best, 1.0 / sum};
    }

    private static float[] rows(SplittableRandom r, int rows, int vocab) {
        float[] l = new float[rows * vocab];
        for (int row = 0; row < rows; row++) {
            int kind = row % 4;
            for (int i = 0; i < vocab; i++) {
                l[row * vocab + i] = switch (kind) {
                    case 0 -> (float) (3 * r.nextGaussian());
                    case 1 -> (float) r.nextInt(4); // the max (3) held by many ids
                    case 2 -> (float) ((r.nextDouble() - 0.5) * 4000); // exp underflows for most terms
                    default -> (float) (r.nextGaussian() - 5);
                };
            }
            if (kind == 3) {
                l[row * vocab + vocab - 1] = 30f; // the max at the last id
            }
        }
        return l;
    }

    private static ClDevice clDevice() {
        OpenCLDevice d = OpenClTestSupport.device();
        return ClRuntime.byHandle(d.getDeviceId(), d.getName());
    }

    @Test
    void autoSplitsOnlyFewRowsOnGpus() {
        ClDevice device = clDevice();
        try (ClQueue queue = new ClQueue(device)) {
            RowSummaryKernel auto = new RowSummaryKernel(queue, 256, 0);
            if (device.kind() == ClDevice.Kind.CPU) {
                assertEquals(1, auto.splitsFor(1, 32000), "CPU devices keep one group a row");
            } else {
                assertTrue(auto.splitsFor(1, 32000) > 1);
                assertEquals(1, auto.splitsFor(device.computeUnits(), 32000));
            }
            assertEquals(1, new RowSummaryKernel(queue, 256, 9).splitsFor(1, 300), "a 300-id row has one 256-item group");
            assertEquals(9, new RowSummaryKernel(queue, 256, 9).splitsFor(1, 32000));
        }
    }

    @Test
    void theDeviceReportsDoublePrecision() {
        // PoCL and the H200 both do; without it the model makes summaries on the host (see DeviceCanvases).
        assertTrue(RowSummaryKernel.supports(clDevice()), ClRuntime.extensions(clDevice()));
    }

    @Test
    void summariesEqualTheFloat64Reference() {
        SplittableRandom r = new SplittableRandom(11);
        ClDevice device = clDevice();
        int deviceWg = RowSummaryKernel.workGroupFor(device);
        try (ClQueue queue = new ClQueue(device)) {
            for (int wg : new int[]{deviceWg, 256, 1}) {
                if (wg > device.maxWorkGroupSize()) {
                    continue;
                }
              // 1: one group a row (row_summary); 3, 7, 64: each row split over groups merged by the last one
              // (row_summary_split, capped where the vocabulary is small), twice per buffer: the counters reset.
              for (int splits : new int[]{1, 3, 7, 64}) {
                RowSummaryKernel kernel = new RowSummaryKernel(queue, wg, splits);
                assertEquals(wg, kernel.workGroup());
                for (int vocab : new int[]{32000, 1000 + 7, 257, 5}) {
                    int rows = 9;
                    float[] logits = rows(r, rows, vocab);
                    MemorySegment buffer = queue.createBuffer((long) logits.length * Float.BYTES);
                    queue.writeBlocking(buffer, MemorySegment.ofArray(logits), (long) logits.length * Float.BYTES);
                    int[] ids = new int[rows + 1];
                    double[] conf = new double[rows + 1];
                    // All rows, then a prefix: the kernel reads only the rows asked for and lays them out by count.
                    for (int asked : new int[]{rows, 3, rows}) {
                        java.util.Arrays.fill(ids, -1);
                        kernel.summarize(buffer, asked, vocab, MemorySegment.NULL, ids, conf);
                        for (int row = 0; row < asked; row++) {
                            double[] want = reference(logits, row, vocab);
                            String where = "wg " + wg + ", splits " + kernel.splitsFor(asked, vocab) + ", vocab " + vocab + ", row " + row + " of " + asked;
                            assertEquals((int) want[0], ids[row], where);
                            double rel = Math.abs(conf[row] - want[1]) / want[1];
                            assertTrue(rel <= 1e-12, where + ": confidence " + conf[row] + " vs " + want[1]
                                    + ", relative error " + rel);
                        }
                        assertEquals(-1, ids[asked], "nothing written past the rows asked for");
                    }
                    queue.releaseBuffer(buffer);
                }
              }
            }
        }
    }
}
