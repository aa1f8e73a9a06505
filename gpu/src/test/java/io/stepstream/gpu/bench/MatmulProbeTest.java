package io.stepstream.gpu.bench;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The probe runs end to end on the test device on small shapes; no timing is asserted. */
class MatmulProbeTest {
    private static final String SELECTOR = System.getProperty("stepstream.test.device", "auto");

    @Test
    void probesEachVariantNextToAparapisPassWithTheSameResult() {
        List<MatmulProbe.Row> rows = MatmulProbe.run(MatmulProbe.Options.parse(new String[]{"--device", SELECTOR,
                "--shapes", "130x128,64x192", "--tokens", "1,9", "--dtype", "f32,q8_0", "--variants",
                "default;tm=8,tn=4,tk=8,rm=2,rn=2,mv_wg=64,mv_lpr=8", "--reps", "2", "--warmup", "1", "--copy-mib",
                "4"}));
        // 2 shapes x 2 dtypes x 2 token counts x (aparapi + 2 variants)
        assertEquals(24, rows.size());
        for (MatmulProbe.Row r : rows) {
            assertTrue(r.ms() > 0 && r.weightGBps() > 0 && r.gflops() > 0 && r.enqueueUs() > 0, r.toString());
            if (!r.kernel().equals("aparapi")) {
                assertTrue(r.relDiff() <= 1e-4, "hand vs aparapi: " + r);
                assertTrue(r.kernel().startsWith(r.tokens() == 1 ? "mv_t1 " : "mm "), r.toString());
            }
        }
        // A forced tier: one and three tokens on the 8-token matvec, same results; and with the fused norm prologue.
        rows = MatmulProbe.run(MatmulProbe.Options.parse(new String[]{"--device", SELECTOR, "--shapes", "130x128",
                "--tokens", "1,3", "--dtype", "f32", "--mv-tier", "8", "--fuse-norm", "off,on", "--reps", "2",
                "--warmup", "1", "--copy-mib", "4"}));
        assertEquals(List.of("aparapi", "mv_t8", "mv_t8+norm", "aparapi", "mv_t8", "mv_t8+norm"),
                rows.stream().map(r -> r.kernel().split(" ")[0]).toList());
        for (MatmulProbe.Row r : rows) {
            if (r.kernel().startsWith("mv_t8 ")) {
                assertTrue(r.relDiff() <= 1e-4, "hand vs aparapi: " + r);
            }
            assertTrue(r.ms() > 0, r.toString());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MatmulProbe.Options.parse(new String[]{"--shapes", "12y4"}));
        assertTrue(e.getMessage().contains("ROWSxCOLS"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> MatmulProbe.Options.parse(new String[]{"--variants", "rm=3"}));
        assertTrue(e.getMessage().contains("rm must be even"), e.getMessage());
    }
}
