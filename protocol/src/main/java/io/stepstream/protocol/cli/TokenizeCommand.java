package io.stepstream.protocol.cli;

import io.stepstream.engine.Model;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.tokenizer.VocabTokenizer;
import java.util.Arrays;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/** {@code stepstream tokenize}: a text's token ids as one JSON array, as llama.cpp tokenizes a prompt. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = "Print the token ids of TEXT as a JSON array (BOS per the model file's rules).")
final class TokenizeCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--model", required = true, paramLabel = "M", description = "Embedded model name or model file.")
    String model;

    @Option(names = "--no-bos", description = "Do not add BOS even when the file asks for it.")
    boolean noBos;

    @Parameters(index = "0", paramLabel = "TEXT", description = "The text.")
    String text;

    @Override
    public Integer call() {
        int[] ids;
        try (Model m = io.stepstream.engine.Models.load(model, ModelOptions.defaults().withComputeThreads(1))) {
            Tokenizer tok = m.tokenizer();
            if (tok instanceof VocabTokenizer v) {
                // llama_tokenize(add_special = true, parse_special = true), as llama.cpp's tools do for a prompt
                ids = v.tokenize(text, !noBos, true);
            } else {
                ids = tok.encode(text, !noBos, false);
            }
        } catch (ModelLoadException e) {
            throw CliFailure.badInput(CliFailure.oneLine(e.getMessage()));
        }
        cli.out().println(Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(",", "[", "]")));
        return 0;
    }
}
