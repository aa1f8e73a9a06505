package io.stepstream.engine;

import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama2.Llama2Model;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Loads models: the ones embedded in the engine jar by name, or llama2.c checkpoints by path. */
public final class Models {
    public static final String DEFAULT_MODEL = "stories260K";

    /** Embedded models: name -> (checkpoint resource, tokenizer resource), under this package's models/. */
    private record Embedded(String name, String checkpoint, String tokenizer) {
    }

    private static final List<Embedded> EMBEDDED = List.of(
            new Embedded("stories260K", "models/stories260K/stories260K.bin", "models/stories260K/tok512.bin"));

    private Models() {
    }

    public static List<String> embedded() {
        return EMBEDDED.stream().map(Embedded::name).toList();
    }

    public static Model load(String nameOrPath) {
        return load(nameOrPath, ModelOptions.defaults());
    }

    /** An embedded model name, or a path to a llama2.c .bin with its tokenizer in the same folder. */
    public static Model load(String nameOrPath, ModelOptions options) {
        if (nameOrPath == null || nameOrPath.isBlank()) {
            throw new ModelLoadException("model name or path is empty (embedded models: " + embedded() + ")");
        }
        for (Embedded m : EMBEDDED) {
            if (m.name().equals(nameOrPath)) {
                return loadEmbedded(m, options);
            }
        }
        Path checkpoint = Path.of(nameOrPath);
        if (!Files.isRegularFile(checkpoint)) {
            throw new ModelLoadException(nameOrPath + ": no such model: not an embedded model " + embedded()
                    + " and not a readable file");
        }
        return load(checkpoint, findTokenizer(checkpoint), options);
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
        return new Llama2Model(name, weights, tok, options);
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
        return new Llama2Model(m.name(), weights, tok, options);
    }

    private static byte[] resource(Embedded m, String path) {
        try (InputStream in = Models.class.getResourceAsStream(path)) {
            if (in == null) {
                throw new ModelLoadException(m.name() + ": embedded resource " + path + " is missing from the jar");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new ModelLoadException(m.name() + ": cannot read embedded resource " + path + ": " + e, e);
        }
    }
}
