package dev.panamax.it;

import dev.panamax.api.VirtualMachine;
import java.nio.file.Path;
import java.time.Duration;

/** Boots a kernel and an initramfs (the arguments), has the guest run uname -a, and says how it ended. */
public class ReadmeExample {
    public static void main(String[] args) {
        try (VirtualMachine vm = VirtualMachine.builder()
                .kernel(Path.of(args[0])).initrd(Path.of(args[1]))
                .commandLine("quiet panamax.run=\"uname -a\"").cpus(2).memoryMib(256)
                .console(System.out).build()) {
            vm.addConsoleLineListener(line -> {
                if (line.startsWith("Linux ")) System.err.println("the guest says: " + line);
            });
            vm.start();
            VirtualMachine.Exit exit = vm.awaitExit(Duration.ofSeconds(120)).orElseThrow();
            System.err.println("the guest ended: " + exit.reason());
        }
    }
}
