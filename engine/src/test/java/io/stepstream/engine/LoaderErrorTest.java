package io.stepstream.engine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LoaderErrorTest {
    @TempDir
    Path dir;

    private Path good() throws IOException {
        ForwardReferenceTest.writeRandomModel(dir, 31, false);
        return dir.resolve("random.bin");
    }

    private static ModelLoadException loadFails(Path checkpoint, String... fragments) {
        ModelLoadException e = assertThrows(ModelLoadException.class,
                () -> Models.load(checkpoint.toString()).close());
        assertTrue(e.getMessage().contains(checkpoint.toString()), "names the file: " + e.getMessage());
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "mentions '" + f + "': " + e.getMessage());
        }
        return e;
    }

    private Path withHeader(int... header) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TestCheckpoint.ints(out, header);
        out.writeBytes(new byte[4096]);
        Path file = dir.resolve("bad.bin");
        Files.write(file, out.toByteArray());
        Files.write(dir.resolve("tokenizer.bin"), TestCheckpoint.randomTokenizer(new Random(1), 320));
        return file;
    }

    @Test
    void goodModelLoads() throws IOException {
        try (Model m = Models.load(good().toString())) {
            assertEquals(48, m.config().dim());
            assertEquals(2, m.config().nKvHeads());
            assertEquals(1e-5f, m.config().rmsNormEps());
            assertEquals(10000f, m.config().ropeTheta());
        }
        assertEquals(java.util.List.of("stories260K"), Models.embedded());
    }

    @Test
    void truncatedFile() throws IOException {
        Path file = good();
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(bytes, bytes.length - 10));
        loadFails(file, "truncated: header implies " + bytes.length + " bytes, file has " + (bytes.length - 10));
        Files.write(file, Arrays.copyOf(bytes, 12));
        loadFails(file, "truncated");
    }

    @Test
    void trailingBytes() throws IOException {
        Path file = good();
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(bytes, bytes.length + 8));
        loadFails(file, "trailing");
    }

    @Test
    void badHeaders() throws IOException {
        loadFails(withHeader(0, 80, 3, 6, 2, 320, 96), "dim must be positive");
        loadFails(withHeader(48, 80, -3, 6, 2, 320, 96), "n_layers must be positive");
        loadFails(withHeader(48, 80, 3, 6, 0, 320, 96), "n_kv_heads must be positive");
        loadFails(withHeader(48, 80, 3, 6, 2, 0, 96), "vocab_size must be positive");
        loadFails(withHeader(48, 80, 3, 5, 5, 320, 96), "does not divide dim");
        loadFails(withHeader(48, 80, 3, 6, 4, 320, 96), "does not divide n_heads");
    }

    @Test
    void absurdDimsFailBeforeAllocating() throws IOException {
        // would need ~2^62 bytes: overflow or a size mismatch, never an attempt to allocate
        loadFails(withHeader(1 << 30, 1 << 30, 1 << 30, 1 << 10, 1 << 10, 1 << 30, 1 << 30), "bad header");
        loadFails(withHeader(1 << 16, 1 << 20, 1000, 1 << 8, 1 << 8, -(1 << 20), 1 << 20), "bad header");
        loadFails(withHeader(4096, 11008, 32, 32, 32, 32000, 2048), "truncated: header implies");
    }

    @Test
    void missingOrMismatchedTokenizer() throws IOException {
        Path file = good();
        Files.delete(dir.resolve("tokenizer.bin"));
        loadFails(file, "no tokenizer");
        Files.write(dir.resolve("tok512.bin"), TokenizerTest.tok512Bytes());
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> Models.load(file.toString()));
        assertTrue(e.getMessage().contains("tok512.bin"), e.getMessage());
        ModelLoadException missing = assertThrows(ModelLoadException.class,
                () -> Models.load(file, dir.resolve("nope.bin")));
        assertTrue(missing.getMessage().contains("nope.bin"), missing.getMessage());
    }

    @Test
    void unknownModelName() {
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> Models.load("stories999Q"));
        assertTrue(e.getMessage().contains("stories999Q") && e.getMessage().contains("stories260K"), e.getMessage());
    }
}
