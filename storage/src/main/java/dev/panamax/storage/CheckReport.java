package dev.panamax.storage;

import java.util.ArrayList;
import java.util.List;

/**
 * What {@code check} found: corruptions (metadata that is wrong and may lose data), leaks (space
 * marked used that nothing references; harmless, reclaimed by repair) and notes.
 */
public final class CheckReport {
    /** Keeps output bounded on a badly damaged image; the counts stay exact. */
    private static final int MAX_MESSAGES = 1000;

    public enum Kind { CORRUPTION, LEAK, NOTE }

    public record Problem(Kind kind, String message) {}

    private final List<Problem> problems = new ArrayList<>();
    private long corruptions, leaks;

    public void corruption(String message) {
        corruptions++;
        add(Kind.CORRUPTION, message);
    }

    public void leak(String message) {
        leaks++;
        add(Kind.LEAK, message);
    }

    public void note(String message) {
        add(Kind.NOTE, message);
    }

    private void add(Kind kind, String message) {
        if (problems.size() < MAX_MESSAGES) problems.add(new Problem(kind, message));
    }

    public long corruptions() {
        return corruptions;
    }

    /** Leaked clusters (or blocks). */
    public long leaks() {
        return leaks;
    }

    public List<Problem> problems() {
        return List.copyOf(problems);
    }

    public boolean isClean() {
        return corruptions == 0 && leaks == 0;
    }

    /** The exit status convention of {@code qemu-img check}: 0 clean, 2 corruptions, 3 only leaks. */
    public int exitStatus() {
        return corruptions > 0 ? 2 : leaks > 0 ? 3 : 0;
    }
}
