/**
 * The tokenizers of the llama.cpp world, built from plain data ({@link io.stepstream.engine.tokenizer.TokenizerSpec})
 * so GGUF and tokenizer.json loaders only map keys: SentencePiece BPE with scores and byte fallback, and GPT-2 style
 * byte-level BPE with merges and the Llama 3 / Qwen2 pre-tokenizers. Both reproduce llama.cpp's ids (b4916, the build
 * the tests compare against), including how it finds special tokens in the text and how it detokenizes.
 */
package io.stepstream.engine.tokenizer;
