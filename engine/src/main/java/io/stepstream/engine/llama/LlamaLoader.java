package io.stepstream.engine.llama;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.format.gguf.GgufFile;
import io.stepstream.engine.format.safetensors.SafetensorsCheckpoint;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.WeightMatrix;
import io.stepstream.engine.tokenizer.HfTokenizerJson;
import io.stepstream.engine.tokenizer.TokenizerSpec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Builds a {@link LlamaModel} from each file kind: GGUF, a Hugging Face safetensors folder, llama2.c weights. */
public final class LlamaLoader {
    private LlamaLoader() {
    }

    /** A GGUF file: weights stay mapped (closed with the model), tokenizer from tokenizer.ggml.*. */
    public static LlamaModel gguf(Path file, ModelOptions options) {
        GgufFile f = GgufFile.open(file);
        try {
            LlamaWeights weights = GgufLlamaLoader.read(f);
            Tokenizer tokenizer = TokenizerSpec.fromGguf(f).create();
            checkVocab(f.name(), tokenizer, weights);
            return new LlamaModel(modelName(file), weights, tokenizer, options, f);
        } catch (RuntimeException | Error e) {
            f.close();
            throw e;
        }
    }

    /**
     * A Hugging Face folder (or its model.safetensors / index file): config.json, the weights, and a tokenizer
     * beside them: tokenizer.json (byte-level BPE, see {@link HfTokenizerJson}) or a llama2.c tokenizer.bin.
     */
    public static LlamaModel safetensors(Path path, ModelOptions options) {
        Path dir = Files.isDirectory(path) ? path : path.toAbsolutePath().getParent();
        Path configFile = dir.resolve("config.json");
        if (!Files.isRegularFile(configFile)) {
            throw new ModelLoadException(dir + ": config.json not found");
        }
        byte[] json;
        try {
            json = Files.readAllBytes(configFile);
        } catch (IOException e) {
            throw new ModelLoadException(configFile + ": cannot read: " + e.getMessage(), e);
        }
        SafetensorsCheckpoint checkpoint = SafetensorsCheckpoint.open(path);
        try {
            LlamaWeights weights = SafetensorsLlamaLoader.read(configFile.toString(), json, checkpoint);
            Tokenizer tokenizer = hfTokenizer(dir, weights.config().vocabSize());
            checkVocab(dir.toString(), tokenizer, weights);
            String name = dir.toAbsolutePath().normalize().getFileName().toString();
            return new LlamaModel(name, weights, tokenizer, options, checkpoint);
        } catch (RuntimeException | Error e) {
            checkpoint.close();
            throw e;
        }
    }

    private static Tokenizer hfTokenizer(Path dir, int vocab) {
        if (Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            return HfTokenizerJson.read(dir, vocab).create();
        }
        Path bin = dir.resolve("tokenizer.bin");
        if (Files.isRegularFile(bin)) {
            return Llama2Tokenizer.read(bin, vocab);
        }
        throw new ModelLoadException(dir + ": no tokenizer.json or tokenizer.bin beside config.json");
    }

    /** llama2.c weights (float32 arrays, wrapped in place) with their tokenizer. */
    public static LlamaModel llama2c(String name, Llama2Weights w, Tokenizer tokenizer, ModelOptions options) {
        return new LlamaModel(name, fromLlama2c(w), tokenizer, options, null);
    }

    /** llama2.c's layout: interleaved RoPE (run.c rotates adjacent pairs), no biases, no scaling. */
    public static LlamaWeights fromLlama2c(Llama2Weights w) {
        var c = w.config();
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        WeightMatrix embedding = WeightMatrix.f32(w.tokenEmbedding(), c.vocabSize(), dim);
        List<LlamaWeights.Layer> layers = new ArrayList<>();
        for (int l = 0; l < c.nLayers(); l++) {
            layers.add(new LlamaWeights.Layer(w.rmsAtt()[l],
                    WeightMatrix.f32(w.wq()[l], dim, dim),
                    WeightMatrix.f32(w.wk()[l], kvDim, dim),
                    WeightMatrix.f32(w.wv()[l], kvDim, dim),
                    null, null, null,
                    WeightMatrix.f32(w.wo()[l], dim, dim),
                    w.rmsFfn()[l],
                    WeightMatrix.f32(w.w1()[l], hidden, dim),
                    WeightMatrix.f32(w.w3()[l], hidden, dim),
                    WeightMatrix.f32(w.w2()[l], dim, hidden)));
        }
        WeightMatrix output = c.sharedClassifier() ? embedding : WeightMatrix.f32(w.classifier(), c.vocabSize(), dim);
        return new LlamaWeights(c, LlamaFamily.LLAMA, RopeLayout.INTERLEAVED, null, embedding, layers, w.rmsFinal(),
                output);
    }

    private static void checkVocab(String file, Tokenizer tokenizer, LlamaWeights weights) {
        if (tokenizer.vocabSize() > weights.config().vocabSize()) {
            throw new ModelLoadException(file + ": the tokenizer has " + tokenizer.vocabSize()
                    + " tokens but the embedding only " + weights.config().vocabSize() + " rows");
        }
    }

    /** The file name without its extension. */
    private static String modelName(Path file) {
        String n = file.getFileName().toString();
        int dot = n.lastIndexOf('.');
        return dot > 0 ? n.substring(0, dot) : n;
    }
}
