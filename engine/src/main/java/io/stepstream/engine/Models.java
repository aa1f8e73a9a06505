package io.stepstream.engine;

import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.format.safetensors.HfConfig;
import io.stepstream.engine.format.safetensors.SafetensorsCheckpoint;
import io.stepstream.engine.format.safetensors.SafetensorsFile;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama.LlamaLoader;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.tokenizer.HfTokenizerJson;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.sparse.PatternCache;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Loads models: the ones embedded in the engine jar by name, or a file whose kind is read from the file itself
 * (GGUF, Hugging Face safetensors + config.json, llama2.c checkpoint); diffusion models ({@link #loadDiffusion}) by
 * embedded name or from a Hugging Face style folder.
 */
public final class Models {
    public static final String DEFAULT_MODEL = "stories260K";

    /** Embedded models: name -> (checkpoint resource, tokenizer resource), under this package's models/. */
    private record Embedded(String name, String checkpoint, String tokenizer) {
    }

    private static final List<Embedded> EMBEDDED = List.of(
            new Embedded("stories260K", "models/stories260K/stories260K.bin", "models/stories260K/tok512.bin"));

    /** Embedded diffusion models, each a folder under models/ with config.json, model.safetensors, tokenizer.bin. */
    private static final List<String> EMBEDDED_DIFFUSION = List.of("tinystories-dlm");

    private Models() {
    }

    public static List<String> embeddedDiffusion() {
        return EMBEDDED_DIFFUSION;
    }

    public static DiffusionModel loadDiffusion(String nameOrPath) {
        return loadDiffusion(nameOrPath, ModelOptions.defaults());
    }

    /**
     * An embedded diffusion model by name, or a folder holding config.json, model.safetensors (or a sharded
     * model.safetensors.index.json) and a tokenizer: Hugging Face's tokenizer.json (byte-level BPE, with the mask as
     * one of its control tokens) or a llama2.c tokenizer.bin whose ids are all below the config's mask_token_id.
     */
    public static DiffusionModel loadDiffusion(String nameOrPath, ModelOptions options) {
        return loadDiffusion(nameOrPath, options, PatternCache.withDefaultCap());
    }

    /** As above, with the cache that bounds the SparseD patterns of the model's requests (a server's budget). */
    public static DiffusionModel loadDiffusion(String nameOrPath, ModelOptions options, PatternCache patternCache) {
        return loadDiffusion(nameOrPath, null, options, patternCache);
    }

    /**
     * As above, with the folder's config.json already read by the caller ({@code null}: read it here), so that a
     * caller who looked at it to decide what the folder holds does not read it again. Ignored for embedded models.
     */
    public static DiffusionModel loadDiffusion(String nameOrPath, HfConfig config, ModelOptions options,
                                               PatternCache patternCache) {
        if (nameOrPath == null || nameOrPath.isBlank()) {
            throw new ModelLoadException("diffusion model name or path is empty (embedded: " + EMBEDDED_DIFFUSION
                    + ")");
        }
        if (EMBEDDED_DIFFUSION.contains(nameOrPath)) {
            return loadEmbeddedDiffusion(nameOrPath, options, patternCache);
        }
        Path dir = Path.of(nameOrPath);
        if (!Files.isDirectory(dir)) {
            throw new ModelLoadException(nameOrPath + ": no such diffusion model: not an embedded one "
                    + EMBEDDED_DIFFUSION + " and not a folder");
        }
        Path configFile = dir.resolve("config.json");
        Path tokenizerFile = dir.resolve("tokenizer.bin");
        if (config == null && !Files.isRegularFile(configFile)) {
            throw new ModelLoadException(dir + ": config.json not found");
        }
        if (config == null) {
            config = HfConfig.read(configFile);
        }
        Tokenizer tok;
        if (Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            // A Hugging Face checkpoint's own tokenizer: its mask token is one of its control tokens.
            tok = HfTokenizerJson.read(dir, config.vocabSize()).create();
        } else if (Files.isRegularFile(tokenizerFile)) {
            tok = Llama2Tokenizer.read(tokenizerFile, textVocabSize(configFile.toString(), config));
        } else {
            throw new ModelLoadException(dir + ": no tokenizer.json or tokenizer.bin");
        }
        // The weights are copied to the heap by the model; the mapping is released right after.
        try (SafetensorsCheckpoint weights = SafetensorsCheckpoint.open(dir)) {
            return new DiffusionModel(dir.toAbsolutePath().normalize().getFileName().toString(), config, weights, tok,
                    options, patternCache);
        }
    }

    /** Tokens in the tokenizer: tokenizer_vocab_size when given, else every id below the mask id. */
    private static int textVocabSize(String file, HfConfig config) {
        if (config.tokenizerVocabSize() != null) {
            return config.tokenizerVocabSize();
        }
        if (config.maskTokenId() == null) {
            throw new ModelLoadException(file + ": missing key mask_token_id (a diffusion model needs its [MASK] id)");
        }
        return config.maskTokenId();
    }

    private static DiffusionModel loadEmbeddedDiffusion(String name, ModelOptions options,
                                                        PatternCache patternCache) {
        String dir = "models/" + name + "/";
        HfConfig config = HfConfig.parse(name + ":" + dir + "config.json", resource(name, dir + "config.json"));
        Llama2Tokenizer tok = Llama2Tokenizer.read(name + ":" + dir + "tokenizer.bin",
                resource(name, dir + "tokenizer.bin"), textVocabSize(name + ":" + dir + "config.json", config));
        SafetensorsFile file = SafetensorsFile.of(name + ":" + dir + "model.safetensors",
                resource(name, dir + "model.safetensors"));
        try (SafetensorsCheckpoint weights = SafetensorsCheckpoint.single(file)) {
            return new DiffusionModel(name, config, weights, tok, options, patternCache);
        }
    }

    public static List<String> embedded() {
        return EMBEDDED.stream().map(Embedded::name).toList();
    }

    public static Model load(String nameOrPath) {
        return load(nameOrPath, ModelOptions.defaults());
    }

    /**
     * An embedded model name, or a path: a GGUF file (by its magic), a Hugging Face folder with config.json (or its
     * .safetensors / .index.json file), else a llama2.c checkpoint with its tokenizer in the same folder.
     */
    public static Model load(String nameOrPath, ModelOptions options) {
        if (nameOrPath == null || nameOrPath.isBlank()) {
            throw new ModelLoadException("model name or path is empty (embedded models: " + embedded() + ")");
        }
        for (Embedded m : EMBEDDED) {
            if (m.name().equals(nameOrPath)) {
                return loadEmbedded(m, options);
            }
        }
        Path path = Path.of(nameOrPath);
        return switch (ModelFileKind.of(path)) {
            case GGUF -> LlamaLoader.gguf(path, options);
            case SAFETENSORS -> LlamaLoader.safetensors(path, options);
            case LLAMA2C -> load(path, findTokenizer(path), options);
        };
    }

    public static Model load(Path checkpoint, Path tokenizer) {
        return load(checkpoint, tokenizer, ModelOptions.defaults());
    }

    public static Model load(Path checkpoint, Path tokenizer, ModelOptions options) {
        if (!Files.isRegularFile(checkpoint)) {
            throw new ModelLoadException(checkpoint + ": checkpoint file not found");
        }
        if (tokenizer == null || !Files.isRegularFile(tokenizer)) {
            throw new ModelLoadException(tokenizer + ": tokenizer file not found (for checkpoint " + checkpoint + ")");
        }
        Llama2Weights weights = Llama2Checkpoint.read(checkpoint);
        Llama2Tokenizer tok = Llama2Tokenizer.read(tokenizer, weights.config().vocabSize());
        String file = checkpoint.getFileName().toString();
        String name = file.endsWith(".bin") ? file.substring(0, file.length() - 4) : file;
        return LlamaLoader.llama2c(name, weights, tok, options);
    }

    /** tokenizer.bin beside a llama2.c checkpoint, else the single tok*.bin there (for tools). */
    public static Path findTokenizerBeside(Path checkpoint) {
        return findTokenizer(checkpoint);
    }

    /** tokenizer.bin beside the checkpoint, else the single tok*.bin there. */
    static Path findTokenizer(Path checkpoint) {
        Path dir = checkpoint.toAbsolutePath().getParent();
        Path plain = dir.resolve("tokenizer.bin");
        if (Files.isRegularFile(plain)) {
            return plain;
        }
        List<Path> candidates = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "tok*.bin")) {
            for (Path p : files) {
                if (Files.isRegularFile(p) && !p.getFileName().equals(checkpoint.getFileName())) {
                    candidates.add(p);
                }
            }
        } catch (IOException e) {
            throw new ModelLoadException(checkpoint + ": cannot list " + dir + " for a tokenizer: " + e, e);
        }
        if (candidates.isEmpty()) {
            throw new ModelLoadException(checkpoint + ": no tokenizer found beside it (looked for tokenizer.bin"
                    + " and tok*.bin in " + dir + "); pass one explicitly");
        }
        if (candidates.size() > 1) {
            candidates.sort(null);
            throw new ModelLoadException(checkpoint + ": several tokenizers beside it " + candidates
                    + "; pass one explicitly");
        }
        return candidates.getFirst();
    }

    private static Model loadEmbedded(Embedded m, ModelOptions options) {
        Llama2Weights weights = Llama2Checkpoint.read(m.name() + ":" + m.checkpoint(), resource(m, m.checkpoint()));
        Llama2Tokenizer tok = Llama2Tokenizer.read(m.name() + ":" + m.tokenizer(), resource(m, m.tokenizer()),
                weights.config().vocabSize());
        return LlamaLoader.llama2c(m.name(), weights, tok, options);
    }

    private static byte[] resource(Embedded m, String path) {
        return resource(m.name(), path);
    }

    private static byte[] resource(String model, String path) {
        try (InputStream in = Models.class.getResourceAsStream(path)) {
            if (in == null) {
                throw new ModelLoadException(model + ": embedded resource " + path + " is missing from the jar");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new ModelLoadException(model + ": cannot read embedded resource " + path + ": " + e, e);
        }
    }
}
