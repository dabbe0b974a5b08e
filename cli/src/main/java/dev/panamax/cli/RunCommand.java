package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import dev.panamax.boot.BootException;
import dev.panamax.boot.LinuxBoot;
import dev.panamax.guest.GuestImages;
import dev.panamax.guest.MissingIngredientException;
import dev.panamax.guest.PanamaxCache;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RunResult;
import dev.panamax.sys.KvmUnavailableException;
import dev.panamax.vm.KvmAcceleration;
import dev.panamax.vm.VmExit;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code panamax run}: boots a Linux guest with its serial console on the terminal. */
@Command(name = "run", mixinStandardHelpOptions = true, description = {
    "Boot a Linux guest with its serial console on the terminal.",
    "Without --kernel, boots the built-in tiny guest (built on first use, then cached).",
    "Where this host's KVM only emulates, runs the VM inside the nested KVM rig."})
final class RunCommand implements Callable<Integer> {

    @Option(names = "--kernel", paramLabel = "PATH", description = "vmlinux (PVH or 64-bit entry) or bzImage")
    Path kernel;

    @Option(names = "--initrd", paramLabel = "PATH", description = "initial ramdisk (default: the built-in one with the built-in kernel)")
    Path initrd;

    @Option(names = "--cmdline", paramLabel = "TEXT", defaultValue = "",
            description = "appended to \"" + VirtualMachine.BASE_COMMAND_LINE + "\"")
    String cmdline;

    @Option(names = "--cpus", paramLabel = "N", defaultValue = "1", description = "vCPUs (default: ${DEFAULT-VALUE})")
    int cpus;

    @Option(names = "--memory", paramLabel = "SIZE", defaultValue = "256M", description = "guest RAM, e.g. 512M or 2G (default: ${DEFAULT-VALUE})")
    String memory;

    @Option(names = "--console", paramLabel = "TARGET", defaultValue = "stdio",
            description = "where the serial console goes: stdio, file:PATH (appended), socket:PATH (a listening Unix socket), "
                    + "or none (default: ${DEFAULT-VALUE})")
    String console;

    @Option(names = "--boot-protocol", paramLabel = "P", defaultValue = "AUTO",
            description = "AUTO (PVH for a vmlinux with the note, else 64-bit), PVH or LINUX64")
    LinuxBoot.Protocol protocol;

    @Option(names = "--timeout", paramLabel = "SECONDS", description = "kill the guest after this long")
    Long timeoutSeconds;

    @Option(names = "--boot-time", description = "print the time from process start until the guest's /init reports user space")
    boolean bootTime;

    @Option(names = "--disk", paramLabel = DiskOption.SYNTAX,
            description = "a disk image (raw, qcow2 or vhd) as a virtio-blk device: /dev/vda, /dev/vdb, ... in order; repeatable")
    List<String> diskSpecs = new ArrayList<>();

    @Option(names = "--no-rig", description = "never move into the nested KVM rig, even where KVM only emulates")
    boolean noRig;

