package io.stepstream.loadtest;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The JSON form of a {@link LoadReport}: snake_case keys, pretty-printed, readable back into the record. */
public final class ReportJson {

    private static final ObjectMapper MAPPER = new ObjectMapper()
            .setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    private ReportJson() {
    }

    public static String toJson(LoadReport report) {
        try {
            return MAPPER.writeValueAsString(report);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot serialise the load report", e);
        }
    }

    public static LoadReport fromJson(String json) {
        try {
            return MAPPER.readValue(json, LoadReport.class);
        } catch (IOException e) {
            throw new UncheckedIOException("not a load report: " + e.getMessage(), e);
        }
    }

    public static void write(LoadReport report, Path file) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Files.writeString(file, toJson(report) + System.lineSeparator());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write --json-out file " + file + ": " + e.getMessage(), e);
        }
    }

    public static LoadReport read(Path file) {
        try {
            return fromJson(Files.readString(file));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read load report " + file + ": " + e.getMessage(), e);
        }
    }
}
