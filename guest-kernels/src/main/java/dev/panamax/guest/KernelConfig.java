package dev.panamax.guest;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * A Linux kernel's build configuration ({@code .config}), and the options Panamax's guest needs
 * built in: read from the kernel itself where it embeds its configuration (CONFIG_IKCONFIG, in a
 * vmlinux or a gzip-compressed bzImage), else from the file a distribution or a build tree keeps
 * beside it ({@code config-VERSION} beside {@code vmlinuz-VERSION}, {@code config} beside a kernel
 * in Panamax's cache, the tree's {@code .config}).
 *
 * @param options each option set in the configuration and its value ({@code y}, {@code m}, a
 *     number or a quoted string); an option that is "not set" is absent
 * @param source where the configuration was read from, for messages
 */
public record KernelConfig(Map<String, String> options, String source) {
    /** An option Panamax's guest needs built in ({@code =y}), and why. */
    public record Requirement(String option, String why) {}

    /** What the built-in initramfs's /init and exec's agent need of any kernel: none of it can come from a module, since they load none. */
    public static final List<Requirement> EXEC = List.of(
            new Requirement("CONFIG_BLK_DEV_INITRD", "to start from Panamax's initramfs"),
            new Requirement("CONFIG_RD_GZIP", "the initramfs is gzip-compressed"),
            new Requirement("CONFIG_BINFMT_ELF", "busybox and the agent are ELF programs"),
            new Requirement("CONFIG_BINFMT_SCRIPT", "/init is a shell script"),
            new Requirement("CONFIG_PROC_FS", "/init mounts /proc"),
            new Requirement("CONFIG_SYSFS", "/init mounts /sys"),
            new Requirement("CONFIG_DEVTMPFS", "/init mounts /dev"),
            new Requirement("CONFIG_SERIAL_8250_CONSOLE", "the kernel's log, which tells a panic or a warning, comes over the serial console"),
            new Requirement("CONFIG_PCI", "Panamax's virtio devices are PCI devices"),
            new Requirement("CONFIG_VIRTIO_PCI", "Panamax's virtio devices are PCI devices"),
            new Requirement("CONFIG_VSOCKETS", "exec's channel to the guest is a vsock"),
            new Requirement("CONFIG_VIRTIO_VSOCKETS", "exec's channel to the guest is a vsock"));

    /** What a shared folder ({@code --share}) needs besides. */
    public static final List<Requirement> SHARES = List.of(
            new Requirement("CONFIG_FUSE_FS", "shared folders are virtio-fs, a FUSE file system"),
            new Requirement("CONFIG_VIRTIO_FS", "shared folders are virtio-fs devices"));

    /** What {@code exec --rootfs host} needs besides shared folders: the overlay /init lays over the host's root. */
    public static final List<Requirement> HOST_ROOT = List.of(
            new Requirement("CONFIG_OVERLAY_FS", "--rootfs host lays an overlay over the host's root directory"),
            new Requirement("CONFIG_TMPFS", "--rootfs host keeps the guest's writes in a tmpfs"),
            new Requirement("CONFIG_TMPFS_XATTR", "the overlay keeps deletions in the tmpfs's extended attributes"));

