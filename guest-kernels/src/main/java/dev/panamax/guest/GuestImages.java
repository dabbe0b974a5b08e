package dev.panamax.guest;

import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The tiny guest that tests and benchmarks boot: a kernel built from Debian's sources and a busybox
 * initramfs, both built on first use and cached under {@link PanamaxCache#root()}.
 */
public final class GuestImages {
    /** The line /init prints first, once user space runs. */
    public static final String INIT_MARKER = "panamax: init reached";
    /** /init prints this followed by the exit status of {@code panamax.run}. */
    public static final String EXIT_STATUS_PREFIX = "panamax: exit status ";
    private static final Pattern EXIT_STATUS = Pattern.compile("^" + Pattern.quote(EXIT_STATUS_PREFIX) + "(\\d+)\\r?$", Pattern.MULTILINE);

    private GuestImages() {}

    /**
     * The kernel command line for a test boot: serial console (quiet, as each byte costs a VM
     * exit), reset through the i8042 when /init ends (so any VMM sees the end), no reboot after a
     * panic, and {@code run} as /init's command.
     *
     * @param run  a shell command; the kernel's quoting has no escape, so it may not hold {@code "}
     * @param exit {@code reboot} (a reset every VMM sees) or {@code poweroff} (without ACPI in the
     *             tiny kernel this only halts the vCPUs): what /init does afterwards
     */
    public static String commandLine(String run, String exit) {
        if (run.contains("\"")) throw new IllegalArgumentException("a kernel command line cannot quote a double quote: " + run);
        if (!exit.equals("reboot") && !exit.equals("poweroff")) {
            throw new IllegalArgumentException("panamax.exit must be reboot or poweroff, not " + exit);
        }
        return "console=ttyS0 quiet reboot=k panic=-1 panamax.exit=" + exit + " panamax.run=\"" + run + "\"";
    }

    /** The exit status /init reported on {@code console}, if it got that far. */
    public static OptionalInt exitStatus(String console) {
        Matcher m = EXIT_STATUS.matcher(console);
        return m.find() ? OptionalInt.of(Integer.parseInt(m.group(1))) : OptionalInt.empty();
    }

    /**
     * The status in one console line of /init's {@code panamax: exit status N} (0-255), if the line is
     * exactly that; any other line (a kernel message, the command's own output) is empty.
     */
    public static OptionalInt exitStatusLine(String line) {
        Matcher m = EXIT_STATUS.matcher(line);
        if (!m.matches() || m.group(1).length() > 3) return OptionalInt.empty();
        int status = Integer.parseInt(m.group(1));
        return status <= 255 ? OptionalInt.of(status) : OptionalInt.empty();
    }

    /**
     * Whether {@code initrd} is an initramfs this module built (the cache's {@code initramfs/KEY/initramfs.cpio.gz}),
     * whose /init reports {@code panamax.run}'s status; decided by its path, so nothing is built to tell.
     */
    public static boolean isBuiltInInitramfs(Path initrd) {
        if (initrd == null) return false;
        Path p = initrd.toAbsolutePath().normalize();
        return p.getNameCount() >= 2 && p.getFileName().toString().equals(GuestInitramfs.FILE_NAME)
                && p.getParent().getParent() != null && p.getParent().getParent().equals(PanamaxCache.root().resolve("initramfs").normalize());
    }

    /**
     * Whether {@code kernel} is a kernel this module built (the cache's {@code kernels/KEY/vmlinux} or
     * {@code bzImage}); decided by its path, so nothing is built to tell.
     */
    public static boolean isBuiltInKernel(Path kernel) {
        if (kernel == null) return false;
        Path p = kernel.toAbsolutePath().normalize();
        String name = p.getFileName() == null ? "" : p.getFileName().toString();
        return (name.equals("vmlinux") || name.equals("bzImage")) && p.getNameCount() >= 2 && p.getParent().getParent() != null
                && p.getParent().getParent().equals(PanamaxCache.root().resolve("kernels").normalize());
    }

    /** The compressed kernel ({@code bzImage}, Linux boot protocol). */
    public static Path defaultKernel() {
        return KernelBuild.ensureBuilt().resolve("bzImage");
    }

    /** The uncompressed ELF kernel with the PVH entry note ({@code vmlinux}). */
    public static Path defaultVmlinux() {
        return KernelBuild.ensureBuilt().resolve("vmlinux");
    }

    /** The busybox initramfs (gzip'd newc cpio) whose /init runs {@code panamax.run=...}. */
    public static Path defaultInitramfs() {
        return GuestInitramfs.ensureBuilt();
    }

    /** Builds (or finds) the kernel and initramfs and prints their paths: {@code java dev.panamax.guest.GuestImages}. */
    public static void main(String[] args) {
        try {
            System.out.println("kernel    " + defaultKernel());
            System.out.println("vmlinux   " + defaultVmlinux());
            System.out.println("initramfs " + defaultInitramfs());
        } catch (MissingIngredientException e) {
            System.err.println("panamax: " + e.getMessage());
            System.exit(2);
        }
    }
}
