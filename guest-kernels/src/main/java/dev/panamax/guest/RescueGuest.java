package dev.panamax.guest;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SequencedSet;
import java.util.LinkedHashSet;
import java.util.stream.Stream;
import org.tukaani.xz.XZInputStream;

/**
 * The guest {@code panamax image extract} boots: Debian's stock kernel, whose modules read the file
 * systems people use (ext4, xfs, btrfs, vfat, exfat, ntfs3), and the tiny guest's initramfs with those
 * modules added. The tiny kernel stays small (every test boots it); this one is only booted to rescue
 * files.
 *
 * <p>The initramfs is the tiny guest's archive followed by a second one (the kernel unpacks
 * concatenated archives in turn) holding the modules below {@code lib/modules/VERSION/}, each
 * decompressed and with every module it depends on, {@code /sbin/modprobe} (busybox: the kernel runs
 * it for what it loads on demand, such as a checksum algorithm) and {@code /etc/modules}, which /init
 * loads first. Cached in {@code <cache>/rescue/<kernel package>_<version>-<hash>/}.
 */
public final class RescueGuest {
    /** Debian's 6.12 kernel: bookworm's 6.1 has no ntfs3. */
    static final String KERNEL_METAPACKAGE = "linux-image-6.12-amd64";
    /** What /init loads before the agent starts: the agent's vsock transport and the disk. */
    static final List<String> BOOT_MODULES = List.of("vmw_vsock_virtio_transport", "virtio_blk");
    /**
     * Everything else the initramfs carries, each with what it depends on: the file systems, their
     * character sets, and the checksum and hash algorithms they ask the kernel for by name (a
     * dependency no module states).
     */
    static final List<String> MODULES = List.of("ext4", "xfs", "btrfs", "vfat", "exfat", "ntfs3", "nls_utf8", "nls_cp437",
            "nls_ascii", "nls_iso8859-1", "crc32c_generic", "crc32c-intel", "xxhash_generic", "blake2b_generic", "sha256_generic");
    private static final String FILE_NAME = "initramfs.cpio.gz";

    /** The kernel ({@code vmlinuz}, a bzImage) and initramfs. */
    public record Images(Path kernel, Path initramfs) {}

    private RescueGuest() {}

    /** Both files, downloaded and packed on first use. */
    public static Images ensure() {
        String kernelPackage = DebianPackages.dependencyOf(KERNEL_METAPACKAGE);
        String kernelVersion = DebianPackages.candidateVersion(kernelPackage);
        Path tiny = GuestInitramfs.ensureBuilt();
        String key = kernelPackage + "_" + kernelVersion + "-"
                + PanamaxCache.hash(tiny.getParent().getFileName() + "\0" + BOOT_MODULES + "\0" + MODULES, 12);
        Path entry = PanamaxCache.dir("rescue", key);
        Path dir = PanamaxCache.entry(entry, out -> {
            DebianKernel.Unpacked kernel = DebianKernel.unpacked(kernelPackage, KERNEL_METAPACKAGE);
            Progress.say("packing the rescue guest's kernel modules into " + entry);
            Files.copy(kernel.vmlinuz(), out.resolve("vmlinuz"));
            Path tree = kernel.modules();
            Path modules = out.resolve("modules.cpio.gz");
            writeModules(tree, modules);
            Path initramfs = out.resolve(FILE_NAME);
            Files.copy(tiny, initramfs);
            try (OutputStream append = Files.newOutputStream(initramfs, StandardOpenOption.APPEND)) {
                Files.copy(modules, append);
            }
            Files.delete(modules);
        });
        return new Images(dir.resolve("vmlinuz"), dir.resolve(FILE_NAME));
    }

    /** The modules archive: {@link #BOOT_MODULES} and {@link #MODULES} with their dependencies, from the kernel's {@code tree}. */
    private static void writeModules(Path tree, Path archive) throws IOException {
        Map<String, Path> byName = new HashMap<>();
        try (Stream<Path> files = Files.walk(tree.resolve("kernel"))) {
            for (Path p : files.filter(Files::isRegularFile).toList()) {
                String file = p.getFileName().toString();
                int ko = file.indexOf(".ko");
                if (ko > 0) byName.put(moduleName(file.substring(0, ko)), p);
            }
        }
        Map<String, byte[]> chosen = new LinkedHashMap<>();
        List<String> wanted = new ArrayList<>(BOOT_MODULES);
        wanted.addAll(MODULES);
        for (String name : wanted) add(moduleName(name), byName, tree, chosen);
        String version = tree.getFileName().toString();
        try (Initramfs cpio = Initramfs.create(archive)) {
            SequencedSet<String> dirs = new LinkedHashSet<>(List.of("sbin", "etc", "lib", "lib/modules", "lib/modules/" + version));
            for (Map.Entry<String, byte[]> m : chosen.entrySet()) {
                String relative = tree.relativize(byName.get(m.getKey())).toString();
                for (Path parent = Path.of(relative).getParent(); parent != null; parent = parent.getParent()) {
                    dirs.add("lib/modules/" + version + "/" + parent);
                }
            }
            for (String d : dirs.stream().sorted().toList()) cpio.directory(d);
            for (Map.Entry<String, byte[]> m : chosen.entrySet()) {
                String relative = tree.relativize(byName.get(m.getKey())).toString();
                cpio.file("lib/modules/" + version + "/" + relative.substring(0, relative.indexOf(".ko") + 3), 0644, m.getValue());
            }
            cpio.symlink("sbin/modprobe", "/bin/busybox");
            cpio.file("etc/modules", 0644, (String.join("\n", BOOT_MODULES) + "\n").getBytes(StandardCharsets.US_ASCII));
        }
    }

