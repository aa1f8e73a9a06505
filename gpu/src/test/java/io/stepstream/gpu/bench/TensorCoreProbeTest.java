package io.stepstream.gpu.bench;

import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The probe's one-tile check on the test device (PoCL: the emulation only; the PTX instruction is device-only). */
class TensorCoreProbeTest {
    private static final String SELECTOR = System.getProperty("stepstream.test.device", "auto");

    /** Runs the probe on the test device with {@code args}, asserts it reports OK, returns what it printed. */
    private static String runOk(List<TensorCoreProbe.Row> rows, String... args) {
        String[] all = new String[args.length + 2];
        all[0] = "--device";
        all[1] = SELECTOR;
        System.arraycopy(args, 0, all, 2, args.length);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        boolean ok = TensorCoreProbe.run(TensorCoreProbe.Options.parse(all),
                new PrintStream(bytes, true, StandardCharsets.UTF_8), rows);
        String out = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(ok, out);
        return out;
    }

    @Test
    void emulatedTileMatchesTheFloat64ReferenceInEveryElement() {
        try (ClQueue q = new ClQueue(ClRuntime.select(SELECTOR))) {
            TensorCoreProbe.TileResult r = TensorCoreProbe.tile(q, 0);
            assertTrue(r.built(), r.buildError());
            assertEquals(java.util.List.of(), r.mismatches());
        }
    }

    @Test
    void emulatedTf32ChecksPass() {
        try (ClQueue q = new ClQueue(ClRuntime.select(SELECTOR))) {
            List<TensorCoreProbe.TileResult> rs = TensorCoreProbe.tf32(q, 0);
            assertEquals(3, rs.size());
            for (TensorCoreProbe.TileResult r : rs) {
                assertTrue(r.built(), r.buildError());
                assertEquals(List.of(), r.mismatches(), r.variant() + r.note());
            }
            // the split's error is far below one tf32 mma's on the same inputs (printed in the note)
            assertTrue(rs.get(1).note().contains("one tf32 mma"), rs.get(1).note());
        }
    }

    @Test
    void probePrintsAResultLineAndRejectsBadOptions() {
        String out = runOk(new ArrayList<>(), "--ptx", "off", "--full", "false");
        assertTrue(out.contains("(a) tile emulation: all 128 elements match") && out.contains("RESULT: OK"), out);
        assertTrue(out.contains("(a) tf32 tile emulation: all 128 elements match")
                && out.contains("(a) tf32 3x split emulation: all 128 elements match")
                && out.contains("(a) tf32 rounding emulation: all 320 elements match"), out);
        assertFalse(out.contains("ptx mma.sync"), out);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorCoreProbe.Options.parse(new String[]{"--ptx", "maybe"}));
        assertTrue(e.getMessage().contains("--ptx"), e.getMessage());
    }

    @Test
    void fullKernelOnEmulatedTensorCoresMatchesTheReferenceBesideMm() {
        List<TensorCoreProbe.Row> rows = new ArrayList<>();
        String out = runOk(rows, "--ptx", "off",
                "--shapes", "130x128,8200x64", "--tokens", "9,70", "--mode", "emulate", "--tiles",
                "default;tn=16,tk=64", "--reps", "1", "--warmup", "0", "--sample-rows", "40");
        // 2 shapes x 2 token counts x (mm + 2 mmt variants)
        assertEquals(12, rows.size(), out);
        for (TensorCoreProbe.Row r : rows) {
            assertTrue(r.ms() > 0 && r.tflops() > 0 && r.weightGBps() > 0, r.toString());
            if (r.kernel().startsWith("emulated")) {
                assertTrue(r.check().startsWith("ok"), r.toString());
            } else {
                assertTrue(r.kernel().startsWith("mm "), r.toString());
            }
        }
        // the default tiers: 9 tokens on the 16-token tile, 70 on the 64-token one; the single tile for both
        assertTrue(out.contains("9 emulated mmt64x16k64 (tiers)") && out.contains("70 emulated mmt64x64k64 (tiers)")
                && out.contains("70 emulated mmt64x16k64  "), out);
        // sampled rows: both edge tiles and random others; all rows when the sample would cover them
        int[] sample = TensorCoreProbe.sampleRows(1000, 10);
        assertEquals(138, sample.length);
        assertEquals(0, sample[0]);
        assertEquals(999, sample[sample.length - 1]);
        assertEquals(130, TensorCoreProbe.sampleRows(130, 40).length);
    }

    @Test
    void q8WeightsOnEmulatedTensorCoresMatchTheReferenceBesideMm() {
        List<TensorCoreProbe.Row> rows = new ArrayList<>();
        // 192 columns: 6 Q8_0 blocks in 3 slices of 64; 130 rows: a partial third row tile
        String out = runOk(rows, "--ptx", "off",
                "--shapes", "130x192,70x64", "--tokens", "9,33", "--mode", "emulate", "--tiles", "default",
                "--dtype", "q8_0", "--reps", "1", "--warmup", "0", "--sample-rows", "0");
        // 2 shapes x 2 token counts x (mm + 1 mmt variant)
        assertEquals(8, rows.size(), out);
        for (TensorCoreProbe.Row r : rows) {
            assertTrue(r.shape().endsWith(" q8_0"), r.toString());
            assertTrue(r.ms() > 0 && r.weightGBps() > 0, r.toString());
            if (r.kernel().startsWith("emulated mmt64x")) {
                assertTrue(r.check().startsWith("ok"), r.toString());
            } else {
                assertTrue(r.kernel().startsWith("mm "), r.toString());
            }
        }
        assertEquals(4, rows.stream().filter(r -> r.kernel().startsWith("emulated")).count(), out);
        assertEquals(List.of(TensorType.F16, TensorType.Q8_0), TensorCoreProbe.Options.parseDtypes("both"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorCoreProbe.Options.parse(new String[]{"--dtype", "int4"}));
        assertTrue(e.getMessage().contains("--dtype") && e.getMessage().contains("int4"), e.getMessage());
    }

    @Test
    void f32WeightsOnEmulated3xTf32MatchTheReferenceBesideMm() {
        List<TensorCoreProbe.Row> rows = new ArrayList<>();
        // 130 rows: a partial third row tile; 9 and 33 tokens: partial token tiles
        String out = runOk(rows, "--ptx", "off",
                "--shapes", "130x192", "--tokens", "9,33", "--mode", "emulate", "--tiles", "default",
                "--dtype", "f32", "--reps", "1", "--warmup", "0", "--sample-rows", "0");
        assertEquals(4, rows.size(), out); // 2 token counts x (mm + mmt)
        for (TensorCoreProbe.Row r : rows) {
            assertTrue(r.shape().endsWith(" f32"), r.toString());
            // mm's error in the same measure as mmt's: both within f32 rounding of the float64 reference
            assertTrue(r.check().startsWith(r.kernel().startsWith("emulated") ? "ok, max err" : "fp32: ok, max err"),
                    r.toString());
        }
        assertEquals(List.of(TensorType.F16, TensorType.Q8_0, TensorType.F32),
                TensorCoreProbe.Options.parseDtypes("all"));
    }

    @Test
    void packPutsTheLowerKInTheLow16Bits() {
        assertEquals(0x4000_3C00, TensorCoreProbe.pack(1.0f, 2.0f)); // f16 1.0 = 0x3C00, 2.0 = 0x4000
    }
}
