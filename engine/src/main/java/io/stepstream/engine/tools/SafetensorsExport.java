package io.stepstream.engine.tools;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama.LlamaFamily;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Writes a Llama-family model as one F32 safetensors file under Hugging Face's tensor names. The header is
 * computed from the shapes first, then each tensor is fetched and streamed in turn.
 */
public final class SafetensorsExport {
    private SafetensorsExport() {
    }

    /** Hugging Face's name for a GGUF tensor name. */
    static String hfName(String gguf) {
        return switch (gguf) {
            case "token_embd.weight" -> "model.embed_tokens.weight";
            case "output_norm.weight" -> "model.norm.weight";
            case "output.weight" -> "lm_head.weight";
            default -> {
                int dot = gguf.indexOf('.', 4);
                String layer = "model.layers." + gguf.substring(4, dot) + ".";
                yield layer + switch (gguf.substring(dot + 1)) {
                    case "attn_norm.weight" -> "input_layernorm.weight";
                    case "attn_q.weight" -> "self_attn.q_proj.weight";
                    case "attn_k.weight" -> "self_attn.k_proj.weight";
                    case "attn_v.weight" -> "self_attn.v_proj.weight";
                    case "attn_q.bias" -> "self_attn.q_proj.bias";
                    case "attn_k.bias" -> "self_attn.k_proj.bias";
                    case "attn_v.bias" -> "self_attn.v_proj.bias";
                    case "attn_output.weight" -> "self_attn.o_proj.weight";
                    case "ffn_norm.weight" -> "post_attention_layernorm.weight";
                    case "ffn_gate.weight" -> "mlp.gate_proj.weight";
                    case "ffn_up.weight" -> "mlp.up_proj.weight";
                    case "ffn_down.weight" -> "mlp.down_proj.weight";
                    default -> throw new IllegalArgumentException("no Hugging Face name for " + gguf);
                };
            }
        };
    }

    /**
     * @param interleavedSource the q/k rows of {@code source} are for interleaved RoPE (llama2.c, GGUF llama):
     *                          permute them to rotate-half order
     */
    public static void write(Path file, ModelConfig c, LlamaFamily family, LlamaTensors.Source source,
                             boolean interleavedSource) throws IOException {
        List<LlamaTensors.Entry> layout = LlamaTensors.layout(c, family, false);
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = json.createObjectNode();
        long offset = 0;
        for (LlamaTensors.Entry t : layout) {
            ObjectNode e = header.putObject(hfName(t.name()));
            e.put("dtype", "F32");
            var shape = e.putArray("shape");
            if (!t.vector()) {
                shape.add(t.rows());
            }
            shape.add(t.cols());
            long bytes = t.elements() * Float.BYTES;
            e.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] headerBytes = json.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padded = (headerBytes.length + 7) / 8 * 8;
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 20)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
            out.write(len.array());
            out.write(headerBytes);
            for (int i = headerBytes.length; i < padded; i++) {
                out.write(' ');
            }
            for (LlamaTensors.Entry t : layout) {
                float[] v = source.values(t);
                if (interleavedSource && (t.name().endsWith("attn_q.weight") || t.name().endsWith("attn_k.weight"))) {
                    v = toRotateHalf(v, t.rows() / c.headSize(), c.headSize(), t.cols());
                }
                ByteBuffer b = ByteBuffer.allocate(v.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                b.asFloatBuffer().put(v);
                out.write(b.array());
            }
        }
    }

    /**
     * Reorders each head's rows from interleaved pairs (2i, 2i+1) to halves (i, i + headSize/2): rotate-half RoPE
     * on the result equals interleaved RoPE on the input (Hugging Face's conversion of Meta's Llama weights).
     */
    static float[] toRotateHalf(float[] w, int heads, int headSize, int cols) {
        float[] out = new float[w.length];
        int half = headSize / 2;
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < half; i++) {
                for (int part = 0; part < 2; part++) {
                    int from = h * headSize + 2 * i + part;
                    int to = h * headSize + part * half + i;
                    System.arraycopy(w, from * cols, out, to * cols, cols);
                }
            }
        }
        return out;
    }
}
