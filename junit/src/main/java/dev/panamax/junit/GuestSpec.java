package dev.panamax.junit;

import dev.panamax.guest.GuestImages;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The guest a {@link PanamaxTest} class asks for, checked, with every path absolute: what the test
 * JVM hands its {@link GuestServer} (as {@link #serverArgs}) and what must be visible where it runs.
 */
record GuestSpec(Path kernel, Path initramfs, List<Share> shares, int cpus, int memoryMib, Reset reset) {
    /** A host directory the guest mounts at {@code /mnt/TAG}. */
    record Share(Path path, String tag, boolean readOnly) {
        private static final Pattern TAG = Pattern.compile("[A-Za-z0-9._-]{1,36}");

        Share {
            if (!TAG.matcher(tag).matches() || tag.equals(".") || tag.equals("..")) {
                throw new IllegalArgumentException("share tag '" + tag + "': 1 to 36 of A-Z a-z 0-9 . _ - (the guest mounts it at /mnt/TAG)");
            }
        }

        /** {@code DIR[,tag=T][,readonly]}, DIR relative to the working directory. */
        static Share parse(String spec) {
            String[] parts = spec.split(",", -1);
            if (parts[0].isEmpty()) throw new IllegalArgumentException("share '" + spec + "': no directory (DIR[,tag=T][,readonly])");
            Path dir = Path.of(parts[0]).toAbsolutePath().normalize();
            String tag = dir.getFileName() == null ? "" : dir.getFileName().toString();
            boolean readOnly = false;
            for (int i = 1; i < parts.length; i++) {
                if (parts[i].startsWith("tag=")) tag = parts[i].substring(4);
                else if (parts[i].equals("readonly")) readOnly = true;
                else throw new IllegalArgumentException("share '" + spec + "': unknown option '" + parts[i] + "' (tag=T or readonly)");
            }
            if (!Files.isDirectory(dir)) throw new IllegalArgumentException("share '" + spec + "': " + dir + " is not a directory");
            return new Share(dir, tag, readOnly);
        }

        String format() {
            return path + ",tag=" + tag + (readOnly ? ",readonly" : "");
        }
    }

    GuestSpec {
        if (cpus < 1 || cpus > 254) throw new IllegalArgumentException("cpus = " + cpus + ": 1 to 254");
        if (memoryMib < 64) throw new IllegalArgumentException("memoryMib = " + memoryMib + ": at least 64 for the tiny guest");
        Set<String> tags = new LinkedHashSet<>();
        for (Share s : shares) {
            if (!tags.add(s.tag())) throw new IllegalArgumentException("two shares with the tag " + s.tag() + "; give one another with ,tag=T");
        }
        shares = List.copyOf(shares);
    }

    /**
     * The guest {@code annotation} asks for; the built-in kernel and initramfs are this host's cached ones
     * (built on first use), by path, so that the rig uses them too.
     *
     * @throws IllegalArgumentException naming the attribute that is wrong
     */
    static GuestSpec of(PanamaxTest annotation) {
        Path kernel = annotation.kernel().isEmpty() ? GuestImages.defaultVmlinux() : existing(annotation.kernel(), "kernel");
        Path initramfs = annotation.initramfs().isEmpty() ? GuestImages.defaultInitramfs() : existing(annotation.initramfs(), "initramfs");
        List<Share> shares = new ArrayList<>();
        for (String s : annotation.shares()) shares.add(Share.parse(s));
        return new GuestSpec(kernel.toAbsolutePath().normalize(), initramfs.toAbsolutePath().normalize(), shares, annotation.cpus(),
                annotation.memoryMib(), annotation.reset());
    }

    private static Path existing(String path, String attribute) {
        Path p = Path.of(path);
        if (!Files.isRegularFile(p)) throw new IllegalArgumentException("@PanamaxTest(" + attribute + " = \"" + path + "\"): no such file");
        return p;
    }

    /** The server's arguments, {@code NAME=VALUE} each. */
    List<String> serverArgs() {
        List<String> args = new ArrayList<>(List.of("kernel=" + kernel, "initramfs=" + initramfs, "cpus=" + cpus, "memory-mib=" + memoryMib,
                "reset=" + reset.name().toLowerCase(Locale.ROOT)));
        for (Share s : shares) args.add("share=" + s.format());
        return args;
    }

    /**
     * The spec {@link #serverArgs} gave, as the server reads it.
     *
     * @throws IllegalArgumentException naming the argument that is wrong
     */
    static GuestSpec fromServerArgs(List<String> args) {
        Path kernel = null;
        Path initramfs = null;
        int cpus = 1;
        int memoryMib = 256;
        Reset reset = Reset.NONE;
        List<Share> shares = new ArrayList<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq < 0) throw new IllegalArgumentException("argument '" + arg + "' is not NAME=VALUE");
            String value = arg.substring(eq + 1);
            switch (arg.substring(0, eq)) {
                case "kernel" -> kernel = existing(value, "kernel");
                case "initramfs" -> initramfs = existing(value, "initramfs");
                case "cpus" -> cpus = number(arg, value);
                case "memory-mib" -> memoryMib = number(arg, value);
                case "share" -> shares.add(Share.parse(value));
                case "reset" -> reset = switch (value) {
                    case "snapshot" -> Reset.SNAPSHOT;
                    case "none" -> Reset.NONE;
                    default -> throw new IllegalArgumentException("argument '" + arg + "': snapshot or none");
                };
                default -> throw new IllegalArgumentException("unknown argument '" + arg + "'");
            }
        }
        if (kernel == null || initramfs == null) throw new IllegalArgumentException("kernel= and initramfs= are needed");
        return new GuestSpec(kernel, initramfs, shares, cpus, memoryMib, reset);
    }

    private static int number(String arg, String value) {
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("argument '" + arg + "': not a whole number");
        }
    }

    /** Host directories the server must see: the boot files' and the shares'. */
    List<Path> hostDirectories() {
        List<Path> dirs = new ArrayList<>(List.of(kernel.getParent(), initramfs.getParent()));
        for (Share s : shares) dirs.add(s.path());
        return dirs;
    }
}
