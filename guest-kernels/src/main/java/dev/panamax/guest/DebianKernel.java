package dev.panamax.guest;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/** A Debian kernel package unpacked into the cache ({@link DebianPackages#unpacked}): the rig's and the rescue guest's. */
public final class DebianKernel {
    /**
     * @param vmlinuz the kernel (a bzImage)
     * @param modules its module tree, {@code lib/modules/VERSION}
     */
    public record Unpacked(Path vmlinuz, Path modules) {}

    private DebianKernel() {}

    /** The kernel and module tree of {@code kernelPackage}, which {@code metapackage} named. */
    public static Unpacked unpacked(String kernelPackage, String metapackage) {
        Path unpacked = DebianPackages.unpacked(kernelPackage);
        return new Unpacked(single(unpacked.resolve("boot"), "vmlinuz-", metapackage), single(unpacked.resolve("lib/modules"), "", metapackage));
    }

    /** Whether module {@code name} ({@code -} and {@code _} alike) is built into the kernel of module tree {@code modules}. */
    public static boolean builtIn(Path modules, String name) throws IOException {
        Path list = modules.resolve("modules.builtin");
        String wanted = name.replace('-', '_') + ".ko";
        return Files.exists(list) && Files.readAllLines(list).stream()
                .anyMatch(l -> l.substring(l.lastIndexOf('/') + 1).replace('-', '_').equals(wanted));
    }

    /** The one entry of {@code dir} whose name starts with {@code prefix}. */
    private static Path single(Path dir, String prefix, String metapackage) {
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> found = s.filter(p -> p.getFileName().toString().startsWith(prefix)).toList();
            if (found.size() != 1) {
                throw new MissingIngredientException("expected one " + prefix + "* in " + dir + " but found " + found
                        + "; delete " + PanamaxCache.root().resolve("debs") + " to fetch " + metapackage + " again.");
            }
            return found.getFirst();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
