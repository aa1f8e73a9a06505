package io.stepstream.protocol.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import io.stepstream.actors.ModelInfo;
import io.stepstream.actors.ModelNotFoundException;
import io.stepstream.protocol.v1.ModelCard;
import java.io.PrintStream;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Supplier;

/** Loading models into the local engine, and printing model lists. */
final class Models {
    private Models() {
    }

    /**
     * Loads a model, turning any failure into one line that names what was asked for (the file, for a path)
     * and the problem. A model that cannot be loaded is bad input: the user named it.
     */
    static ModelInfo load(LocalEngine engine, String nameOrPath) {
        return load(engine, nameOrPath, null, null);
    }

    /**
     * Loads a model where {@code placement} says (null: the engine's own CPU loader). The engine decides the kind
     * (reading a folder's config.json once): a LLaDA-style diffusion model goes on the device too, with its SparseD
     * and cached steps on the CPU; a Dream model is refused on opencl with a message that says so. {@code note}
     * hears where a model other than the placement's backend landed (null: nothing to say).
     */
    static ModelInfo load(LocalEngine engine, String nameOrPath, BackendMixin placement, Consumer<String> note) {
        if (placement != null && !placement.isEngineDefault()) {
            var options = placement.options();
            ModelInfo info = loadWith(nameOrPath, () -> engine.load(nameOrPath, placement.backend(), options));
            if (note != null && !info.backend().equals(placement.backend())) {
                note.accept(info.name() + ": served on the " + info.backend() + " backend");
            }
            return info;
        }
        return loadWith(nameOrPath, () -> engine.load(nameOrPath));
    }

    private static ModelInfo loadWith(String nameOrPath, Supplier<ModelInfo> loader) {
        try {
            return loader.get();
        } catch (ModelNotFoundException e) {
            throw CliFailure.badInput("model: no model named '" + nameOrPath + "' is known");
        } catch (RuntimeException e) {
            String problem = e.getMessage() == null ? e.getClass().getSimpleName() : CliFailure.oneLine(e.getMessage());
            // Loader messages usually start with the file; name it once either way.
            throw CliFailure.badInput("cannot load model: "
                    + (problem.contains(nameOrPath) ? problem : nameOrPath + ": " + problem));
        }
    }

    static void print(List<ModelCard> models, boolean json, PrintStream out) {
        if (json) {
            var mapper = new ObjectMapper();
            ArrayNode array = mapper.createArrayNode();
            for (ModelCard m : models) {
                var card = array.addObject()
                        .put("name", m.getName())
                        .put("kind", m.getKind())
                        .put("context_length", m.getContextLength())
                        .put("vocab_size", m.getVocabSize())
                        .put("backend", m.getBackend())
                        .put("device", m.getDevice())
                        .put("is_default", m.getIsDefault());
                if (m.hasPatternCache()) {
                    var c = m.getPatternCache();
                    card.putObject("pattern_cache")
                            .put("hits", c.getHits())
                            .put("misses", c.getMisses())
                            .put("bytes_in_use", c.getBytesInUse())
                            .put("cap_bytes", c.getCapBytes())
                            .put("entries", c.getEntries())
                            .put("evictions", c.getEvictions())
                            .put("refusals", c.getRefusals());
                }
            }
            out.println(array.toString());
            return;
        }
        String format = "%-24s %-15s %8s %8s %-10s %s%n";
        out.printf(format, "NAME", "KIND", "CONTEXT", "VOCAB", "BACKEND", "DEVICE");
        for (ModelCard m : models) {
            out.printf(format, m.getName() + (m.getIsDefault() ? " *" : ""), m.getKind(), m.getContextLength(),
                    m.getVocabSize(), m.getBackend(), m.getDevice());
            if (m.hasPatternCache()) {
                var c = m.getPatternCache();
                out.printf("  sparsed pattern cache: %d/%d bytes, %d patterns, %d hits, %d misses, %d evictions,"
                                + " %d refusals%n", c.getBytesInUse(), c.getCapBytes(), c.getEntries(), c.getHits(),
                        c.getMisses(), c.getEvictions(), c.getRefusals());
            }
        }
        out.flush();
    }
}
