package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.guest.KernelConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code panamax kernel-config}: the kernel options Panamax's guest needs, printed, merged into a .config, or checked in a kernel. */
@Command(name = "kernel-config", mixinStandardHelpOptions = true, description = {
    "Without FILE: print the kernel options Panamax's guest needs built in (exec, run with the built-in initramfs,"
            + " shared folders), as a configuration fragment.",
    "With FILE (a kernel tree's .config): set each of them to y in FILE, and say which changed; then run"
            + " 'make olddefconfig' for what they depend on.",
    "With --check KERNEL: say which of them KERNEL lacks, from its embedded configuration or the config file beside it."})
final class KernelConfigCommand implements Callable<Integer> {
    @Parameters(index = "0", arity = "0..1", paramLabel = "FILE", description = "a kernel .config to merge the options into")
    Path file;

    @Option(names = "--check", paramLabel = "KERNEL", description = "a vmlinux or bzImage whose configuration to check")
    Path check;

    static final List<KernelConfig.Requirement> ALL =
            Stream.of(KernelConfig.EXEC, KernelConfig.SHARES, KernelConfig.HOST_ROOT).flatMap(List::stream).toList();

    @Override
    public Integer call() throws IOException {
        if (check != null && file != null) {
            throw new UserError("kernel-config takes FILE or --check KERNEL, not both");
        }
        if (check != null) {
            return check(check);
        }
        if (file == null) {
            System.out.print(KernelConfig.fragment(ALL));
            return 0;
        }
        String before;
        try {
            before = Files.readString(file, StandardCharsets.ISO_8859_1);
        } catch (NoSuchFileException e) {
            throw new UserError(file + " does not exist; give a kernel tree's .config (make defconfig makes one)");
        }
        List<String> unmet = KernelConfig.parse(before, file.toString()).unmet(ALL);
        if (unmet.isEmpty()) {
            System.err.println("panamax: " + file + " already has every option Panamax needs");
            return 0;
        }
        Files.writeString(file, KernelConfig.merge(before, ALL), StandardCharsets.ISO_8859_1);
        unmet.forEach(line -> System.err.println("panamax: was " + line));
        System.err.println("panamax: set " + unmet.size() + " option" + (unmet.size() == 1 ? "" : "s") + " to y in " + file
                + "; now run 'make olddefconfig' in its tree");
        return 0;
    }

    private static int check(Path kernel) throws IOException {
        if (!Files.isRegularFile(kernel)) {
            throw new UserError("--check " + kernel + ": no such kernel file");
        }
        Optional<KernelConfig> config = KernelConfig.of(kernel);
        if (config.isEmpty()) {
            throw new UserError("cannot check " + kernel + ": it embeds no configuration Panamax reads (CONFIG_IKCONFIG, in a vmlinux"
                    + " or a gzip-compressed bzImage) and no config file is beside it (config-VERSION, config, .config)");
        }
        List<String> unmet = config.get().unmet(ALL);
        unmet.forEach(line -> System.out.println(line));
        System.err.println("panamax: " + (unmet.isEmpty() ? "every option Panamax needs is there" : unmet.size() + " option"
                + (unmet.size() == 1 ? "" : "s") + " missing") + ", from " + config.get().source());
        return unmet.isEmpty() ? 0 : 1;
    }

    /**
     * Refuses, before a boot, a kernel whose known configuration lacks what {@code requirements}
     * name; a kernel whose configuration cannot be found is booted unchecked.
     */
    static void requireOptions(Path kernel, List<KernelConfig.Requirement> requirements) {
        Optional<KernelConfig> config;
        try {
            config = KernelConfig.of(kernel);
        } catch (IOException e) {
            return; // not readable as a configuration: the boot says what is wrong with the kernel
        }
        if (config.isEmpty()) {
            return;
        }
        List<String> unmet = config.get().unmet(requirements);
        if (!unmet.isEmpty()) {
            throw new UserError("the kernel " + kernel + " lacks what Panamax's guest needs (from " + config.get().source() + "):\n  "
                    + String.join("\n  ", unmet) + "\n'panamax kernel-config .config' sets them in a kernel tree");
        }
    }
}
