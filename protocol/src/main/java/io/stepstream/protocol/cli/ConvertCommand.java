package io.stepstream.protocol.cli;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tools.Llama2cConvert;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/** {@code stepstream convert}: a llama2.c checkpoint to GGUF or to a Hugging Face safetensors folder. */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Convert a llama2.c checkpoint (tokenizer beside it) to GGUF or to a safetensors folder.")
final class ConvertCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--to", required = true, paramLabel = "gguf|safetensors", description = "Output format.")
    String to;

    @Option(names = "--type", paramLabel = "f32|f16|q8_0|q4_0|q4_k|q6_k", defaultValue = "f32",
            description = "GGUF weight encoding (default f32; rows that are no whole number of blocks stay f16).")
    String type;

    @Option(names = "--tokenizer", paramLabel = "FILE",
            description = "llama2.c tokenizer (default: tokenizer.bin or the single tok*.bin beside IN).")
    Path tokenizer;

    @Parameters(index = "0", paramLabel = "IN", description = "llama2.c checkpoint (.bin).")
    Path in;

    @Parameters(index = "1", paramLabel = "OUT", description = "GGUF file, or folder for safetensors.")
    Path out;

    @Override
    public Integer call() {
        try {
            if (!Files.isRegularFile(in)) {
                throw CliFailure.badInput(in + ": no such file");
            }
            Path tok = tokenizer != null ? tokenizer : io.stepstream.engine.Models.findTokenizerBeside(in);
            Llama2Weights w = Llama2Checkpoint.read(in);
            Llama2Tokenizer t = Llama2Tokenizer.read(tok, w.config().vocabSize());
            String name = in.getFileName().toString().replaceFirst("\\.bin$", "");
            switch (to.toLowerCase(Locale.ROOT)) {
                case "gguf" -> Llama2cConvert.toGguf(w, t, name, parseType(type), out);
                case "safetensors" -> {
                    if (!type.equalsIgnoreCase("f32")) {
                        throw CliFailure.badInput("--type " + type + ": safetensors output is f32 only");
                    }
                    Llama2cConvert.toSafetensors(w, tok, out);
                }
                default -> throw CliFailure.badInput("--to " + to + ": expected gguf or safetensors");
            }
        } catch (ModelLoadException e) {
            throw CliFailure.badInput(CliFailure.oneLine(e.getMessage()));
        } catch (IOException e) {
            throw new CliFailure(CliFailure.FAILED, "cannot write " + out + ": " + e.getMessage());
        }
        cli.out().println("wrote " + out);
        return 0;
    }

    static TensorType parseType(String type) {
        return switch (type.toLowerCase(Locale.ROOT)) {
            case "f32" -> TensorType.F32;
            case "f16" -> TensorType.F16;
            case "q8_0" -> TensorType.Q8_0;
            case "q4_0" -> TensorType.Q4_0;
            case "q4_k" -> TensorType.Q4_K;
            case "q6_k" -> TensorType.Q6_K;
            default -> throw CliFailure.badInput("--type " + type + ": expected f32, f16, q8_0, q4_0, q4_k or q6_k");
        };
    }
}
