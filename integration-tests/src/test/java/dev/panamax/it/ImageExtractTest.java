package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.DebianPackages;
import dev.panamax.guest.RescueGuest;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.HostKvm;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.TreeMap;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code panamax image extract} copies a known tree back out of ext4 file systems that {@code mkfs.ext4 -d}
 * made from it: from a raw image, a qcow2, a damaged qcow2 (all but the damaged file) and a partition of a
 * partitioned disk, each in one boot of the rescue guest where real KVM is.
 */
@PanamaxTest
@Timeout(900) // the first run downloads Debian's kernel (about 100 MB)
class ImageExtractTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(400);
    private static final int BLOCK = 4096;
    private static final long MIB = 1 << 20;
    /** The damaged file: large enough that a cluster in its middle holds nothing else. */
    private static final String DAMAGED = "bin/data.bin";

    private static Path dir;
    private static Path tree;
    private static Path raw;

    @BeforeAll
    static void makeImages() throws IOException {
        DebianPackages.ensureInstalled("e2fsprogs", "qemu-utils");
        dir = Files.createDirectories(Path.of("target", "extract-test-" + UUID.randomUUID()).toAbsolutePath());
        tree = Files.createDirectories(dir.resolve("tree"));
        Files.writeString(tree.resolve("hello.txt"), "hello from the image\n");
        byte[] data = new byte[3 << 20];
        new Random(21).nextBytes(data);
        Files.createDirectories(tree.resolve("bin"));
        Files.write(tree.resolve(DAMAGED), data);
        Files.write(tree.resolve("empty"), new byte[0]);
        Path deep = Files.createDirectories(tree.resolve("a/b/c"));
        Files.writeString(deep.resolve("deep.txt"), "three levels down\n");
        Path spaced = Files.createDirectories(tree.resolve("dir with space"));
        Files.writeString(spaced.resolve("ünïcode.txt"), "non-ASCII name\n");
        Path secret = Files.writeString(tree.resolve("secret"), "mode 0600\n");
        Files.setPosixFilePermissions(secret, PosixFilePermissions.fromString("rw-------"));
        Path tool = Files.writeString(tree.resolve("bin/tool.sh"), "#!/bin/sh\necho tool\n");
        Files.setPosixFilePermissions(tool, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.createSymbolicLink(tree.resolve("link"), Path.of("hello.txt"));
        raw = dir.resolve("disk.raw");
        mkfs(raw, tree, 64);
    }

    private static void mkfs(Path image, Path from, int mib) {
        host("mkfs.ext4", "-q", "-F", "-b", String.valueOf(BLOCK), "-d", from.toString(), image.toString(), mib + "M");
    }

    private static String host(String... argv) {
        try {
            Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.waitFor() != 0) throw new IllegalStateException(String.join(" ", argv) + " failed: " + out);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /**
     * Runs {@code panamax image extract --no-rig ARGS} where real KVM is, with the rescue guest this host built
     * (the rig has no dpkg database to find Debian's kernel package with).
     */
    private static RunResult extract(RealKvm kvm, String... args) {
        RescueGuest.Images guest = RescueGuest.ensure();
        List<String> argv = new ArrayList<>(List.of("image", "extract", "--no-rig", "--timeout", "300",
                "--kernel", guest.kernel().toString(), "--initrd", guest.initramfs().toString()));
        argv.addAll(List.of(args));
        return kvm.runJava(Panamax.class.getName(), argv, TIMEOUT, System.out);
    }

    /** Runs {@code panamax image extract ARGS} on this host, as a user does: into the rig where KVM only emulates. */
    private static RunResult extractFromThisHost(String... args) throws IOException, InterruptedException {
        List<String> extract = new ArrayList<>(List.of("image", "extract", "--timeout", "300"));
        extract.addAll(List.of(args));
        List<String> argv = new HostKvm().javaCommand(Panamax.class.getName(), extract); // a JVM of its own, this class path
        long start = System.nanoTime();
        Process p = new ProcessBuilder(argv).redirectErrorStream(true).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        System.out.print(out);
        return new RunResult(p.waitFor(), false, Duration.ofNanos(System.nanoTime() - start), out);
    }

    /** Every entry below {@code root}: its relative path, then what it is (a file's mode and SHA-256, a link's target). */
    private static TreeMap<String, String> contents(Path root) throws IOException {
        TreeMap<String, String> entries = new TreeMap<>();
        try (Stream<Path> all = Files.walk(root)) {
            for (Path p : all.filter(p -> !p.equals(root)).toList()) {
                String name = root.relativize(p).toString();
                if (name.equals("lost+found")) continue;
                if (Files.isSymbolicLink(p)) {
                    entries.put(name, "-> " + Files.readSymbolicLink(p));
                } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                    entries.put(name, "dir " + PosixFilePermissions.toString(Files.getPosixFilePermissions(p)));
                } else {
                    entries.put(name, PosixFilePermissions.toString(Files.getPosixFilePermissions(p)) + " " + sha256(Files.readAllBytes(p)));
                }
            }
        }
        return entries;
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** From this host's command line, as a user runs it: through the rig where this host's KVM only emulates. */
    @Test
    void theWholeTreeComesBackFromARawImage() throws IOException, InterruptedException {
        Path out = dir.resolve("from-raw");
        RunResult r = extractFromThisHost(raw.toString(), "/", out.toString());

        assertThat(r.exitStatus()).as(r.output()).isZero();
        assertThat(r.output()).contains("panamax: reading ext4");
        assertThat(contents(out)).isEqualTo(contents(tree));
        assertThat(Files.getLastModifiedTime(out.resolve("a/b/c/deep.txt")).toInstant().getEpochSecond())
                .as("times kept (to the second: mkfs.ext4 -d keeps no more)")
                .isEqualTo(Files.getLastModifiedTime(tree.resolve("a/b/c/deep.txt")).toInstant().getEpochSecond());
    }

    @Test
    void aQcow2ListsItsTreeAndGivesBackWhatIsAskedFor(RealKvm kvm) throws IOException {
        Path qcow2 = dir.resolve("disk.qcow2");
        host("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.toString(), qcow2.toString());
        Path out = dir.resolve("from-qcow2");

        RunResult listed = extract(kvm, "--list", qcow2.toString(), "/a", "/link", "/nowhere");
        assertThat(listed.exitStatus()).as("a path not in the image: %s", listed.output()).isEqualTo(1);
        assertThat(listed.output()).contains("drwxr-xr-x 4096 /a\n", "-rw-r--r-- 18 /a/b/c/deep.txt\n", "lrwxrwxrwx 9 /link\n",
                "panamax: /nowhere: not in the image");

        RunResult copied = extract(kvm, qcow2.toString(), "/a/b", "/" + DAMAGED, "/dir with space", out.toString());
        assertThat(copied.exitStatus()).as(copied.output()).isZero();
        assertThat(contents(out.resolve("b"))).isEqualTo(contents(tree.resolve("a/b")));
        assertThat(out.resolve("data.bin")).hasSameBinaryContentAs(tree.resolve(DAMAGED));
        assertThat(out.resolve("dir with space/ünïcode.txt")).hasSameTextualContentAs(tree.resolve("dir with space/ünïcode.txt"));
    }

    /**
     * A qcow2 whose refcount table was zeroed and whose L2 entry for a cluster in the middle of one file
     * points past the end of the image: every other file comes back exactly, that one is named as not copied.
     */
    @Test
    void aDamagedQcow2GivesBackEveryIntactFile(RealKvm kvm) throws IOException {
        Path damaged = dir.resolve("damaged.qcow2");
        host("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.toString(), damaged.toString());
        long block = firstBlock(raw, "/" + DAMAGED);
        long guestOffset = block * BLOCK + MIB; // a MiB into the file: a whole 64 KiB cluster of it
        pointPastTheEnd(damaged, hostCluster(damaged, guestOffset));
        zeroRefcountTable(damaged);
        Path out = dir.resolve("from-damaged");

        RunResult r = extract(kvm, damaged.toString(), "/", out.toString());

        assertThat(r.exitStatus()).as(r.output()).isEqualTo(1);
        assertThat(r.output()).contains("/" + DAMAGED).containsIgnoringCase("I/O error");
        TreeMap<String, String> expected = contents(tree);
        TreeMap<String, String> got = contents(out);
        expected.remove(DAMAGED);
        got.remove(DAMAGED);
        assertThat(got).isEqualTo(expected);
    }

    @Test
    void aPartitionedDiskIsReadFromThePartitionNamed(RealKvm kvm) throws IOException {
        Path other = Files.createDirectories(dir.resolve("other-tree"));
        Files.writeString(other.resolve("other.txt"), "the first partition\n");
        Path first = dir.resolve("p1.raw");
        mkfs(first, other, 16);
        Path disk = dir.resolve("partitioned.raw");
        partitioned(disk, first, raw);

        RunResult ambiguous = extract(kvm, "--list", disk.toString());
        assertThat(ambiguous.exitStatus()).as(ambiguous.output()).isEqualTo(2);
        assertThat(ambiguous.output()).contains("panamax: the image has partitions 1 (ext4), 2 (ext4): name the one to read after IMAGE");

        // What an earlier run left in DEST (or one the rig died under, which the harness runs again) is replaced, links too.
        Path out = Files.createDirectories(dir.resolve("from-partition"));
        Files.writeString(out.resolve("hello.txt"), "left by an earlier run\n");
        Files.createSymbolicLink(out.resolve("link"), Path.of("elsewhere"));
        RunResult r = extract(kvm, disk.toString(), "2", "/hello.txt", "/link", out.toString());
        assertThat(r.exitStatus()).as(r.output()).isZero();
        assertThat(r.output()).contains("panamax: reading partition 2, ext4");
        assertThat(out.resolve("hello.txt")).hasSameTextualContentAs(tree.resolve("hello.txt"));
        assertThat(Files.readSymbolicLink(out.resolve("link"))).isEqualTo(Path.of("hello.txt"));
    }

    /** The first block of {@code file} in the ext4 image, from debugfs. */
    private static long firstBlock(Path image, String file) {
        String out = host("debugfs", "-R", "bmap " + file + " 0", image.toString());
        Matcher m = Pattern.compile("(?m)^(\\d+)\\s*$").matcher(out);
        assertThat(m.find()).as(out).isTrue();
        return Long.parseLong(m.group(1));
    }

    /** The host offset of the cluster that holds guest offset {@code offset}, from {@code qemu-img map}. */
    private static long hostCluster(Path qcow2, long offset) {
        String map = host("qemu-img", "map", "--output=json", qcow2.toString());
        Matcher m = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+),[^}]*\"data\": true[^}]*\"offset\": (\\d+)").matcher(map);
        while (m.find()) {
            long start = Long.parseLong(m.group(1));
            if (offset >= start && offset < start + Long.parseLong(m.group(2))) {
                long host = Long.parseLong(m.group(3)) + (offset - start);
                return host & ~0xffffL;
            }
        }
        throw new AssertionError("no data at " + offset + " in " + map);
    }

    /** Rewrites the L2 entry that points at {@code cluster} (standard, copied) to point a MiB past the end of the file. */
    private static void pointPastTheEnd(Path qcow2, long cluster) throws IOException {
        byte[] file = Files.readAllBytes(qcow2);
        ByteBuffer b = ByteBuffer.wrap(file);
        long entry = cluster | 1L << 63;
        long beyond = ((file.length + MIB) & ~0xffffL) | 1L << 63;
        int found = 0;
        for (int i = 0; i + 8 <= file.length; i += 8) {
            if (b.getLong(i) == entry) {
                b.putLong(i, beyond);
                found++;
            }
        }
        assertThat(found).as("L2 entries pointing at the cluster").isEqualTo(1);
        Files.write(qcow2, file);
    }

    private static void zeroRefcountTable(Path qcow2) throws IOException {
        try (FileChannel ch = FileChannel.open(qcow2, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer header = ByteBuffer.allocate(64);
            ch.read(header, 0);
            long table = header.getLong(48);
            int clusters = header.getInt(56);
            ch.write(ByteBuffer.allocate(clusters << 16), table);
        }
    }

    /** A disk with an MBR and two Linux partitions holding {@code first} and {@code second}, each from 1 MiB boundaries. */
    private static void partitioned(Path disk, Path first, Path second) throws IOException {
        long firstStart = MIB;
        long secondStart = firstStart + Files.size(first);
        try (RandomAccessFile out = new RandomAccessFile(disk.toFile(), "rw")) {
            out.setLength(secondStart + Files.size(second));
            ByteBuffer mbr = ByteBuffer.allocate(512).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            partitionEntry(mbr, 0, firstStart, Files.size(first));
            partitionEntry(mbr, 1, secondStart, Files.size(second));
            mbr.put(510, (byte) 0x55).put(511, (byte) 0xaa);
            out.write(mbr.array());
            out.seek(firstStart);
            out.write(Files.readAllBytes(first));
            out.seek(secondStart);
            out.write(Files.readAllBytes(second));
        }
    }

    private static void partitionEntry(ByteBuffer mbr, int index, long start, long size) {
        int at = 446 + 16 * index;
        mbr.put(at + 4, (byte) 0x83).putInt(at + 8, (int) (start / 512)).putInt(at + 12, (int) (size / 512));
    }
}