    /** The most a configuration may be: Debian's is about 250 KiB. */
    private static final int MAX_BYTES = 4 << 20;
    /** Far above any kernel image, compressed or not: a larger file is not read for a configuration. */
    private static final long MAX_IMAGE_BYTES = 512L << 20;
    private static final byte[] START = "IKCFG_ST".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] END = "IKCFG_ED".getBytes(StandardCharsets.US_ASCII);
    private static final Pattern SET = Pattern.compile("(CONFIG_[A-Za-z0-9_]+)=(.*)");
    private static final Pattern NOT_SET = Pattern.compile("# (CONFIG_[A-Za-z0-9_]+) is not set");

    /** Parses the text of a {@code .config}. */
    public static KernelConfig parse(String text, String source) {
        Map<String, String> options = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            Matcher m = SET.matcher(line.strip());
            if (m.matches()) {
                options.put(m.group(1), m.group(2));
            }
        }
        return new KernelConfig(options, source);
    }

    /**
     * The configuration of {@code kernel}: embedded, or from beside it; empty when neither is there
     * or the kernel compresses itself with something other than gzip.
     */
    public static Optional<KernelConfig> of(Path kernel) throws IOException {
        Optional<String> embedded = embedded(kernel);
        if (embedded.isPresent()) {
            return Optional.of(parse(embedded.get(), kernel + "'s embedded configuration"));
        }
        for (Path beside : besides(kernel)) {
            if (Files.isRegularFile(beside) && Files.size(beside) <= MAX_BYTES) {
                return Optional.of(parse(Files.readString(beside, StandardCharsets.ISO_8859_1), beside.toString()));
            }
        }
        return Optional.empty();
    }

    /** Where a distribution, Panamax's cache or a build tree keeps the configuration of {@code kernel}. */
    static List<Path> besides(Path kernel) {
        Path absolute = kernel.toAbsolutePath().normalize();
        Path dir = absolute.getParent();
        String name = absolute.getFileName().toString();
        List<Path> candidates = new ArrayList<>();
        for (String prefix : List.of("vmlinuz-", "vmlinux-", "bzImage-")) {
            if (name.startsWith(prefix)) {
                candidates.add(dir.resolve("config-" + name.substring(prefix.length())));
            }
        }
        candidates.add(dir.resolve("config"));
        candidates.add(dir.resolve(".config"));
        if (name.equals("bzImage") && absolute.getNameCount() >= 4 && absolute.getParent().endsWith(Path.of("arch", "x86", "boot"))) {
            candidates.add(dir.getParent().getParent().getParent().resolve(".config")); // a tree's arch/x86/boot/bzImage
        }
        return candidates;
    }

    /** The configuration embedded in a vmlinux, or in a bzImage's gzip-compressed vmlinux. */
    static Optional<String> embedded(Path kernel) throws IOException {
        if (Files.size(kernel) > MAX_IMAGE_BYTES) {
            return Optional.empty();
        }
        byte[] image = Files.readAllBytes(kernel);
        Optional<String> direct = between(image);
        if (direct.isPresent()) {
            return direct;
        }
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        if (image.length < 0x250 || b.getInt(0x202) != 0x53726448) { // "HdrS": a bzImage's setup header
            return Optional.empty();
        }
        int setupSectors = image[0x1f1] & 0xff;
        long start = (long) ((setupSectors == 0 ? 4 : setupSectors) + 1) * 512 + Integer.toUnsignedLong(b.getInt(0x248));
        long length = Integer.toUnsignedLong(b.getInt(0x24c));
        if (start + length > image.length || length < 2 || image[(int) start] != 0x1f || image[(int) start + 1] != (byte) 0x8b) {
            return Optional.empty(); // not gzip: xz, zstd, lz4 ... are not read here
        }
        byte[] vmlinux = inflate(new ByteArrayInputStream(image, (int) start, (int) length), (int) MAX_IMAGE_BYTES);
        return between(vmlinux);
    }

    /** The gzip-compressed text between the IKCFG_ST and IKCFG_ED markers. */
    private static Optional<String> between(byte[] image) throws IOException {
        int start = indexOf(image, START, 0);
        if (start < 0) {
            return Optional.empty();
        }
        int from = start + START.length;
        int end = indexOf(image, END, from);
        if (end < 0) {
            return Optional.empty();
        }
        return Optional.of(new String(inflate(new ByteArrayInputStream(image, from, end - from), MAX_BYTES), StandardCharsets.ISO_8859_1));
    }

    private static byte[] inflate(InputStream compressed, int limit) throws IOException {
        try (InputStream in = new GZIPInputStream(compressed)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[1 << 16];
            for (int n; (n = in.read(buffer)) > 0; ) {
                if (out.size() + n > limit) {
                    throw new IOException("the kernel's compressed contents are larger than " + (limit >> 20) + " MiB");
                }
                out.write(buffer, 0, n);
            }
            return out.toByteArray();
        }
    }

    private static int indexOf(byte[] haystack, byte[] needle, int from) {
        outer:
        for (int i = from; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** Each requirement this configuration does not meet, with what it has instead: not set, or a module. */
    public List<String> unmet(List<Requirement> requirements) {
        List<String> unmet = new ArrayList<>();
        for (Requirement r : requirements) {
            String value = options.get(r.option());
            if (!"y".equals(value)) {
                unmet.add(r.option() + " is " + (value == null ? "not set" : value.equals("m") ? "a module (m), which nothing loads" : value)
                        + "; it must be y: " + r.why());
            }
        }
        return unmet;
    }

    /**
     * The text of {@code config} with every option of {@code requirements} set to {@code y}: a
     * line that sets or unsets it is replaced, a missing one appended. {@code make olddefconfig}
     * then adds what they depend on.
     */
    public static String merge(String config, List<Requirement> requirements) {
        Map<String, Boolean> placed = new LinkedHashMap<>();
        requirements.forEach(r -> placed.put(r.option(), false));
        StringBuilder out = new StringBuilder();
        for (String line : config.split("\n", -1)) {
            Matcher set = SET.matcher(line.strip());
            Matcher notSet = NOT_SET.matcher(line.strip());
            String option = set.matches() ? set.group(1) : notSet.matches() ? notSet.group(1) : null;
            if (option != null && placed.containsKey(option)) {
                if (!placed.put(option, true)) {
                    out.append(option).append("=y\n");
                }
                continue;
            }
            out.append(line).append('\n');
        }
        if (out.length() > 0 && config.endsWith("\n")) {
            out.setLength(out.length() - 1); // split kept the text after the last newline: none
        }
        placed.forEach((option, done) -> {
            if (!done) {
                out.append(option).append("=y\n");
            }
        });
        return out.toString();
    }

    /** The requirements as a configuration fragment, each with its reason as a comment. */
    public static String fragment(List<Requirement> requirements) {
        StringBuilder out = new StringBuilder();
        for (Requirement r : requirements) {
            out.append("# ").append(r.why()).append('\n').append(r.option()).append("=y\n");
        }
        return out.toString();
    }
}
