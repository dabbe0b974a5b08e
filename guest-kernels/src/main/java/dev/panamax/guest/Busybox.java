package dev.panamax.guest;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** The static busybox from Debian's {@code busybox-static} (installed when missing): init and userland of both guests. */
public final class Busybox {
    private static final Path BINARY = Path.of("/bin/busybox");

    private Busybox() {}

    /** The static busybox binary. */
    public static Path ensure() {
        DebianPackages.ensureInstalled(GuestInitramfs.BUSYBOX_PACKAGE);
        if (!Files.isExecutable(BINARY)) {
            throw new MissingIngredientException(BINARY + " is missing although " + GuestInitramfs.BUSYBOX_PACKAGE
                    + " is installed; reinstall it with `apt-get install --reinstall " + GuestInitramfs.BUSYBOX_PACKAGE + "`.");
        }
        return BINARY;
    }

    /** The applet names this busybox provides (each becomes a symlink in /bin). */
    public static List<String> applets() {
        return HostCommand.output(null, List.of(ensure().toString(), "--list")).lines().filter(l -> !l.isBlank()).toList();
    }
}
