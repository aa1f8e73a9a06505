package io.stepstream.engine.tokenizer;

/** Text the test BPE vocabulary is trained on: plain English written for this project, code, numbers, and samples of
 * other scripts and emoji so that multi-byte characters get merges of their own. */
final class TrainingText {
    private TrainingText() {
    }

    /** The corpus plus made-up words and numbers from a fixed seed, enough text for a few thousand merges. */
    static String corpus() {
        String[] syllables = {"ka", "lo", "mi", "tre", "sto", "an", "ing", "er", "ve", "qu", "zu", "pha", "nor",
                "dal", "ix", "ou", "ei", "sch", "th", "gr", "é", "ö", "ñ", "ß", "水", "火", "ル", "ン", "ж", "ш"};
        String[] glue = {" ", " ", " ", " ", ", ", ". ", "\n", " - ", "'s ", "'ll ", " (", ") ", ": ", "\t"};
        java.util.Random r = new java.util.Random(20240517);
        StringBuilder b = new StringBuilder(CORPUS);
        for (int w = 0; w < 6000; w++) {
            if (r.nextInt(10) == 0) {
                b.append(r.nextInt(r.nextBoolean() ? 1000 : 1_000_000));
            } else {
                int n = 1 + r.nextInt(4);
                for (int i = 0; i < n; i++) {
                    String s = syllables[r.nextInt(syllables.length)];
                    b.append(i == 0 && r.nextInt(5) == 0 ? s.toUpperCase(java.util.Locale.ROOT) : s);
                }
            }
            b.append(glue[r.nextInt(glue.length)]);
        }
        return b.toString();
    }

    static final String CORPUS = """
            The river town woke slowly. Fishermen pulled their boats onto the gravel, and the baker opened her \
            shutters before the sun was over the hills. It's a quiet place, and they're proud of it: nobody's in \
            a hurry, and you'll hear the church bell long before you see a car. We've lived here for years; I'd \
            never trade it for the city.
            On market days the square fills with stalls. There are apples and pears, cheese wrapped in paper, \
            honey in small jars, and a man who sells knives he sharpens while you wait. Children run between the \
            tables, and the dogs follow the children. When it rains, everyone crowds under the old stone arcade \
            and talks about the weather, the harvest, the prices, and the neighbours who moved away.
            The school has three classrooms and a garden. In spring the pupils plant beans, tomatoes and \
            sunflowers; in autumn they weigh the pumpkins and write the numbers in a notebook: 12 kg, 7.5 kg, \
            103 kg for the record one in 2019. The teacher says the record won't be broken, but she doesn't \
            sound sure.
            "Where are you going?" asked the old man. "To the station," said the girl, "the train leaves at \
            10:45 and I can't miss it!" He laughed. "Then you'd better run."
            Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 42 100 256 1000 1024 2048 4096 65536 1000000 3.14159 2.71828 \
            -17 +23 1,234,567 12:30 2024-05-17 99% $19.99 #1 (555) 867-5309.
            def tokenize(text: str) -> list[int]:
                ids = []
                for word in split(text):
                    ids.extend(encode(word))  # merge pairs by rank
                return ids

            for (int i = 0; i < n; i++) {
                sum += values[i] * weights[i];
            }
            if (x != null && x.isEmpty()) { return "empty"; }
            Français : le café est très bon, mais l'hôtel était fermé. Où est la gare ? Déjà vu, naïve, \
            façade, élève, cœur.
            Deutsch: Größe, Straße, Übung, schön, Mädchen, Fußball, über, Äpfel und Öl.
            Español: ¿Dónde está la biblioteca? ¡Qué bueno! El niño comió piña y jalapeños.
            Русский: Привет, как дела? Москва, Санкт-Петербург, книга, вода, время.
            Ελληνικά: Καλημέρα, ευχαριστώ, θάλασσα, φιλοσοφία.
            中文：你好，世界。我们今天去公园散步，天气很好。北京，上海，学习，中国人。
            日本語：こんにちは、世界。東京は大きな都市です。ありがとうございます。カタカナ、ひらがな。
            한국어: 안녕하세요, 세계. 서울은 큰 도시입니다. 감사합니다.
            العربية: مرحبا بالعالم، كيف حالك؟ شكرا جزيلا. القاهرة والرياض.
            עברית: שלום עולם, מה שלומך? תודה רבה. ירושלים.
            हिन्दी: नमस्ते दुनिया, आप कैसे हैं? धन्यवाद।
            Emoji: 😀 😃 😄 😁 🎉 🎉 👍 👍🏽 ❤️ 🔥 🚀 🌍 🇺🇸 🇩🇪 👨‍👩‍👧 ✨ ✅
            Symbols: © ® ™ € £ ¥ § ¶ † ‡ • … ‰ ′ ″ ← → ↑ ↓ ∑ ∫ √ ∞ ≈ ≠ ≤ ≥ ± × ÷ ½ ¼ ¾ ² ³ °C
            Whitespace:\tcolumns\tseparated\tby\ttabs
                indented by four
            trailing spaces here   
            Windows line\r
            ends\r
            MiXeD CaSe, ALL CAPS, lower case, Title Case, camelCase, snake_case, kebab-case, SCREAMING_SNAKE.
            I'M, YOU'LL, THEY'RE, WE'VE, SHE'D, IT'S, DON'T, o'clock, rock 'n' roll.
            https://example.org/path?query=1&x=y user@example.com C:\\Users\\name\\file.txt
            """;
}
