package io.stepstream.engine.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Inputs that have tripped tokenizers: whitespace runs, line ends, digits, contractions, scripts, emoji, specials. */
final class TrickyStrings {
    private TrickyStrings() {
    }

    static final List<String> FIXED = List.of(
            "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \r\n ", "\r", " \n \n ",
            "Hello world", " Hello world", "Hello  world", "Hello world ", "Hello world  ", "   Hello",
            "hello\tworld", "line1\nline2\r\nline3", "a  b   c    d     e", "trailing\n", "\n\nleading",
            "   \n   ", "\t\t\tx", "x \t y", "end. \n\n Next",
            "1", "12", "123", "1234", "12345", "123456", "1234567", "123456789012", "3.14159", "1,000,000",
            "x1y22z333w4444", "2024-05-17", " 42", "a 1 22 333", "٣٤٥ ١٢", "½ ¾ ² ³ Ⅻ",
            "I'm", "you'll", "they're", "we've", "she'd", "it's", "IT'S", "I'M HERE", "'s", "'", "''", "don't",
            "O'Neil's", "rock 'n' roll", "'ll 've 're", "it' s", "x'S", "x'Ll",
            "café", "naïve résumé", "Ünïcödé", "a\u0301 combining e\u0301", "Straße", "cœur",
            "日本語のテキスト", "中文字符，标点。", "한국어 텍스트", "مرحبا بالعالم", "שלום עולם", "Привет мир", "Ελληνικά",
            "नमस्ते दुनिया", "mixed English 和 中文 and العربية",
            "emoji 😀🎉👍🏽", "👨‍👩‍👧‍👦", "flags 🇺🇸🇩🇪", "❤️🔥", "math ∑∫√∞ ≤≥", "© ® ™ € £",
            "\u00A0nbsp\u00A0", "\u3000ideographic\u3000space", "zero\u200Bwidth", "\u0378 unassigned",
            "\u2028line sep", "\u0085next line", "x\u000By\u000Cz", "\u0001\u0002 controls", "\u007F del",
            "!!!", "...", "?!", "hello!!! world???", "$100 & 50% off", "e-mail: a.b@c.de", "C:\\path\\to",
            "{\"json\": [1, 2, 3]}", "ALLCAPS and MiXeD", "    indented", "def f(x):\n    return x**2  # c\n",
            "a.b,c;d:e", " . , ? !", "hello , world . how ' s it ?",
            "<s>", "</s>", "<unk>", "<s>hello</s>", "text <s> more", "<s><s>", "  <s>  ", "<0x41>", "<0x0A>",
            "lll", "llll", "ppp", "ooooo", "balll", "hoooop", "pppp llll",
            "<|begin_of_text|>Hello", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
            "<|im_start|>user", "x <|eot_id|> y", "special<|im_end|><|im_end|>", "<|im_start|>systemx",
            "<|end_of_text|>", "<|begin_of_text|><|begin_of_text|>", "<tool_call>{\"a\":1}</tool_call>",
            " <tool_call> ", "<|im_start", "|>", "zyxw zyxw", " zyxw", "qqqq qqqq", "x      y", "      ");

    /** Random strings over a pool that mixes all of the above; seed given so a failure can be replayed. */
    static List<String> random(long seed, int count) {
        String[] pool = {" ", " ", " ", "  ", "\t", "\n", "\r\n", "a", "e", "the", "The", "ing", "Hello", "world",
                "x", "Q", "0", "7", "42", "123", "9999", ".", ",", "!", "?", "'", "'s", "'ll", "-", "_", "(", ")",
                "\"", "é", "ü", "ß", "ñ", "œ", "日", "本", "中", "文", "한", "م", "ر", "ש", "П", "ж", "λ", "न",
                "😀", "🎉", "👍🏽", "🇺🇸", "\u200B", "\u00A0", "\u3000", "½", "€", "∑", "\u0301", "<s>", "</s>",
                "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<tool_call>", "<", ">", "|", "zyxw", "qqqq", "l", "ll", "o", "p"};
        Random r = new Random(seed);
        List<String> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            StringBuilder s = new StringBuilder();
            int parts = 1 + r.nextInt(24);
            for (int p = 0; p < parts; p++) {
                s.append(pool[r.nextInt(pool.length)]);
            }
            out.add(s.toString());
        }
        return out;
    }
}
