package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import dev.panamax.devices.BootTimer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;

/**
 * This process's resident memory split into guest RAM and the VMM's own: guest RAM is what its
 * mappings have resident ({@link VirtualMachine#guestMemoryResidentBytes()}, from {@code
 * /proc/self/smaps}); everything else (heap, JIT code, the JDK's mapped files) is the VMM.
 */
record ProcessMemory(long rssKib, long guestKib) {

    static ProcessMemory read(VirtualMachine vm) {
        long rss = 0;
        long guest = 0;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    rss = kib(line);
                }
            }
            guest = vm.guestMemoryResidentBytes() >> 10;
        } catch (IOException e) {
            // report zeros rather than fail a boot over a statistic
        }
        return new ProcessMemory(rss, guest);
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
        return String.format("VMM memory %d MiB (RSS %d MiB minus %d MiB of guest RAM resident)",
                (rssKib - guestKib) >> 10, rssKib >> 10, guestKib >> 10);
    }
}
