package io.stepstream.engine.spi;

import io.stepstream.engine.Model;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.ServiceLoader;

/**
 * The backends on the class path ({@link ServiceLoader} over {@link BackendProvider}) and loading a llama2.c
 * model onto one by name. The actors layer fills {@code ModelInfo.backend/device} from {@link #backendOf} and
 * {@link #deviceOf}; a CLI's {@code --backend/--device} go to {@link #load(String, String, BackendOptions)}.
 */
public final class Backends {
    private static final String EMBEDDED_CHECKPOINT = "models/stories260K/stories260K.bin";
    private static final String EMBEDDED_TOKENIZER = "models/stories260K/tok512.bin";

    private Backends() {
    }

    /** Every provider found, in class path order. */
    public static List<BackendProvider> providers() {
        List<BackendProvider> all = new ArrayList<>();
        ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader()).forEach(all::add);
        return all;
    }

    /** The provider called {@code name} (any case); a clear error naming the ones there are otherwise. */
    public static BackendProvider provider(String name) {
        String wanted = name == null || name.isBlank() ? CpuBackendProvider.NAME : name.strip().toLowerCase(Locale.ROOT);
        List<BackendProvider> all = providers();
        for (BackendProvider p : all) {
            if (p.name().equals(wanted)) {
                return p;
            }
        }
        throw new IllegalArgumentException("--backend '" + name + "': no such backend on the class path (found: "
                + all.stream().map(BackendProvider::name).toList() + "; opencl needs the stepstream-gpu jar)");
    }

    /**
     * Loads a llama2.c model (the embedded {@value Models#DEFAULT_MODEL} or a .bin with tokenizer.bin or a
     * single tok*.bin beside it) onto {@code backend}.
     */
    public static BackendModel load(String backend, String nameOrPath, BackendOptions options) {
        BackendProvider provider = provider(backend);
        if (!provider.available()) {
            throw new ModelLoadException("--backend " + provider.name() + " is not available on this machine");
        }
        Llama2Weights weights;
        Llama2Tokenizer tokenizer;
        String name;
        if (Models.DEFAULT_MODEL.equals(nameOrPath)) {
            weights = Llama2Checkpoint.read(nameOrPath + ":" + EMBEDDED_CHECKPOINT, resource(EMBEDDED_CHECKPOINT));
            tokenizer = Llama2Tokenizer.read(nameOrPath + ":" + EMBEDDED_TOKENIZER, resource(EMBEDDED_TOKENIZER),
                    weights.config().vocabSize());
            name = nameOrPath;
        } else {
            Path checkpoint = Path.of(nameOrPath);
            if (!Files.isRegularFile(checkpoint)) {
                throw new ModelLoadException(nameOrPath + ": no such model: not " + Models.DEFAULT_MODEL
                        + " and not a readable llama2.c checkpoint file");
            }
            weights = Llama2Checkpoint.read(checkpoint);
            tokenizer = Llama2Tokenizer.read(tokenizerBeside(checkpoint), weights.config().vocabSize());
            String file = checkpoint.getFileName().toString();
            name = file.endsWith(".bin") ? file.substring(0, file.length() - 4) : file;
        }
        return provider.load(name, weights, tokenizer, options);
    }

    /**
     * Places a diffusion LM, loaded on the CPU, onto {@code backend} (the returned model owns it; if placing fails,
     * the caller still owns it and should close it).
     */
    public static DiffusionBackendModel loadDiffusion(String backend, io.stepstream.engine.dlm.DiffusionModel model,
                                                      BackendOptions options) {
        BackendProvider provider = provider(backend);
        if (!provider.available()) {
            throw new ModelLoadException("--backend " + provider.name() + " is not available on this machine");
        }
        return provider.loadDiffusion(model, options);
    }

    /** "cpu" for a model that does not say where it runs (the engine's own models run on the CPU). */
    public static String backendOf(Model model) {
        return model instanceof BackendModel b ? b.backendName() : CpuBackendProvider.NAME;
    }

    public static String deviceOf(Model model) {
        return model instanceof BackendModel b ? b.deviceName() : CpuBackendProvider.NAME;
    }

    private static Path tokenizerBeside(Path checkpoint) {
        Path dir = checkpoint.toAbsolutePath().getParent();
        Path plain = dir.resolve("tokenizer.bin");
        if (Files.isRegularFile(plain)) {
            return plain;
        }
        List<Path> found = new ArrayList<>();
        try (var files = Files.newDirectoryStream(dir, "tok*.bin")) {
            files.forEach(found::add);
        } catch (IOException e) {
            throw new ModelLoadException(checkpoint + ": cannot list " + dir + " for a tokenizer: " + e, e);
        }
        if (found.size() != 1) {
            throw new ModelLoadException(checkpoint + ": need tokenizer.bin or exactly one tok*.bin beside it, found "
                    + found);
        }
        return found.getFirst();
    }

    private static byte[] resource(String path) {
        try (InputStream in = Models.class.getResourceAsStream(path)) {
            if (in == null) {
                throw new ModelLoadException("embedded resource " + path + " is missing from the engine jar");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new ModelLoadException("cannot read embedded resource " + path + ": " + e, e);
        }
    }
}