    @Override
    public Integer call() throws IOException {
        long memoryBytes = MemorySize.parse(memory, "--memory");
        if (memoryBytes > MemorySize.hostMemory()) {
            throw new UserError(String.format("--memory %s is more than this host's %d MiB of RAM", memory, MemorySize.hostMemory() >> 20));
        }
        if (memoryBytes % (1 << 20) != 0) {
            throw new UserError("--memory must be a whole number of MiB, not " + memory);
        }
        if (cpus < 1) {
            throw new UserError("--cpus must be at least 1, not " + cpus);
        }
        if (kernel == null && initrd != null) {
            throw new UserError("--initrd needs --kernel (the built-in kernel comes with its own initramfs)");
        }
        List<VirtualMachine.Disk> disks = new ArrayList<>();
        for (String spec : diskSpecs) {
            VirtualMachine.Disk disk = DiskOption.parse(spec, disks.size());
            if (disks.stream().anyMatch(d -> d.id().equals(disk.id()))) {
                throw new UserError("--disk " + spec + ": another disk already has the ID '" + disk.id() + "'");
            }
            disks.add(disk);
        }
        if (!noRig) {
            KvmAcceleration acceleration = KvmAcceleration.detect();
            if (acceleration.kind() == KvmAcceleration.Kind.UNAVAILABLE) {
                throw new UserError(acceleration.detail());
            }
            if (!acceleration.hardware()) {
                System.err.println("panamax: this host's KVM only emulates (" + Math.round(acceleration.nanosPerIteration())
                        + " ns per loop iteration), so the VM runs inside the nested KVM rig");
                return runInRig(disks);
            }
        }
        try {
            Path k = kernel != null ? kernel : GuestImages.defaultVmlinux();
            Path i = kernel != null ? initrd : GuestImages.defaultInitramfs();
            VirtualMachine.Builder builder = VirtualMachine.builder().kernel(k).initrd(i).commandLine(cmdline).cpus(cpus)
                    .memoryMib(memoryBytes >> 20).bootProtocol(protocol);
            try {
                disks.forEach(builder::disk);
            } catch (IllegalArgumentException e) {
                throw new UserError(e.getMessage());
            }
            try (OutputStream out = consoleTarget(); VirtualMachine vm = builder.console(out).build()) {
                if (bootTime) {
                    vm.onUserSpace(t -> System.err.printf("panamax: guest user space reached %d ms after process start; %s%n",
                            t.toMillis(), ProcessMemory.read()));
                    System.err.printf("panamax: vCPUs start %d ms after process start%n", ProcessMemory.sinceProcessStart().toMillis());
                }
                vm.start();
                VmExit exit;
                try (TerminalInput keyboard = console.equals("stdio") ? TerminalInput.open() : null) {
                    if (keyboard != null) {
                        TerminalInput.feed(vm, keyboard.keys(vm::kill));
                    }
                    exit = vm.awaitExit(timeoutSeconds == null ? null : Duration.ofSeconds(timeoutSeconds)).orElse(null);
                }
                if (exit == null) {
                    vm.kill();
                    System.err.println("panamax: the guest was still running after " + timeoutSeconds + " s; killed it");
                    return 124;
                }
                if (!exit.reason().clean()) {
                    System.err.println("panamax: the guest failed: " + exit);
                    return 1;
                }
                return 0;
            }
        } catch (BootException | KvmUnavailableException | MissingIngredientException | UncheckedIOException e) {
            throw new UserError(e.getMessage());
        }
    }

    private OutputStream consoleTarget() throws IOException {
        if (console.equals("stdio")) {
            return new java.io.FilterOutputStream(System.out) {
                @Override
                public void close() throws IOException {
                    flush(); // never close stdout
                }
            };
        }
        if (console.equals("none")) {
            return OutputStream.nullOutputStream();
        }
        if (console.startsWith("file:") && console.length() > 5) {
            return new FileOutputStream(console.substring(5), true);
        }
        if (console.startsWith("socket:") && console.length() > 7) {
            Path socket = Path.of(console.substring(7));
            try {
                SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
                return new DetachedOutputStream(Channels.newOutputStream(channel), "console-socket");
            } catch (IOException e) {
                throw new UserError("cannot connect the console to the Unix socket " + socket + ": " + e.getMessage());
            }
        }
        throw new UserError("--console must be stdio, file:PATH, socket:PATH or none, not '" + console + "'");
    }

