package io.stepstream.protocol.cli;

import io.stepstream.engine.tools.DreamSynth;
import io.stepstream.engine.tools.SynthModel;
import io.stepstream.engine.tools.SynthShape;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code stepstream synth}: a random-weight model with a real shape, as GGUF llama.cpp loads; or, for a dream-*
 * shape, a Dream diffusion model folder (safetensors + config.json + tokenizer.bin) that {@code generate --model}
 * and {@code serve --model} load.
 */
@Command(name = "synth", mixinStandardHelpOptions = true,
        description = "Write a random-weight GGUF model with a real shape (deterministic per seed); dream-* shapes"
                + " write a Dream diffusion model folder instead.")
final class SynthCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--shape", required = true,
            paramLabel = "llama2-15m|llama2-110m|llama-1.1b|qwen2-0.5b|dream-tiny|dream-tiny-tied|dream-small",
            description = "Model shape (dream-*: a Dream diffusion model folder, f32, the tok512 vocabulary + mask).")
    String shape;

    @Option(names = "--type", paramLabel = "f32|f16|q8_0|q4_0|q4_k|q6_k", defaultValue = "f32", description = "Weight encoding.")
    String type;

    @Option(names = "--vocab", paramLabel = "N", defaultValue = "512", description = "Vocabulary size (default 512).")
    int vocab;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "1", description = "Random seed (default 1).")
    long seed;

    @Parameters(index = "0", paramLabel = "OUT", description = "Output file (OUT.gguf), or folder for dream-*.")
    Path out;

    @Override
    public Integer call() {
        if (DreamSynth.isDreamShape(shape)) {
            return dream();
        }
        SynthShape s;
        try {
            s = SynthShape.byId(shape);
        } catch (IllegalArgumentException e) {
            throw CliFailure.badInput("--shape: " + e.getMessage());
        }
        try {
            SynthModel.writeGguf(out, s, ConvertCommand.parseType(type), vocab, seed);
        } catch (IllegalArgumentException e) {
            throw CliFailure.badInput(CliFailure.oneLine(e.getMessage()));
        } catch (IOException e) {
            throw new CliFailure(CliFailure.FAILED, "cannot write " + out + ": " + e.getMessage());
        }
        cli.out().println("wrote " + out);
        return 0;
    }

    private int dream() {
        if (!type.equals("f32")) {
            throw CliFailure.badInput("--type: Dream shapes are written in f32 only, got " + type);
        }
        if (vocab != 512) {
            throw CliFailure.badInput("--vocab: Dream shapes use the tok512 vocabulary (512 ids + the mask), got "
                    + vocab);
        }
        try {
            DreamSynth.write(out, DreamSynth.Shape.byId(shape), seed);
        } catch (IOException e) {
            throw new CliFailure(CliFailure.FAILED, "cannot write " + out + ": " + e.getMessage());
        }
        cli.out().println("wrote " + out);
        return 0;
    }
}
