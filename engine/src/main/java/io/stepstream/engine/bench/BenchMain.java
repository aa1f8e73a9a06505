package io.stepstream.engine.bench;

import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tools.SynthModel;
import io.stepstream.engine.tools.SynthShape;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The CPU bench and the synthetic-model writer without the CLI's module, for hosts where only the engine jar and
 * its dependencies travel (the GPU machine's bundle): its 16 quiet cores give the llama.cpp side-by-side a
 * steadier machine than the shared development VM.
 *
 * <pre>
 * BenchMain synth SHAPE TYPE VOCAB OUT.gguf
 * BenchMain bench MODEL.gguf BATCHES(1,8,32) TOKENS PROMPT_TOKENS THREADS [llama-cpp]
 * </pre>
 * The same {@link Bench} and {@link BenchTable} as {@code stepstream bench}; the same {@link SynthModel} as
 * {@code stepstream synth} (seed 1).
 */
public final class BenchMain {
    private BenchMain() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 5 && args[0].equals("synth")) {
            TensorType type = TensorType.valueOf(args[2].toUpperCase(Locale.ROOT));
            SynthModel.writeGguf(Path.of(args[4]), SynthShape.byId(args[1]), type, Integer.parseInt(args[3]), 1);
            System.out.println("wrote " + args[4]);
            return;
        }
        if (args.length >= 6 && args.length <= 8 && args[0].equals("bench")) {
            List<Integer> batches = new ArrayList<>();
            Arrays.stream(args[2].split(",")).map(String::strip).map(Integer::parseInt).forEach(batches::add);
            boolean llamaCpp = false;
            int repeats = 1;
            for (int i = 6; i < args.length; i++) {
                if (args[i].equals("llama-cpp")) {
                    llamaCpp = true;
                } else if (args[i].startsWith("repeat=")) {
                    repeats = Integer.parseInt(args[i].substring("repeat=".length()));
                } else {
                    throw new IllegalArgumentException("unknown bench option " + args[i]);
                }
            }
            Bench.Options o = Bench.Options.of(Path.of(args[1]), batches, Integer.parseInt(args[3]),
                    Integer.parseInt(args[4]), Integer.parseInt(args[5]), llamaCpp, Bench.DEFAULT_WARMUP_SECONDS,
                    repeats);
            Bench.Report r = Bench.run(o, line -> System.err.println("bench: " + line));
            System.out.print(BenchTable.text(r));
            return;
        }
        System.err.println("usage: BenchMain synth SHAPE TYPE VOCAB OUT.gguf\n"
                + "       BenchMain bench MODEL.gguf BATCHES TOKENS PROMPT_TOKENS THREADS [llama-cpp] [repeat=N]");
        System.exit(2);
    }
}