    /**
     * An ahead-of-time cache (JDK 25) of the classes Panamax loads to boot a guest, for the JVM
     * inside the rig: on QEMU's software CPU that JVM takes about 9 s to reach its vCPUs, 2-3 s
     * less with the cache. Trained here, on the host, once per build of the class path (it is
     * keyed by the jars' sizes and times); the JVM ignores a cache that does not match.
     */
    private static Optional<Path> aotCache(Path kernel, Path initrd) {
        StringBuilder key = new StringBuilder(Runtime.version().toString());
        String classPath = System.getProperty("java.class.path");
        for (String entry : classPath.split(java.io.File.pathSeparator)) {
            Path p = Path.of(entry);
            try {
                key.append(p.toAbsolutePath()).append(Files.size(p)).append(Files.getLastModifiedTime(p));
            } catch (IOException e) {
                key.append(entry);
            }
        }
        Path cache = PanamaxCache.root().resolve("aot").resolve("cli-" + PanamaxCache.hash(key.toString(), 16) + ".aot");
        if (Files.exists(cache)) {
            return Optional.of(cache);
        }
        System.err.println("panamax: preparing a start-up cache for the JVM inside the rig (once per build, a few seconds)");
        List<String> training = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-XX:AOTCacheOutput=" + cache, "-Xlog:aot=off", "-Xlog:cds=off"));
        training.addAll(Rig.JVM_OPTIONS);
        training.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-cp", classPath, Panamax.class.getName(),
                "run", "--no-rig", "--timeout", "1", "--console", "none", "--kernel", kernel.toString()));
        if (initrd != null) {
            training.addAll(List.of("--initrd", initrd.toString()));
        }
        try {
            Files.createDirectories(cache.getParent());
            Process p = new ProcessBuilder(training).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            if (!p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        } catch (IOException e) {
            return Optional.empty(); // a start-up cache is an optimization: boot without it
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
        if (!Files.exists(cache)) {
            return Optional.empty();
        }
        // Caches of earlier builds are useless now (about 18 MB each): keep only this one.
        try (var old = Files.newDirectoryStream(cache.getParent(), "cli-*.aot")) {
            for (Path p : old) {
                if (!p.equals(cache)) {
                    Files.deleteIfExists(p);
                }
            }
        } catch (IOException e) {
            // leftovers only cost disk space
        }
        return Optional.of(cache);
    }

    /** {@code options} with {@code dir} shared, writable unless {@code readOnly}, unless a share already shows it so. */
    private static Rig.Options shared(Rig.Options options, Path dir, boolean readOnly) {
        boolean shown = options.shares().stream().anyMatch(share -> dir.startsWith(share.path()) && (readOnly || !share.readOnly()));
        return shown ? options : options.withShare(dir, readOnly);
    }

    /** Runs this same command inside the rig, where KVM is real, with the same console and exit status. */
    private int runInRig(List<VirtualMachine.Disk> disks) {
        Path k;
        Path i;
        try {
            // resolve (and build, the first time) here: the rig has no package lists
            k = (kernel != null ? kernel : GuestImages.defaultVmlinux()).toAbsolutePath();
            i = kernel != null ? (initrd == null ? null : initrd.toAbsolutePath()) : GuestImages.defaultInitramfs();
        } catch (MissingIngredientException e) {
            throw new UserError(e.getMessage());
        }
        List<String> argv = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        argv.addAll(Rig.JVM_OPTIONS);
        aotCache(k, i).ifPresent(cache -> argv.add("-XX:AOTCache=" + cache));
        argv.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Panamax.class.getName()));
        argv.addAll(List.of("run", "--no-rig", "--cmdline", cmdline, "--cpus", String.valueOf(cpus), "--memory", memory,
                "--console", console.equals("none") ? "none" : "stdio", "--boot-protocol", protocol.name()));
        if (timeoutSeconds != null) {
            argv.addAll(List.of("--timeout", timeoutSeconds.toString()));
        }
        if (bootTime) {
            argv.add("--boot-time");
        }
        argv.addAll(List.of("--kernel", k.toString()));
        Rig.Options options = shared(Rig.Options.defaults(), k.getParent(), true);
        if (i != null) {
            argv.addAll(List.of("--initrd", i.toString()));
            options = shared(options, i.getParent(), true);
        }
        for (VirtualMachine.Disk disk : disks) {
            argv.addAll(List.of("--disk", DiskOption.format(disk)));
            options = shared(options, disk.path().getParent(), disk.readOnly());
        }
        try (OutputStream out = consoleTarget(); Rig rig = Rig.start(options);
             TerminalInput keyboard = console.equals("stdio") ? TerminalInput.open() : null) {
            // Ctrl-] ends this process; its shutdown hooks stop the rig and restore the terminal.
            RunResult result = rig.run(argv, timeoutSeconds == null ? Duration.ofDays(365) : Duration.ofSeconds(timeoutSeconds + 60),
                    out, keyboard == null ? null : keyboard.keys(() -> System.exit(130)));
            return result.exitStatus();
        } catch (MissingIngredientException e) {
            throw new UserError(e.getMessage());
        } catch (IOException e) {
            throw new UserError("cannot write the console: " + e.getMessage());
        }
    }
}