    /** Adds module {@code name} and, first, every module it depends on. */
    private static void add(String name, Map<String, Path> byName, Path tree, Map<String, byte[]> chosen) throws IOException {
        if (chosen.containsKey(name)) return;
        Path file = byName.get(name);
        if (file == null) {
            if (DebianKernel.builtIn(tree, name)) return;
            throw new IOException("kernel module " + name + " is neither in " + tree + " nor built in");
        }
        byte[] module = decompressed(file);
        chosen.put(name, null); // a dependency cycle (there are none in a kernel that loads) stops here
        for (String dependency : dependencies(module, file)) add(moduleName(dependency), byName, tree, chosen);
        chosen.remove(name);
        chosen.put(name, module);
    }

    /** Module names spell - and _ alike. */
    private static String moduleName(String name) {
        return name.replace('-', '_').toLowerCase(Locale.ROOT);
    }

    private static byte[] decompressed(Path file) throws IOException {
        if (!file.toString().endsWith(".xz")) return Files.readAllBytes(file);
        try (InputStream in = new XZInputStream(Files.newInputStream(file))) {
            return in.readAllBytes();
        }
    }

    /** The {@code depends=} entry of the module's {@code .modinfo} ELF section: the modules it needs loaded first. */
    static List<String> dependencies(byte[] module, Path file) throws IOException {
        for (String field : modinfo(module, file)) {
            if (field.startsWith("depends=")) {
                String list = field.substring("depends=".length());
                return list.isEmpty() ? List.of() : List.of(list.split(","));
            }
        }
        return List.of();
    }

    /** The NUL-separated {@code key=value} fields of an ELF64 module's {@code .modinfo} section. */
    static List<String> modinfo(byte[] module, Path file) throws IOException {
        ByteBuffer elf = ByteBuffer.wrap(module).order(ByteOrder.LITTLE_ENDIAN);
        try {
            if (elf.getInt(0) != 0x464c457f || elf.get(4) != 2) throw new IOException(file + " is not an ELF64 module");
            long sectionTable = elf.getLong(0x28);
            int entrySize = Short.toUnsignedInt(elf.getShort(0x3a));
            int count = Short.toUnsignedInt(elf.getShort(0x3c));
            int namesIndex = Short.toUnsignedInt(elf.getShort(0x3e));
            if (entrySize < 64 || namesIndex >= count || sectionTable < 0 || sectionTable + (long) count * entrySize > module.length) {
                throw new IOException(file + ": its ELF section table is not inside the file");
            }
            int names = Math.toIntExact(sectionTable + (long) namesIndex * entrySize);
            for (int i = 0; i < count; i++) {
                int header = Math.toIntExact(sectionTable + (long) i * entrySize);
                String name = cString(module, Math.toIntExact(elf.getLong(names + 0x18) + Integer.toUnsignedLong(elf.getInt(header))));
                if (!name.equals(".modinfo")) continue;
                long offset = elf.getLong(header + 0x18);
                long size = elf.getLong(header + 0x20);
                if (offset < 0 || size < 0 || offset + size > module.length) throw new IOException(file + ": .modinfo is not inside the file");
                List<String> fields = new ArrayList<>();
                for (String f : new String(module, (int) offset, (int) size, StandardCharsets.UTF_8).split("\0")) {
                    if (!f.isEmpty()) fields.add(f);
                }
                return fields;
            }
            return List.of();
        } catch (IndexOutOfBoundsException | ArithmeticException e) {
            throw new IOException(file + ": a malformed ELF module (" + e.getMessage() + ")", e);
        }
    }

    private static String cString(byte[] bytes, int offset) {
        int end = offset;
        while (bytes[end] != 0) end++;
        return new String(bytes, offset, end - offset, StandardCharsets.UTF_8);
    }
}
