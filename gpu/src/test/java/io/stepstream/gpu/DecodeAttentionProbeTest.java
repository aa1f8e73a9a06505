package io.stepstream.gpu;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** DecodeAttentionProbe on PoCL at a small MHA shape: each variant runs the kernel it names and is near float64. */
class DecodeAttentionProbeTest {
    @Test
    void eachVariantRunsItsKernelAndMatchesFloat64() {
        List<String> lines = new ArrayList<>();
        DecodeAttentionProbe.run(new String[]{"--device", OpenClTestSupport.SELECTOR, "--head", "64", "--heads", "2",
                "--kv-heads", "2", "--keys", "150", "--batches", "1,3", "--reps", "1", "--variants",
                "tiled|decode:groups=2"}, lines::add);
        assertEquals(5, lines.size(), String.join("\n", lines));
        Pattern err = Pattern.compile("relative error ([0-9.eE+-]+)$");
        for (int i = 1; i < lines.size(); i++) {
            String line = lines.get(i);
            assertTrue(line.contains(i <= 2 ? ": attn_tiled," : ": attn_decode,"), line);
            Matcher m = err.matcher(line);
            assertTrue(m.find() && Double.parseDouble(m.group(1)) < 1e-5, line);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DecodeAttentionProbe.run(
                new String[]{"--keys", "2080", "--batches", "40"}, lines::add));
        assertTrue(e.getMessage().contains("--batches 40"), e.getMessage());
    }
}
