package dev.panamax.cli;

import dev.panamax.boot.TinyVmlinux;
import dev.panamax.guest.PanamaxCache;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The training run behind the launcher's ahead-of-time cache (JDK 25, {@code -XX:AOTCacheOutput}):
 * one JVM runs the commands people start most, on small images in a scratch directory, so that the
 * cache holds the classes (linked) and the method profiles every later {@code panamax} starts with.
 * Nothing is printed; a command that fails here only trains less (StartupTrainingTest sees that none does
 * but the last, whose kernel is missing on purpose: it trains run's option parsing without booting).
 *
 * <p>One {@code run} starts a real VM, so that what a start does up to the guest's first instructions (KVM's,
 * the devices' and the boot's classes) is in the cache too. Its guest is no Linux, which would need the
 * built-in kernel (minutes to build the first time) and a KVM that runs it (where KVM only emulates, Linux
 * does not boot): three instructions that reset the machine through the i8042, which ends the VM. Without
 * /dev/kvm that run fails and the cache holds less.
 */
public final class StartupTraining {
    private StartupTraining() {}

    /** The commands, with {@code %s} standing for the scratch directory. */
    static final List<String[]> COMMANDS = List.of(
            new String[] {"--version"},
            new String[] {"--help"},
            new String[] {"run", "--help"},
            new String[] {"image", "create", "-f", "raw", "%s/e.raw", "64M"},
            new String[] {"image", "create", "-f", "qcow2", "%s/a.qcow2", "64M"},
            new String[] {"image", "info", "%s/a.qcow2"},
            new String[] {"image", "check", "%s/a.qcow2"},
            new String[] {"image", "map", "%s/a.qcow2"},
            new String[] {"image", "convert", "--no-sync", "-O", "qcow2", "%s/a.raw", "%s/b.qcow2"},
            new String[] {"image", "convert", "--no-sync", "-c", "-O", "qcow2", "%s/a.raw", "%s/c.qcow2"},
            new String[] {"image", "convert", "--no-sync", "-O", "raw", "%s/b.qcow2", "%s/b.raw"},
            new String[] {"image", "convert", "--no-sync", "-O", "vhd", "%s/a.raw", "%s/a.vhd"},
            new String[] {"image", "info", "%s/a.vhd"},
            new String[] {"run", "--no-rig", "--timeout", "20", "--kernel", "%s/reset-vmlinux", "--initrd", "%s/initrd", "--disk", "%s/e.raw"},
            new String[] {"run", "--no-rig", "--kernel", "%s/missing"});

    /** The training VM's guest, 32-bit code at the PVH entry: mov al,0xfe; out 0x64,al (the i8042's reset); jmp $. */
    static final byte[] RESET_THROUGH_I8042 = {(byte) 0xb0, (byte) 0xfe, (byte) 0xe6, 0x64, (byte) 0xeb, (byte) 0xfe};

    public static void main(String[] args) throws IOException {
        Path scratch = Files.createTempDirectory("panamax-training-");
        PrintStream out = System.out;
        PrintStream err = System.err;
        PrintStream none = new PrintStream(OutputStream.nullOutputStream());
        System.setOut(none);
        System.setErr(none);
        try {
            run(scratch);
        } finally {
            System.setOut(out);
            System.setErr(err);
            PanamaxCache.deleteTree(scratch);
        }
    }

    /** Runs the commands in {@code scratch}; each one's exit status, in order. */
    static List<Integer> run(Path scratch) throws IOException {
        // A sparse disk with some data, so that convert copies and compresses clusters rather than skipping zeros.
        try (RandomAccessFile file = new RandomAccessFile(scratch.resolve("a.raw").toFile(), "rw")) {
            file.setLength(64 << 20);
            byte[] block = new byte[1 << 20];
            new Random(1).nextBytes(block);
            for (long at = 0; at < (64 << 20); at += 8 << 20) {
                file.getChannel().write(ByteBuffer.wrap(block), at);
            }
        }
        Files.write(scratch.resolve("reset-vmlinux"), TinyVmlinux.of(RESET_THROUGH_I8042, 0x100000, true));
        Files.write(scratch.resolve("initrd"), new byte[4096]);
        List<Integer> statuses = new ArrayList<>();
        for (String[] command : COMMANDS) {
            String[] argv = command.clone();
            for (int i = 0; i < argv.length; i++) {
                argv[i] = argv[i].replace("%s", scratch.toString());
            }
            statuses.add(Panamax.execute(argv));
        }
        return statuses;
    }
}
