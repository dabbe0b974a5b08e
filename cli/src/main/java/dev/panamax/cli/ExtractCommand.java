package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.guest.MissingIngredientException;
import dev.panamax.guest.RescueGuest;
import dev.panamax.guest.Resources;
import dev.panamax.storage.ImageFormat;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.VmRules;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code panamax image extract}: copies files out of a disk image by booting the rescue guest
 * ({@link RescueGuest}: Debian's kernel, which reads the file systems people use) with the image as a
 * read-only disk and DEST as a shared folder, through {@code panamax exec}, which also takes it into
 * the nested KVM rig where this host's KVM only emulates. The guest's half is {@code extract.sh}.
 */
@Command(name = "extract", mixinStandardHelpOptions = true, exitCodeOnInvalidInput = ExtractCommand.NOTHING_DONE,
        description = {"Copy files out of a disk image that may no longer boot, or list them with --list.",
            "Boots a small guest (Debian's kernel, downloaded on first use) with the image attached read-only and DEST shared,"
                + " mounts the file system read-only (ext4, ext3, ext2, xfs, btrfs, vfat, exfat or ntfs3; a journal is never"
                + " replayed) and copies each SRC, a path in the image such as /home/me, into DEST, keeping modes, times and"
                + " symbolic links. What DEST has already under the same names is replaced, so a run can be repeated.",
            "PARTITION is a partition's number; without it the whole disk is read when it has no partition table, else its"
                + " one partition with a file system.",
            "Where this host's KVM only emulates, the guest runs inside the nested KVM rig."},
        exitCodeListHeading = "Exit status:%n",
        exitCodeList = {"0:every SRC was copied (or listed) whole",
            "1:some SRC is not in the image or was not read or copied whole (a damaged image); each is said on stderr",
            "2:nothing was done: bad arguments, no such partition, no file system the guest reads",
            "123-125:as panamax exec: the guest crashed, --timeout, or the guest could not be run"})
public final class ExtractCommand implements Callable<Integer> {
    /** Status: nothing was extracted (bad input, no such partition or file system), as the guest's script says too. */
    static final int NOTHING_DONE = 2;
    /** The shared folder's tag: exec mounts it at /mnt/out, where extract.sh copies to. */
    private static final String DEST_TAG = "out";
    /** A partition's number: GPT allows 128 by default, more when made so. */
    private static final Pattern PARTITION = Pattern.compile("[1-9][0-9]{0,3}");

    @Option(names = "--list", description = "list each PATH's tree in the image (mode, size in bytes, path) instead of copying; no DEST")
    boolean list;

    @Option(names = {"-f", "--format"}, paramLabel = "FORMAT", description = "the image's format (default: detected): raw, qcow2, vhd, vmdk, vdi or vhdx")
    String format;

    @Option(names = "--kernel", paramLabel = "PATH", description = "the rescue guest's kernel instead of the built-in one (with --initrd)")
    Path kernel;

    @Option(names = "--initrd", paramLabel = "PATH",
            description = "the rescue guest's initramfs instead of the built-in one: Panamax's /init and agent, and the kernel's modules")
    Path initrd;

    @Option(names = "--memory", paramLabel = "SIZE", defaultValue = "512M", description = "the rescue guest's RAM (default: ${DEFAULT-VALUE})")
    String memory;

    @Option(names = "--timeout", paramLabel = "DURATION", description = "give up after this long (status 124): e.g. 10m, or seconds")
    String timeout;

    @Option(names = "--console", description = "copy the rescue guest's serial console to stderr")
    boolean showConsole;

    @Option(names = "--no-rig", description = "never move into the nested KVM rig, even where KVM only emulates")
    boolean noRig;

    @Parameters(index = "0", paramLabel = "IMAGE", description = "the disk image (raw, qcow2, vhd, vmdk, vdi, vhdx; with its backing chain)")
    Path image;

    @Parameters(index = "1..*", paramLabel = "[PARTITION] SRC... DEST", hideParamSyntax = true,
            description = "with --list: [PARTITION] [PATH...] (default /)")
    List<String> rest = new ArrayList<>();

    @Override
    public Integer call() {
        try {
            List<String> args = new ArrayList<>(rest);
            String partition = !args.isEmpty() && PARTITION.matcher(args.getFirst()).matches() ? args.removeFirst() : "";
            Path dest = null;
            if (!list) {
                if (args.size() < 2) {
                    throw new UserError("give at least one SRC, a path in the image, and DEST, the directory to copy to"
                            + " (or --list to see what the image holds)");
                }
                dest = destination(Path.of(args.removeLast()));
            } else if (args.isEmpty()) {
                args.add("/");
            }
            List<String> paths = new ArrayList<>();
            for (String p : args) {
                paths.add(imagePath(p));
            }
            ImageFormat imageFormat = format();
            VmRules.diskImage(image, imageFormat, true, "IMAGE");
            String disk = OptionSettings.escape(image.toAbsolutePath().toString()) + ",readonly"
                    + (imageFormat == null ? "" : ",format=" + imageFormat.name().toLowerCase(Locale.ROOT));
            if ((kernel == null) != (initrd == null)) {
                throw new UserError("--kernel and --initrd go together: a rescue guest of your own is both");
            }
            RescueGuest.Images guest = kernel != null ? new RescueGuest.Images(kernel.toAbsolutePath(), initrd.toAbsolutePath())
                    : RescueGuest.ensure();
            List<String> exec = new ArrayList<>(List.of("exec", "--rootfs", "none", "--kernel", guest.kernel().toString(), "--initrd", guest.initramfs().toString(),
                    "--cpus", "1", "--memory", memory, "--disk", disk));
            if (dest != null) {
                exec.addAll(List.of("--share", OptionSettings.escape(dest.toString()) + ",tag=" + DEST_TAG));
            }
            if (timeout != null) {
                exec.addAll(List.of("--timeout", timeout));
            }
            if (showConsole) {
                exec.add("--console");
            }
            if (noRig) {
                exec.add("--no-rig");
            }
            exec.addAll(List.of("--", "sh", "-c", Resources.text(ExtractCommand.class, "extract.sh"), "extract", list ? "list" : "copy", partition));
            exec.addAll(paths);
            return Panamax.execute(exec.toArray(String[]::new));
        } catch (MissingIngredientException | ConfigException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    /** {@code --format}, if given. */
    private ImageFormat format() {
        if (format == null) {
            return null;
        }
        try {
            return ImageFormat.valueOf(format.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new UserError("--format " + format + ": raw, qcow2, vhd, vmdk, vdi or vhdx");
        }
    }

    /** DEST: an existing directory, or one made now in an existing directory; absolute. */
    private static Path destination(Path dest) {
        Path absolute = dest.toAbsolutePath().normalize();
        if (Files.isDirectory(absolute)) {
            return absolute;
        }
        if (Files.exists(absolute) || Files.isSymbolicLink(absolute)) {
            throw new UserError("DEST " + dest + " is not a directory");
        }
        try {
            return Files.createDirectory(absolute);
        } catch (IOException e) {
            throw new UserError("cannot make the directory DEST " + dest + ": " + e.getMessage(), e);
        }
    }

    /** A path in the image: absolute, without {@code .} or {@code ..} parts or characters a shell line cannot carry; no trailing /. */
    static String imagePath(String path) {
        if (!path.startsWith("/")) {
            throw new UserError("'" + path + "': a path in the image starts with /, like /etc/fstab"
                    + (PARTITION.matcher(path).matches() ? " (a PARTITION comes right after IMAGE)" : ""));
        }
        if (path.chars().anyMatch(c -> c == 0 || c == '\n')) {
            throw new UserError("a path in the image cannot hold a NUL or a newline");
        }
        String trimmed = path.replaceAll("/+", "/");
        if (trimmed.length() > 1 && trimmed.endsWith("/")) {
            trimmed = trimmed.substring(0, trimmed.length() - 1);
        }
        for (String part : trimmed.split("/")) {
            if (part.equals(".") || part.equals("..")) {
                throw new UserError("'" + path + "': a path in the image has no . or .. parts");
            }
        }
        return trimmed;
    }
}
