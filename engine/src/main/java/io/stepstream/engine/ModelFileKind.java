package io.stepstream.engine;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/** The kinds of model file {@link Models#load} reads, told apart by content and layout, not by model names. */
public enum ModelFileKind {
    /** A GGUF file: starts with the bytes "GGUF". */
    GGUF,
    /** A Hugging Face folder with config.json, or a .safetensors / .safetensors.index.json file in one. */
    SAFETENSORS,
    /** Anything else that is a regular file: a llama2.c checkpoint (its header is validated when read). */
    LLAMA2C;

    public static ModelFileKind of(Path path) {
        if (Files.isDirectory(path)) {
            if (Files.isRegularFile(path.resolve("config.json"))) {
                return SAFETENSORS;
            }
            throw new ModelLoadException(path + ": a folder without config.json is not a model");
        }
        if (!Files.isRegularFile(path)) {
            throw new ModelLoadException(path + ": no such model: not an embedded model " + Models.embedded()
                    + " and not a readable file or folder");
        }
        if (startsWithGgufMagic(path)) {
            return GGUF;
        }
        String name = path.getFileName().toString();
        if (name.endsWith(".safetensors") || name.endsWith(".safetensors.index.json")) {
            return SAFETENSORS;
        }
        return LLAMA2C;
    }

    private static boolean startsWithGgufMagic(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] magic = in.readNBytes(4);
            return magic.length == 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F';
        } catch (IOException e) {
            throw new ModelLoadException(file + ": cannot read: " + e.getMessage(), e);
        }
    }
}
