package dev.panamax.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** What {@code /proc/self} shows of this process, as a user checks pinning and huge pages. */
public final class ProcSelf {
    private ProcSelf() {}

    /** The {@code KernelPageSize} of the mapping that starts at {@code address}, from {@code /proc/self/smaps} ({@code 2048 kB}). */
    public static String kernelPageSize(long address) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc/self/smaps"));
        for (int i = 0; i < lines.size(); i++) {
            String[] range = lines.get(i).split(" ", 2)[0].split("-");
            if (range.length == 2 && range[0].matches("[0-9a-f]+") && Long.parseUnsignedLong(range[0], 16) == address) {
                for (int j = i + 1; j < lines.size(); j++) {
                    if (lines.get(j).startsWith("KernelPageSize:")) {
                        return lines.get(j).substring("KernelPageSize:".length()).strip();
                    }
                }
            }
        }
        throw new AssertionError("no mapping starts at 0x" + Long.toHexString(address) + " in /proc/self/smaps");
    }

    /** The {@code Rss} in KiB of the mapping that holds {@code address}, from {@code /proc/self/smaps}. */
    public static long residentKib(long address) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc/self/smaps"));
        for (int i = 0; i < lines.size(); i++) {
            String[] range = lines.get(i).split(" ", 2)[0].split("-");
            if (range.length == 2 && range[0].matches("[0-9a-f]+") && range[1].matches("[0-9a-f]+")
                    && Long.parseUnsignedLong(range[0], 16) <= address && address < Long.parseUnsignedLong(range[1], 16)) {
                for (int j = i + 1; j < lines.size(); j++) {
                    if (lines.get(j).startsWith("Rss:")) {
                        return Long.parseLong(lines.get(j).substring("Rss:".length()).replace("kB", "").strip());
                    }
                }
            }
        }
        throw new AssertionError("no mapping holds 0x" + Long.toHexString(address) + " in /proc/self/smaps");
    }

    /** A thread's allowed CPUs as Linux shows them: {@code Cpus_allowed_list} of {@code /proc/self/task/TID/status}. */
    public static String cpusAllowedList(int tid) throws IOException {
        return Files.readAllLines(Path.of("/proc/self/task/" + tid + "/status")).stream()
                .filter(line -> line.startsWith("Cpus_allowed_list:")).findFirst().orElseThrow()
                .substring("Cpus_allowed_list:".length()).strip();
    }
}
