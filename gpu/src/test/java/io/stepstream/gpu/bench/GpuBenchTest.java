package io.stepstream.gpu.bench;

import io.stepstream.gpu.TensorCores;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The benchmark runs end to end on the test device with stories260k for a few steps; no timing is asserted. */
class GpuBenchTest {
    private static final String SELECTOR = System.getProperty("stepstream.test.device", "auto");

    @Test
    void opencl260kWritesRowsAndChecksPerWeightType(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("bench.json");
        Path csv = dir.resolve("bench.csv");
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--backend", "opencl", "--device", SELECTOR, "--dtype", "f32,q8_0", "--batches", "1,3", "--steps", "3",
                "--prompt", "5", "--warmup", "1", "--copy-mib", "8", "--out", json.toString(), "--csv",
                csv.toString()}));
        // Both dispatches by default, side by side: per dtype, aparapi's batches then direct's.
        assertEquals(8, rows.size());
        for (GpuBench.Row r : rows) {
            assertTrue(r.tokensPerSecond() > 0 && r.msPerStep() > 0 && r.fractionOfCopy() > 0, r.toString());
            assertEquals(3 + 9 * 5, r.passesPerStep());
            assertTrue(r.executeMsPerStep() <= r.msPerStep(), r.toString());
            boolean direct = r.dispatch().equals("direct");
            assertEquals(direct, !Double.isNaN(r.spanMsPerStep()), r.toString());
            if (direct) {
                assertTrue(r.kernelMsPerStep() > 0 && r.spanMsPerStep() > 0, r.toString());
                // The per-op split covers the step's ops and adds up to the profiled kernel time.
                // (attention: the tiled kernel, which takes the scores, softmax and attn-out ops' places)
                assertTrue(r.opMsPerStep().keySet().containsAll(List.of("embed", "qkv", "attention",
                        "wo", "w1w3", "w2", "logits")), r.opMsPerStep().toString());
                // The norms fuse into the matvecs after them (fuseNorm=auto, the default: at one token): their own
                // ops then take no time and have no entry; at 3 tokens (or with fuseNorm=off) they run.
                String mode = System.getProperty("stepstream.opencl.fuseNorm", "auto");
                boolean fused = mode.equals("on") || mode.equals("auto") && r.batch() == 1;
                assertEquals(!fused, r.opMsPerStep().containsKey("rmsnorm"), r.opMsPerStep().toString());
                assertEquals(!fused, r.opMsPerStep().containsKey("final-norm"), r.opMsPerStep().toString());
                double sum = r.opMsPerStep().values().stream().mapToDouble(Double::doubleValue).sum();
                assertEquals(r.kernelMsPerStep(), sum, 1e-6 + 1e-9 * sum, r.toString());
            } else {
                assertTrue(r.opMsPerStep().isEmpty(), r.toString());
            }
        }
        assertEquals(List.of("aparapi", "aparapi", "direct", "direct"),
                rows.subList(0, 4).stream().map(GpuBench.Row::dispatch).toList());
        assertTrue(rows.get(4).weightBytesPerStep() < rows.get(0).weightBytesPerStep() / 3, "q8_0 is ~1.1 bytes/weight");
        String text = Files.readString(json);
        assertTrue(text.contains("\"dtype\": \"q8_0\", \"dispatch\": \"direct\", \"matmul\": \"hand\", \"relativeError\""),
                text);
        // All four checks (two dtypes, two dispatches) within float tolerance and the same greedy token.
        assertEquals(4, text.split("\"sameArgmax\": true").length - 1, text);
        assertTrue(text.contains("\"opMsPerStep\": {\"embed\": "), text);
        assertEquals(9, Files.readAllLines(csv).size());
        List<GpuBench.Row> direct = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--dispatch", "direct", "--matmul", "hand,aparapi", "--batches", "2", "--steps",
                "2", "--prompt", "3", "--warmup", "0", "--copy-mib", "8", "--check", "false", "--out", json.toString()}));
        // Both matmul kernels of the direct dispatch, side by side.
        assertEquals(List.of("direct", "direct"), direct.stream().map(GpuBench.Row::dispatch).toList());
        assertEquals(List.of("hand", "aparapi"), direct.stream().map(GpuBench.Row::matmul).toList());
    }

    /**
     * Split weights and a device-only KV pool (stepstream.opencl.maxBufferBytes lowered) next to the unsplit model: the
     * same logit bits in the check, and the check's prefill again at KV blocks 40 and up is bitwise its first one.
     */
    @Test
    void splitModelsCheckBitwiseLikeTheUnsplitOneAlsoAtHighKvBlocks(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("split.json");
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--dispatch", "direct", "--dtype", "q8_0", "--batches", "2", "--steps", "2",
                "--prompt", "9", "--warmup", "0", "--copy-mib", "8", "--out", json.toString(), "--check-high-blocks",
                "40", "--prop", "stepstream.opencl.maxBufferBytes=2147483647|30000"}));
        assertEquals(List.of("hand[maxBufferBytes=2147483647]", "hand[maxBufferBytes=30000]"),
                rows.stream().map(GpuBench.Row::matmul).toList());
        String text = Files.readString(json);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"highBlocks\": \"([^\"]*)\"").matcher(text);
        int checks = 0;
        while (m.find()) {
            assertTrue(m.group(1).startsWith("at KV blocks from 40 (float offset 204800)")
                    && m.group(1).endsWith("bitwise the same true"), m.group(1));
            checks++;
        }
        assertEquals(2, checks, text);
        assertEquals(2, text.split("\"sameArgmax\": true").length - 1, text);
        java.util.regex.Matcher bits = java.util.regex.Pattern.compile("\"logitsBits\": \"([0-9a-f]{8})\"").matcher(text);
        assertTrue(bits.find(), text);
        String unsplit = bits.group(1);
        assertTrue(bits.find(), text);
        assertEquals(unsplit, bits.group(1), "split and unsplit check logits differ: " + text);
    }

    /**
     * The KV cache's element type side by side through --prop: both checks against the CPU (the f16 pool within the
     * ~1e-3 its halves allow, the same argmax), both bitwise the same at KV blocks from 40, the property restored.
     */
    @Test
    void kvCacheF32AndF16SideBySideWithTheirChecks(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("kv.json");
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--dispatch", "direct", "--batches", "2", "--steps", "2", "--prompt", "9",
                "--warmup", "0", "--copy-mib", "8", "--out", json.toString(), "--check-high-blocks", "40",
                "--prop", "stepstream.opencl.kvCache=f32|f16"}));
        assertEquals(List.of("hand[kvCache=f32]", "hand[kvCache=f16]"), rows.stream().map(GpuBench.Row::matmul).toList());
        assertEquals(null, System.getProperty("stepstream.opencl.kvCache"));
        String text = Files.readString(json);
        assertEquals(2, text.split("\"sameArgmax\": true").length - 1, text);
        java.util.regex.Matcher err = java.util.regex.Pattern.compile("\"relativeError\": ([0-9.eE+-]+)").matcher(text);
        assertTrue(err.find(), text);
        double f32 = Double.parseDouble(err.group(1));
        assertTrue(err.find(), text);
        double f16 = Double.parseDouble(err.group(1));
        assertTrue(f32 < 1e-4 && f16 > f32 && f16 < 1e-2, "check errors f32 " + f32 + ", f16 " + f16);
        assertTrue(text.contains("at KV blocks from 40 (float offset 204800)")
                && text.contains("at KV blocks from 40 (f16 element offset 204800)"), text);
        assertEquals(2, text.split("bitwise the same true").length - 1, text);
    }

    /**
     * The persistent tail A/B in one JVM (its shape set with it through "&"): the check's 4 decode steps run it on every
     * layer (stories260K: 5 a step) with the decode logits bitwise the kernels' (PoCL), and its time shows as the op
     * "tail".
     */
    @Test
    void persistentTailRunsInTheChecksDecodeStepsAndShowsAsAnOp(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("tail.json");
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--dispatch", "direct", "--dtype", "f32", "--batches", "1", "--steps", "3",
                "--prompt", "5", "--warmup", "0", "--copy-mib", "8", "--out", json.toString(),
                "--prop", "stepstream.opencl.persistentTail=off|on&stepstream.opencl.persistentTailShape=upg=2,sb=2,lpr=0"}));
        assertEquals(List.of("hand[persistentTail=off]",
                        "hand[persistentTail=on&stepstream.opencl.persistentTailShape=upg=2,sb=2,lpr=0]"),
                rows.stream().map(GpuBench.Row::matmul).toList());
        assertEquals(null, System.getProperty("stepstream.opencl.persistentTailShape"), "restored");
        assertFalse(rows.get(0).opMsPerStep().containsKey("tail"), rows.get(0).opMsPerStep().toString());
        assertTrue(rows.get(1).opMsPerStep().containsKey("tail") && !rows.get(1).opMsPerStep().containsKey("w2"),
                rows.get(1).opMsPerStep().toString());
        String text = Files.readString(json);
        assertEquals(2, text.split("\"sameArgmax\": true").length - 1, text);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile(
                "\"decodeBits\": \"([0-9a-f]{8})\", \"persistentTailLayers\": (\\d+)").matcher(text);
        assertTrue(m.find(), text);
        String off = m.group(1);
        assertEquals("0", m.group(2), text);
        assertTrue(m.find(), text);
        assertEquals(off, m.group(1), "the tail's decode logits differ from the kernels': " + text);
        assertEquals(String.valueOf(GpuBench.CHECK_DECODE_STEPS * 5), m.group(2), text);
    }

    @Test
    void propBuildsOneModelPerValueAndRestoresTheProperty(@TempDir Path dir) throws Exception {
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--dispatch", "direct", "--batches", "1", "--steps", "2", "--prompt", "3",
                "--warmup", "0", "--copy-mib", "8", "--check", "false", "--out", dir.resolve("p.json").toString(),
                "--prop", "stepstream.opencl.mvTier=auto|8"}));
        assertEquals(List.of("hand[mvTier=auto]", "hand[mvTier=8]"), rows.stream().map(GpuBench.Row::matmul).toList());
        assertEquals(null, System.getProperty("stepstream.opencl.mvTier"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--prop", "stepstream.opencl.mvTier"}));
        assertTrue(e.getMessage().contains("--prop must be NAME=VALUE"), e.getMessage());
    }

    @Test
    void greedyStepsReadBackSummariesWhereTheDeviceMakesThemAndLogitsOtherwise(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("bench.json");
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--summaries", "both", "--batches", "1,3", "--steps", "3", "--prompt", "4",
                "--warmup", "1", "--copy-mib", "8", "--check", "false", "--out", json.toString()}));
        // Per dispatch and batch: the logits path, then summaries (made on the device only by the direct dispatch).
        assertEquals(List.of("aparapi/logits", "aparapi/logits", "aparapi/logits", "aparapi/logits",
                        "direct/logits", "direct/summary", "direct/logits", "direct/summary"),
                rows.stream().map(r -> r.dispatch() + "/" + r.readback()).toList());
        for (GpuBench.Row r : rows) {
            if (r.dispatch().equals("direct")) {
                // The summary kernel shows as its own op exactly when the rows were reduced on the device.
                assertEquals(r.readback().equals("summary"), r.opMsPerStep().containsKey("summary"), r.toString());
                double sum = r.opMsPerStep().values().stream().mapToDouble(Double::doubleValue).sum();
                assertEquals(r.kernelMsPerStep(), sum, 1e-6 + 1e-9 * sum, r.toString());
            }
        }
        assertTrue(Files.readString(json).contains("\"readback\": \"summary\""));
        assertTrue(GpuBench.table(rows, 1).contains("ops direct/hand/summary f32 b3:"), GpuBench.table(rows, 1));
        List<GpuBench.Row> off = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--dispatch", "direct", "--summaries", "false", "--batches", "2", "--steps", "2",
                "--prompt", "3", "--warmup", "0", "--copy-mib", "8", "--check", "false", "--out", json.toString()}));
        assertEquals(List.of("logits"), off.stream().map(GpuBench.Row::readback).toList());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--summaries", "yes"}));
        assertTrue(e.getMessage().contains("--summaries must be true, false or both"), e.getMessage());
    }

    @Test
    void f16Q8AndF32RowsSayWhenTheyRanOnTensorCores(@TempDir Path dir) throws Exception {
        // batch 20: past the matvec's 8 tokens and the default 16-token threshold; emulated on PoCL
        String before = System.getProperty(TensorCores.F32_PROPERTY);
        System.setProperty(TensorCores.F32_PROPERTY, "3xtf32"); // F32 on tensor cores is opt-in
        List<GpuBench.Row> rows;
        try {
            rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                    "--device", SELECTOR, "--dtype", "f16,q8_0,f32", "--dispatch", "direct", "--matmul", "hand",
                    "--tensor-cores", "emulate,off", "--batches", "20", "--steps", "2", "--prompt", "3", "--warmup",
                    "0", "--copy-mib", "8", "--out", dir.resolve("tc.json").toString()}));
        } finally {
            if (before == null) {
                System.clearProperty(TensorCores.F32_PROPERTY);
            } else {
                System.setProperty(TensorCores.F32_PROPERTY, before);
            }
        }
        // Q8_0: stories260K's 64-column passes run mmt (its 172-column w2 stays on mm); F32: 3xTF32
        assertEquals(List.of("f16 hand+tc", "f16 hand", "q8_0 hand+tc", "q8_0 hand", "f32 hand+tc", "f32 hand"),
                rows.stream().map(r -> r.dtype() + " " + r.matmul()).toList());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--tensor-cores", "yes"}));
        assertTrue(e.getMessage().contains("auto, off or emulate"), e.getMessage());
    }

    @Test
    void attentionSplitModesSideBySideAfterALongChunkedPrefill(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("split.json");
        // A prompt past stories260K's 512 positions (--context), prefilled 64 tokens a step over both sequences.
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--device", SELECTOR, "--dispatch", "direct", "--matmul", "hand", "--attention-split", "auto,3,off",
                "--batches", "1,2", "--steps", "2", "--prompt", "530", "--context", "560", "--prefill-chunk", "64",
                "--warmup", "0", "--copy-mib", "8", "--out", json.toString()}));
        assertEquals(List.of("hand/att-auto", "hand/att-auto", "hand/att-3", "hand/att-3", "hand/att-off",
                "hand/att-off"), rows.stream().map(GpuBench.Row::matmul).toList());
        for (GpuBench.Row r : rows) {
            assertEquals(530, r.promptTokens());
            assertTrue(r.opMsPerStep().containsKey("attention"), r.opMsPerStep().toString());
        }
        // The check (the first 256 prompt tokens) of each split mode agrees with the CPU.
        String text = Files.readString(json);
        assertEquals(3, text.split("\"sameArgmax\": true").length - 1, text);
        assertTrue(text.contains("\"matmul\": \"hand/att-3\""), text);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--attention-split", "some"}));
        assertTrue(e.getMessage().contains("stepstream.opencl.attentionSplit"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GpuBench.run(GpuBench.Options.parse(new String[]{
                "--shape", "stories260k", "--device", SELECTOR, "--prompt", "600", "--out", json.toString()})));
        assertTrue(e.getMessage().contains("--context"), e.getMessage());
    }

    @Test
    void cpuBackendAndBadOptions(@TempDir Path dir) throws Exception {
        List<GpuBench.Row> rows = GpuBench.run(GpuBench.Options.parse(new String[]{"--shape", "stories260k",
                "--backend", "cpu", "--batches", "2", "--steps", "2", "--prompt", "3", "--copy-mib", "8", "--out",
                dir.resolve("cpu.json").toString()}));
        assertEquals(1, rows.size());
        assertEquals("cpu", rows.getFirst().backend());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--shape", "llama-7b"}));
        assertTrue(e.getMessage().contains("--shape"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--backend", "cpu", "--dtype", "f16"}));
        assertTrue(e.getMessage().contains("--dtype"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--dispatch", "cuda"}));
        assertTrue(e.getMessage().contains("aparapi or direct"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--matmul", "cublas"}));
        assertTrue(e.getMessage().contains("hand or aparapi"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> GpuBench.Options.parse(new String[]{"--kv-pool", "all"}));
        assertTrue(e.getMessage().contains("--kv-pool") && e.getMessage().contains("'all'"), e.getMessage());
        assertTrue(GpuBench.Options.parse(new String[]{"--kv-pool", "default"}).defaultKvPool());
    }
}
