package dev.panamax.testing;

import java.io.IOException;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.UnionLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Evaluates C constant expressions (sizeof, offsetof, macros) by compiling and running a program with gcc. */
public final class CHeaders {
    private CHeaders() {}

    /**
     * Returns, for each expression, where Java's {@code expected} value differs from C's, a line
     * saying so; empty when all agree.
     */
    public static List<String> mismatches(Path workDir, List<String> includes, Map<String, Long> expected)
            throws IOException, InterruptedException {
        List<String> lines = new ArrayList<>(List.of("#define _GNU_SOURCE", "#include <stdio.h>", "#include <stddef.h>"));
        includes.forEach(h -> lines.add("#include <" + h + ">"));
        lines.add("int main(void) {");
        for (String expression : expected.keySet()) {
            lines.add("  printf(\"%lld\\n\", (long long)(" + expression + "));");
        }
        lines.add("  return 0;\n}");
        Path source = workDir.resolve("facts.c");
        Path binary = workDir.resolve("facts");
        Files.write(source, lines);
        String compiler = run(workDir, "gcc", "-Wall", "-Werror", "-o", binary.toString(), source.toString());
        if (!Files.exists(binary)) {
            throw new AssertionError("gcc failed:\n" + compiler);
        }
        List<String> printed = run(workDir, binary.toString()).lines().toList();
        if (printed.size() != expected.size()) {
            throw new AssertionError("expected " + expected.size() + " values, the program printed " + printed.size());
        }
        Map<String, Long> actual = new LinkedHashMap<>();
        int i = 0;
        for (String expression : expected.keySet()) {
            actual.put(expression, Long.parseLong(printed.get(i++).trim()));
        }
        List<String> mismatches = new ArrayList<>();
        expected.forEach((expression, value) -> {
            if (!value.equals(actual.get(expression))) {
                mismatches.add(expression + ": Java says " + value + ", C says " + actual.get(expression));
            }
        });
        return mismatches;
    }

    /**
     * Adds the size of {@code struct} (named as its C struct) and the offset and size of each named
     * member, nested ones included, to {@code facts}. Unnamed unions are anonymous in C, so they add
     * no path step; padding is not checked.
     */
    public static void addStruct(Map<String, Long> facts, StructLayout struct) {
        String type = "struct " + struct.name().orElseThrow();
        facts.put("sizeof(" + type + ")", struct.byteSize());
        addMembers(facts, type, struct, "", 0);
    }

    private static void addMembers(Map<String, Long> facts, String type, GroupLayout group, String prefix, long base) {
        long offset = base;
        for (MemoryLayout member : group.memberLayouts()) {
            if (!(member instanceof PaddingLayout)) {
                String path = member.name().map(n -> prefix + n).orElse(null);
                if (path != null) {
                    facts.put("offsetof(" + type + ", " + path + ")", offset);
                    facts.put("sizeof(((" + type + " *)0)->" + path + ")", member.byteSize());
                }
                if (member instanceof GroupLayout nested) {
                    addMembers(facts, type, nested, path == null ? prefix : path + ".", offset);
                }
            }
            if (!(group instanceof UnionLayout)) {
                offset += member.byteSize();
            }
        }
    }

    private static String run(Path dir, String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(command[0] + " timed out");
        }
        return output;
    }
}
