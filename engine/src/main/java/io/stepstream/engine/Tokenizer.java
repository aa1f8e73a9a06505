package io.stepstream.engine;

/** Text to token ids and back. Implementations are immutable and thread-safe. */
public interface Tokenizer {
    int vocabSize();

    int bosId();

    int eosId();

    /** Encodes text exactly as the model's reference implementation does, optionally with BOS/EOS. */
    int[] encode(String text, boolean addBos, boolean addEos);

    /**
     * The raw bytes a token stands for, as the reference decoder emits them after {@code previous}
     * (llama2.c strips the leading space of the first piece after BOS; byte-fallback tokens give one byte).
     */
    byte[] decodeBytes(int previous, int token);

    /** A fresh stateful decoder that turns a token stream into complete UTF-8 text pieces. */
    default StreamingDecoder streamingDecoder() {
        return new StreamingDecoder(this);
    }
}
