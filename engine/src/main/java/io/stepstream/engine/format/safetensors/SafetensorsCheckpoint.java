package io.stepstream.engine.format.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.engine.ModelLoadException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SequencedMap;

/**
 * The weights of one model: a single {@code model.safetensors}, or a sharded checkpoint whose
 * {@code model.safetensors.index.json} maps every tensor name to the shard file holding it ({@code weight_map}).
 * Shards are memory-mapped and checked as {@link SafetensorsFile} does; the index must name only files in its
 * own folder, each listed tensor must be in the shard the index names, and no tensor may appear twice.
 */
public final class SafetensorsCheckpoint implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private final String name;
    private final List<SafetensorsFile> files;
    private final SequencedMap<String, SafetensorsTensor> tensors;

    private SafetensorsCheckpoint(String name, List<SafetensorsFile> files,
                                  SequencedMap<String, SafetensorsTensor> tensors) {
        this.name = name;
        this.files = List.copyOf(files);
        this.tensors = Collections.unmodifiableSequencedMap(tensors);
    }

    /**
     * A folder with {@code model.safetensors.index.json} (sharded, preferred when both exist) or
     * {@code model.safetensors}; or a path to either file itself.
     */
    public static SafetensorsCheckpoint open(Path path) {
        if (Files.isDirectory(path)) {
            Path index = path.resolve(INDEX_FILE);
            if (Files.isRegularFile(index)) {
                return openSharded(index);
            }
            Path single = path.resolve(SINGLE_FILE);
            if (Files.isRegularFile(single)) {
                return single(SafetensorsFile.open(single));
            }
            throw new ModelLoadException(path + ": no " + SINGLE_FILE + " or " + INDEX_FILE + " in this folder");
        }
        if (!Files.isRegularFile(path)) {
            throw new ModelLoadException(path + ": safetensors checkpoint not found");
        }
        if (path.getFileName().toString().endsWith(".index.json")) {
            return openSharded(path);
        }
        return single(SafetensorsFile.open(path));
    }

    /** Wraps one already opened file; closing the checkpoint closes it. */
    public static SafetensorsCheckpoint single(SafetensorsFile file) {
        return new SafetensorsCheckpoint(file.name(), List.of(file), new LinkedHashMap<>(file.tensors()));
    }

    private static SafetensorsCheckpoint openSharded(Path index) {
        String where = index.toString();
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(index));
        } catch (IOException e) {
            throw new ModelLoadException(where + ": cannot read the shard index: " + e.getMessage(), e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new ModelLoadException(where + ": missing key weight_map (an object of tensor name -> shard file)");
        }
        if (map.isEmpty()) {
            throw new ModelLoadException(where + ": weight_map is empty");
        }
        Path dir = index.toAbsolutePath().getParent();
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        SequencedMap<String, SafetensorsTensor> tensors = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, JsonNode> e : map.properties()) {
                String tensorName = e.getKey();
                if (!e.getValue().isTextual()) {
                    throw new ModelLoadException(where + ": weight_map." + tensorName + " must be a file name string");
                }
                String shardName = e.getValue().asText();
                SafetensorsFile shard = shards.get(shardName);
                if (shard == null) {
                    Path shardPath = dir.resolve(shardName).normalize();
                    if (shardName.isEmpty() || !dir.equals(shardPath.getParent())) {
                        throw new ModelLoadException(where + ": weight_map." + tensorName + " names shard \""
                                + shardName + "\", which is not a file in the index's folder");
                    }
                    if (!Files.isRegularFile(shardPath)) {
                        throw new ModelLoadException(where + ": shard " + shardName + " (for " + tensorName
                                + ") not found in " + dir);
                    }
                    shard = SafetensorsFile.open(shardPath);
                    shards.put(shardName, shard);
                }
                SafetensorsTensor t = shard.tensors().get(tensorName);
                if (t == null) {
                    throw new ModelLoadException(where + ": weight_map puts " + tensorName + " in " + shardName
                            + " but that shard has no such tensor");
                }
                tensors.put(tensorName, t);
            }
            for (Map.Entry<String, SafetensorsFile> s : shards.entrySet()) {
                for (String tensorName : s.getValue().tensors().keySet()) {
                    if (!tensors.containsKey(tensorName)) {
                        throw new ModelLoadException(where + ": shard " + s.getKey() + " holds tensor " + tensorName
                                + ", which weight_map does not list");
                    }
                    if (tensors.get(tensorName).data() != s.getValue().tensors().get(tensorName).data()) {
                        throw new ModelLoadException(where + ": tensor " + tensorName + " appears in shard "
                                + s.getKey() + " and in another shard");
                    }
                }
            }
        } catch (RuntimeException e) {
            shards.values().forEach(SafetensorsFile::close);
            throw e;
        }
        return new SafetensorsCheckpoint(where, new ArrayList<>(shards.values()), tensors);
    }

    /** The index or single file this checkpoint was opened from, for messages. */
    public String name() {
        return name;
    }

    public SequencedMap<String, SafetensorsTensor> tensors() {
        return tensors;
    }

    public SafetensorsTensor tensor(String tensorName) {
        SafetensorsTensor t = tensors.get(tensorName);
        if (t == null) {
            throw new ModelLoadException(name + ": missing tensor " + tensorName);
        }
        return t;
    }

    public boolean contains(String tensorName) {
        return tensors.containsKey(tensorName);
    }

    @Override
    public void close() {
        for (SafetensorsFile f : files) {
            f.close();
        }
    }
}
