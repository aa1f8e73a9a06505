package io.stepstream.loadtest;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** The prompts a run cycles through: one per line from a file, or a small built-in set of story openings. */
public final class Prompts {

    private static final List<String> STORY_OPENINGS = List.of(
            "Once upon a time, in a village at the edge of a pine forest, there lived a girl who",
            "The lighthouse keeper had not seen a ship in eleven days when",
            "Tom found a small brass key under the kitchen floor, and",
            "Every morning the old baker left one loaf on the windowsill, because",
            "The robot woke up in an empty classroom and wondered why",
            "On the first warm day of spring, the two rabbits decided to",
            "Nobody in the town knew where the red balloon came from, but",
            "Lily's grandmother kept a jar of buttons that, she said,");

    private Prompts() {
    }

    public static List<String> builtIn() {
        return STORY_OPENINGS;
    }

    /** Reads one prompt per non-blank line of a UTF-8 file. */
    public static List<String> fromFile(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read --prompts file " + file + ": " + e.getMessage(), e);
        }
        List<String> prompts = lines.stream().filter(line -> !line.isBlank()).toList();
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("--prompts file " + file + " has no non-blank line");
        }
        return prompts;
    }
}
