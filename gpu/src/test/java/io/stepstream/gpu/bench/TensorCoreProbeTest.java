package io.stepstream.gpu.bench;

import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The probe's one-tile check on the test device (PoCL: the emulation only; the PTX instruction is device-only). */
class TensorCoreProbeTest {
    private static final String SELECTOR = System.getProperty("stepstream.test.device", "auto");

    @Test
    void emulatedTileMatchesTheFloat64ReferenceInEveryElement() {
        try (ClQueue q = new ClQueue(ClRuntime.select(SELECTOR))) {
            TensorCoreProbe.TileResult r = TensorCoreProbe.tile(q, 0);
            assertTrue(r.built(), r.buildError());
            assertEquals(java.util.List.of(), r.mismatches());
        }
    }

    @Test
    void probePrintsAResultLineAndRejectsBadOptions() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        boolean ok = TensorCoreProbe.run(TensorCoreProbe.Options.parse(new String[]{"--device", SELECTOR, "--ptx",
                "off"}), new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(ok, out);
        assertTrue(out.contains("(a) tile emulation: all 128 elements match") && out.contains("RESULT: OK"), out);
        assertFalse(out.contains("ptx mma.sync"), out);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorCoreProbe.Options.parse(new String[]{"--ptx", "maybe"}));
        assertTrue(e.getMessage().contains("--ptx"), e.getMessage());
    }

    @Test
    void packPutsTheLowerKInTheLow16Bits() {
        assertEquals(0x4000_3C00, TensorCoreProbe.pack(1.0f, 2.0f)); // f16 1.0 = 0x3C00, 2.0 = 0x4000
    }
}
