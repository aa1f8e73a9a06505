package io.stepstream.engine.format.safetensors;

import io.stepstream.engine.ModelLoadException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Single-file and sharded checkpoints (model.safetensors.index.json + weight_map). */
class SafetensorsCheckpointTest {
    private static void shards(Path dir) {
        new SafetensorsWriter().f32("a", new float[]{1, 2}, 2).f32("b", new float[]{3}, 1)
                .write(dir.resolve("model-00001-of-00002.safetensors"));
        new SafetensorsWriter().f32("c", new float[]{4, 5, 6}, 3)
                .write(dir.resolve("model-00002-of-00002.safetensors"));
    }

    private static void index(Path dir, String weightMap) throws IOException {
        Files.writeString(dir.resolve(SafetensorsCheckpoint.INDEX_FILE),
                "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {" + weightMap + "}}");
    }

    private static final String GOOD_MAP = "\"a\": \"model-00001-of-00002.safetensors\","
            + " \"b\": \"model-00001-of-00002.safetensors\", \"c\": \"model-00002-of-00002.safetensors\"";

    private static ModelLoadException fails(Path path, String... fragments) {
        ModelLoadException e = assertThrows(ModelLoadException.class, () -> SafetensorsCheckpoint.open(path));
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        }
        return e;
    }

    @Test
    void shardedCheckpointFindsEveryTensor(@TempDir Path dir) throws IOException {
        shards(dir);
        index(dir, GOOD_MAP);
        // Both a folder and the index path itself open it; the index wins over a stray single file.
        new SafetensorsWriter().f32("zzz", new float[1], 1).write(dir.resolve(SafetensorsCheckpoint.SINGLE_FILE));
        for (Path p : List.of(dir, dir.resolve(SafetensorsCheckpoint.INDEX_FILE))) {
            try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(p)) {
                assertEquals(List.of("a", "b", "c"), List.copyOf(ckpt.tensors().keySet()));
                assertArrayEquals(new float[]{1, 2}, ckpt.tensor("a").toFloats());
                assertArrayEquals(new float[]{4, 5, 6}, ckpt.tensor("c").toFloats());
                assertTrue(ckpt.tensor("c").file().endsWith("model-00002-of-00002.safetensors"));
                ModelLoadException e = assertThrows(ModelLoadException.class, () -> ckpt.tensor("zzz"));
                assertTrue(e.getMessage().contains("missing tensor zzz"), e.getMessage());
            }
        }
    }

    @Test
    void singleFileCheckpoint(@TempDir Path dir) {
        new SafetensorsWriter().f32("w", new float[]{9, 8}, 2).write(dir.resolve(SafetensorsCheckpoint.SINGLE_FILE));
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(dir)) {
            assertArrayEquals(new float[]{9, 8}, ckpt.tensor("w").toFloats());
        }
    }

    @Test
    void brokenIndexes(@TempDir Path dir) throws IOException {
        fails(dir, "no model.safetensors");
        fails(dir.resolve("nothing.safetensors"), "not found");
        shards(dir);
        Files.writeString(dir.resolve(SafetensorsCheckpoint.INDEX_FILE), "{\"metadata\": {}}");
        fails(dir, "missing key weight_map");
        index(dir, "");
        fails(dir, "weight_map is empty");
        index(dir, GOOD_MAP.replace("model-00002-of-00002", "model-00003-of-00003"));
        fails(dir, "shard model-00003-of-00003.safetensors (for c) not found");
        index(dir, GOOD_MAP.replace("\"c\": \"model-00002", "\"c\": \"model-00001"));
        fails(dir, "puts c in model-00001-of-00002.safetensors but that shard has no such tensor");
        index(dir, GOOD_MAP.replace(", \"b\": \"model-00001-of-00002.safetensors\"", ""));
        fails(dir, "holds tensor b, which weight_map does not list");
        index(dir, GOOD_MAP.replace("\"c\": \"model-00002", "\"c\": \"../model-00002"));
        fails(dir, "not a file in the index's folder");
        index(dir, GOOD_MAP.replace("\"c\": \"model-00002-of-00002.safetensors\"", "\"c\": 3"));
        fails(dir, "weight_map.c must be a file name");
        Files.writeString(dir.resolve(SafetensorsCheckpoint.INDEX_FILE), "{\"weight_map\": ");
        fails(dir, SafetensorsCheckpoint.INDEX_FILE);
    }

    @Test
    void aTensorInTwoShardsIsRefused(@TempDir Path dir) throws IOException {
        shards(dir);
        new SafetensorsWriter().f32("c", new float[]{4, 5, 6}, 3).f32("a", new float[]{0, 0}, 2)
                .write(dir.resolve("model-00002-of-00002.safetensors"));
        index(dir, GOOD_MAP);
        fails(dir, "tensor a appears in shard model-00002-of-00002.safetensors and in another shard");
    }
}
