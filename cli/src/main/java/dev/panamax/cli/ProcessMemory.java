package dev.panamax.cli;

import dev.panamax.devices.BootTimer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;

/**
 * This process's resident memory split into guest RAM and the VMM's own. Guest RAM is a shared
 * anonymous mapping, so the kernel counts its touched pages as RssShmem; everything else (heap,
 * JIT code, the JDK's mapped files) is the VMM.
 */
record ProcessMemory(long rssKib, long guestKib) {

    static ProcessMemory read() {
        long rss = 0;
        long shmem = 0;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    rss = kib(line);
                } else if (line.startsWith("RssShmem:")) {
                    shmem = kib(line);
                }
            }
        } catch (IOException e) {
            // report zeros rather than fail a boot over a statistic
        }
        return new ProcessMemory(rss, shmem);
    }

    private static long kib(String line) {
        return Long.parseLong(line.replaceAll("\\D+", ""));
    }

    /** Time since the OS started this process, measured as the boot timer measures it. */
    static Duration sinceProcessStart() {
        return Duration.between(BootTimer.processStart(), Instant.now());
    }

    @Override
    public String toString() {
        return String.format("VMM memory %d MiB (RSS %d MiB minus %d MiB of guest RAM touched)",
                (rssKib - guestKib) >> 10, rssKib >> 10, guestKib >> 10);
    }
}
