package dev.panamax.cli;

import dev.panamax.api.Drive;
import dev.panamax.api.SharedFolder;
import dev.panamax.api.VirtualMachine;
import dev.panamax.api.VirtualMachineException;
import dev.panamax.cli.common.UserError;
import dev.panamax.control.VmConfig;
import dev.panamax.demo.KvmAcceleration;
import dev.panamax.guest.GuestImages;
import dev.panamax.guest.KernelConfig;
import dev.panamax.guest.MissingIngredientException;
import dev.panamax.guest.PanamaxCache;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RigException;
import dev.panamax.rig.RigSession;
import dev.panamax.rig.RunResult;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.VmRules;
import java.io.FileOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code panamax exec}: boots the tiny guest, runs one command there through the guest agent over
 * vsock (frames in {@link ExecProtocol}), with its stdout, stderr and stdin ours, and ends with its status.
 */
@Command(name = "exec", mixinStandardHelpOptions = true, exitCodeOnInvalidInput = ExecCommand.FAILED, description = {
    "Boot the built-in tiny guest, run CMD there, and end with its exit status.",
    "CMD's stdout and stderr are this command's, streamed; stdin is forwarded.",
    "Exit status: CMD's own; 128+N for signal N; 124 on timeout; 123 when the guest kernel crashed;"
            + " 122 for kernel warnings with --fail-on-warn; 125 when Panamax could not run CMD.",
    "Where this host's KVM only emulates, runs inside the nested KVM rig."})
final class ExecCommand implements java.util.concurrent.Callable<Integer> {
    /** Status: with {@code --fail-on-warn}, the kernel logged an Oops, BUG or WARN and the command's status was 0. */
    static final int KERNEL_WARNED = 122;
    /** Status: the guest kernel crashed (panic, triple fault, or another failure of the VM). */
    static final int GUEST_CRASHED = 123;
    /** Status: the command outlived {@code --timeout}; the VM was killed. */
    static final int TIMED_OUT = 124;
    /** Status: Panamax could not run the command (bad options, a VM that cannot be built, no status from the guest). */
    static final int FAILED = 125;

    /** The host's vsock port the agent connects to (a private socket of this run: any port serves). */
    static final int AGENT_PORT = 52;
    /** The tag of the host's root directory's share with {@code --rootfs host}; no {@code --share} may take it. */
    static final String HOST_ROOT_TAG = "panamax-host-root";

    /** The guest's CID (any valid one: the device is this VM's alone). */
    private static final long GUEST_CID = 3;

    @Option(names = "--kernel", paramLabel = "PATH", description = "vmlinux or bzImage with virtio-vsock (default: the built-in one)")
    Path kernel;

    @Option(names = "--initrd", paramLabel = "PATH", description = "initial ramdisk with Panamax's /init and agent (default: the built-in one)")
    Path initrd;

    @Option(names = "--cpus", paramLabel = "N", defaultValue = "" + VirtualMachine.DEFAULT_CPUS, description = "vCPUs (default: ${DEFAULT-VALUE})")
    int cpus;

    @Option(names = "--memory", paramLabel = "SIZE", defaultValue = VirtualMachine.DEFAULT_MEMORY_MIB + "M",
            description = "guest RAM, e.g. 512M or 2G (default: ${DEFAULT-VALUE})")
    String memory;

    @Option(names = "--share", paramLabel = "DIR[,tag=T][,readonly][,cache=MODE]",
            description = "share the host directory DIR with the guest at /mnt/T (as run --share); repeatable")
    List<String> shareSpecs = new ArrayList<>();

    @Option(names = "--disk", paramLabel = DiskOption.SYNTAX, description = "a virtio-blk disk, as run --disk; repeatable")
    List<String> diskSpecs = new ArrayList<>();

    @Option(names = "--timeout", paramLabel = "DURATION",
            description = "kill the VM after this long from its start (boot included), status 124: e.g. 60s, 500ms, 5m, or seconds")
    String timeout;

    @Option(names = "--fail-on-warn", description = "a status of 0 becomes 122 when the guest kernel logged an Oops, BUG or WARN")
    boolean failOnWarn;

    @Option(names = "--console", description = "copy the guest's serial console to stderr as it comes (else it is shown only on failure)")
    boolean showConsole;

    @Option(names = "--rootfs", paramLabel = "host|none",
            description = "host: CMD runs in this host's root directory, read-only under a tmpfs overlay that takes its writes,"
                    + " in the current directory (the default with a kernel of your own and no --initrd); none: in the initramfs (the"
                    + " default otherwise)")
    String rootfs;

    /** For the exec inside the rig: the outer exec's current directory, where CMD runs with {@code --rootfs host}. */
    @Option(names = "--workdir", hidden = true)
    Path workDir;

    @Option(names = "--no-rig", description = "never move into the nested KVM rig, even where KVM only emulates")
    boolean noRig;

    /**
     * For the exec inside the rig: the file its stderr is appended to, which the outer exec copies to its own
     * (the rig's channel carries one stream). Set by the JVM itself, so that a standby JVM started before
     * the command can serve it too.
     */
    @Option(names = "--stderr-file", hidden = true)
    Path stderrTo;

    @Parameters(arity = "1..*", paramLabel = "CMD", description = "the command and its arguments (after --)")
    List<String> command;

    @Override
    public Integer call() throws IOException {
        if (stderrTo != null) {
            System.setErr(new PrintStream(new FileOutputStream(stderrTo.toFile(), true), true, StandardCharsets.UTF_8));
        }
        try {
            Duration limit = timeout == null ? null : parseTimeout(timeout);
            try {
                ExecProtocol.command(command); // refused now rather than by the agent
            } catch (IllegalArgumentException e) {
                throw new UserError("CMD: " + e.getMessage());
            }
            VmConfig vm = vmConfig();
            if (movesIntoRig(vm)) {
                return runInRig(vm, limit);
            }
            return runHere(vm, limit);
        } catch (UserError e) {
            System.err.println("panamax: " + e.getMessage());
            return FAILED;
        }
    }

    private static final Pattern DURATION = Pattern.compile("(\\d{1,9})(ms|s|m|h)?");

    /** {@code --timeout}: a positive whole number with ms, s, m or h (seconds without). */
    static Duration parseTimeout(String text) {
        Matcher m = DURATION.matcher(text);
        if (!m.matches() || Long.parseLong(m.group(1)) == 0) {
            throw new UserError("--timeout " + text + ": write a positive whole number with ms, s, m or h, e.g. 60s");
        }
        long n = Long.parseLong(m.group(1));
        String unit = m.group(2) == null ? "s" : m.group(2);
        return switch (unit) {
            case "ms" -> Duration.ofMillis(n);
            case "s" -> Duration.ofSeconds(n);
            case "m" -> Duration.ofMinutes(n);
            default -> Duration.ofHours(n);
        };
    }

    /** {@code --timeout} as the inner exec in the rig is given it again. */
    static String formatTimeout(Duration limit) {
        return limit.toMillis() + "ms";
    }

    /**
     * exec's exit status once the VM has ended (or was killed at the timeout).
     *
     * @param timedOut the VM outlived {@code --timeout}
     * @param vmClean  the VM ended in order (the guest rebooted), not by a crash
     * @param command  the command's status as the agent reported it, if it did
     * @param warned   the kernel logged an Oops, BUG or WARN
     */
    static int exitStatus(boolean timedOut, boolean vmClean, OptionalInt command, boolean warned, boolean failOnWarn) {
        if (timedOut) {
            return TIMED_OUT;
        }
        if (!vmClean) {
            return GUEST_CRASHED;
        }
        if (command.isEmpty()) {
            return FAILED;
        }
        return command.getAsInt() == 0 && warned && failOnWarn ? KERNEL_WARNED : command.getAsInt();
    }

    /** The VM: the kernel and initramfs (built-in unless given), the shares, a vsock device whose socket {@link #runHere} sets. */
    private VmConfig vmConfig() {
        try {
            long memoryBytes = MemorySize.parse(memory, "--memory");
            if (memoryBytes % (1 << 20) != 0) {
                throw new UserError("--memory must be a whole number of MiB, not " + memory);
            }
            int vcpus = VmRules.vcpuCount(cpus, "--cpus");
            long memoryMib = VmRules.memoryMib(memoryBytes >> 20, "--memory");
            Path k = kernel != null ? VmRules.bootFile(kernel.toString(), "--kernel") : GuestImages.defaultVmlinux();
            Path i = initrd != null ? VmRules.bootFile(initrd.toString(), "--initrd") : GuestImages.defaultInitramfs();
            List<SharedFolder> shares = RunCommand.parseShares(shareSpecs);
            List<Drive> drives = new ArrayList<>();
            for (String disk : diskSpecs) {
                drives.add(DiskOption.parse(disk, drives.size()));
            }
            VmConfig.checkDrives(drives, n -> "--disk " + diskSpecs.get(n));
            boolean hostRoot = hostRoot();
            if (kernel != null) {
                List<KernelConfig.Requirement> needed = new ArrayList<>(KernelConfig.EXEC);
                if (hostRoot || !shares.isEmpty()) {
                    needed.addAll(KernelConfig.SHARES);
                }
                if (hostRoot) {
                    needed.addAll(KernelConfig.HOST_ROOT);
                }
                KernelConfigCommand.requireOptions(k, needed);
            }
            // quiet keeps boot messages off the console (each byte is a VM exit); loglevel=5 still shows WARN's lines.
            String cmdline = RunCommand.withShareMounts("quiet loglevel=5 panamax.exec=" + AGENT_PORT, shares);
            // Reserved whatever --rootfs says: the rig's inner exec and the guest's /init know the tag by name.
            if (shares.stream().anyMatch(s -> s.tag().equals(HOST_ROOT_TAG))) {
                throw new UserError("--share: the tag " + HOST_ROOT_TAG + " is --rootfs host's; choose another");
            }
            if (hostRoot) {
                List<SharedFolder> all = new ArrayList<>(shares);
                all.add(new SharedFolder(Path.of("/"), HOST_ROOT_TAG, true));
                shares = List.copyOf(all);
                cmdline += " panamax.rootfs=" + HOST_ROOT_TAG;
            }
            return new VmConfig(new VmConfig.BootSource(k, i, cmdline), new VmConfig.MachineConfig(vcpus, memoryMib, false),
                    drives, List.of(), null, shares);
        } catch (ConfigException | MissingIngredientException e) {
            throw new UserError(e.getMessage());
        }
    }

    /**
     * Whether CMD runs in the host's root directory: {@code --rootfs}, else host exactly when {@code
     * --kernel} is a user's (not the built-in one) and no {@code --initrd} brings a world of its own
     * (as {@code image extract}'s rescue guest does).
     */
    private boolean hostRoot() {
        if (rootfs == null) {
            return kernel != null && !GuestImages.isBuiltInKernel(kernel) && initrd == null;
        }
        return switch (rootfs) {
            case "host" -> true;
            case "none" -> false;
            default -> throw new UserError("--rootfs " + rootfs + ": use host or none");
        };
    }

    /** Where CMD runs with {@code --rootfs host}: {@code --workdir} (the exec inside the rig), else this process's directory. */
    private String commandDirectory() {
        Path dir = workDir != null ? workDir : Path.of("").toAbsolutePath();
        return dir.toAbsolutePath().normalize().toString();
    }

    private boolean movesIntoRig(VmConfig vm) {
        if (noRig) {
            return false;
        }
        if (KvmAcceleration.detect().hardware()) {
            return false;
        }
        for (SharedFolder s : vm.sharedFolders()) {
            if (s.path().toAbsolutePath().normalize().getNameCount() == 0 && !s.tag().equals(HOST_ROOT_TAG)) {
                throw new UserError("shared folder " + s.tag() + ": the VM would run inside the nested KVM rig (this host's KVM"
                        + " only emulates), which never shares / itself; share a directory below it");
            }
        }
        return true;
    }

    /** Boots the VM in this process and runs the command; its status. */
    private int runHere(VmConfig described, Duration limit) throws IOException {
        Path dir = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "panamax-exec-");
        try {
            Path uds = dir.resolve("vsock");
            VmConfig config = new VmConfig(described.bootSource(), described.machineConfig(), described.drives(), List.of(),
                    new VmConfig.Vsock(GUEST_CID, uds), described.sharedFolders());
            try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                listener.bind(UnixDomainSocketAddress.of(Path.of(uds + "_" + AGENT_PORT)), 1);
                return boot(config, listener, limit);
            }
        } finally {
            PanamaxCache.deleteTree(dir);
        }
    }

    private int boot(VmConfig config, ServerSocketChannel listener, Duration limit) {
        String directory = config.sharedFolders().stream().anyMatch(s -> s.tag().equals(HOST_ROOT_TAG)) ? commandDirectory() : null;
        KernelLog log = new KernelLog();
        PrintStream out = System.out;
        PrintStream err = System.err;
        OutputStream console = showConsole ? new DetachedOutputStream(unclosed(err), "exec-console") : OutputStream.nullOutputStream();
        VirtualMachine vm;
        try {
            vm = config.toBuilder().console(console).build();
        } catch (ConfigException | VirtualMachineException e) {
            throw new UserError(e.getMessage());
        }
        try (vm) {
            vm.addConsoleLineListener(log::line);
            CompletableFuture<ExecSession.Result> session = new CompletableFuture<>();
            AtomicReference<SocketChannel> connection = new AtomicReference<>();
            AtomicBoolean vmEnded = new AtomicBoolean();
            Thread.ofPlatform().daemon().name("exec-session").start(() -> {
                try (SocketChannel channel = listener.accept()) {
                    connection.set(channel);
                    if (vmEnded.get()) {
                        channel.shutdownInput(); // the VM ended while this connection was accepted: the session ends at once
                    }
                    listener.close(); // one command per VM: later connections find nobody
                    session.complete(new ExecSession(channel, out, err).run(command, directory, System.in));
                } catch (IOException e) {
                    session.complete(ExecSession.Result.failed("the guest agent never connected (" + e.getMessage() + ")"));
                }
            });
            vm.start();
            VirtualMachine.Exit exit = vm.awaitExit(limit).orElse(null);
            if (exit == null) {
                RunCommand.killWithin(vm, RunCommand.KILL_GRACE);
            }
            vmEnded.set(true);
            ExecSession.Result result = sessionResult(session, listener, connection);
            int status = exitStatus(exit == null, exit == null || exit.clean(), result.status(), log.warningCount() > 0, failOnWarn);
            report(status, exit, result, log, limit, vm);
            return status;
        }
    }

    /**
     * The session's result once the VM has ended. An agent that reported its command's status has had
     * its connection closed by then (it waits for that before /init reboots); any other session is
     * ended now, by closing the listener (no agent connected) or the connection (no status came).
     */
    private static ExecSession.Result sessionResult(CompletableFuture<ExecSession.Result> session, ServerSocketChannel listener,
            AtomicReference<SocketChannel> connection) {
        try {
            listener.close();
            SocketChannel channel = connection.get();
            if (channel != null) {
                channel.close();
            }
            return session.get(RunCommand.KILL_GRACE.toSeconds(), TimeUnit.SECONDS);
        } catch (IOException | TimeoutException e) {
            return ExecSession.Result.failed("the guest agent's connection did not end with the VM");
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return ExecSession.Result.failed("interrupted");
        }
    }

    /** Says on stderr why the status is what it is, when it is not simply the command's; then the kernel's warnings. */
    private void report(int status, VirtualMachine.Exit exit, ExecSession.Result result, KernelLog log, Duration limit, VirtualMachine vm) {
        PrintStream err = System.err;
        if (status == TIMED_OUT) {
            err.println("panamax: the command was still running after " + limit.toMillis() + " ms (--timeout " + timeout
                    + "); killed the VM. Its vCPUs and queues:");
            RunCommand.describeKilled(vm, err);
            printConsole(err, log);
        } else if (status == GUEST_CRASHED) {
            err.println("panamax: the guest kernel crashed: " + exit);
            printConsole(err, log);
        } else if (result.status().isEmpty()) {
            err.println("panamax: the guest ended without the command's status: " + result.failure());
            printConsole(err, log);
        }
        if (log.warningCount() > 0) {
            err.println("panamax: the guest kernel logged " + log.warningCount() + " warning line" + (log.warningCount() == 1 ? "" : "s")
                    + (status == KERNEL_WARNED ? " (--fail-on-warn: status " + KERNEL_WARNED + ")" : "") + ":");
            for (String line : log.warnings()) {
                err.println("  " + ExecSession.printable(line));
            }
        }
    }

    private void printConsole(PrintStream err, KernelLog log) {
        if (showConsole) {
            return; // it is on stderr already
        }
        err.println("panamax: the guest's console ended with:");
        for (String line : log.tail()) {
            err.println("  " + ExecSession.printable(line));
        }
    }

    /**
     * Runs this exec inside the rig, in the warm rig's standby JVM when one waits. The rig's channel
     * carries one stream, which becomes our stdout; the inner exec's stderr goes to a file in the rig's
     * scratch directory (a read-write share, which the rig mounts uncached), which is copied to our
     * stderr as it grows.
     */
    private int runInRig(VmConfig vm, Duration limit) {
        RunCommand.sayWhyInRig();
        Path k = vm.bootSource().kernel().toAbsolutePath();
        Path i = vm.bootSource().initrd().toAbsolutePath();
        List<String> inner = new ArrayList<>(List.of("exec", "--no-rig", "--cpus", String.valueOf(cpus), "--memory", memory,
                "--kernel", k.toString(), "--initrd", i.toString()));
        if (limit != null) {
            inner.addAll(List.of("--timeout", formatTimeout(limit)));
        }
        if (failOnWarn) {
            inner.add("--fail-on-warn");
        }
        if (showConsole) {
            inner.add("--console");
        }
        Rig.Options options = Rig.Options.defaults().withVisible(k.getParent(), true);
        options = options.withVisible(i.getParent(), true);
        boolean hostRoot = hostRoot();
        inner.addAll(List.of("--rootfs", hostRoot ? "host" : "none"));
        if (hostRoot) {
            // The rig's own root directory stands for this host's, with the current directory shown at its path.
            Path dir = Path.of(commandDirectory());
            inner.addAll(List.of("--workdir", dir.toString()));
            if (dir.getNameCount() > 0) {
                options = options.withVisible(dir, true);
            }
        }
        for (SharedFolder s : vm.sharedFolders()) {
            if (s.tag().equals(HOST_ROOT_TAG)) {
                continue;
            }
            inner.addAll(List.of("--share", RunCommand.formatShare(s)));
            options = options.withVisible(s.path().toAbsolutePath().normalize(), s.readOnly());
        }
        for (Drive d : vm.drives()) {
            inner.addAll(List.of("--disk", DiskOption.format(d)));
            options = options.withVisible(d.path().toAbsolutePath().getParent(), d.readOnly());
        }
        inner.add("--");
        inner.addAll(command);
        // Generous: the rig's limit only guards against a wedged inner JVM; the inner exec keeps --timeout itself.
        Duration rigLimit = limit == null ? Duration.ofDays(365) : limit.plusMinutes(5);
        try (RigSession rig = RigSession.open(options)) {
            // Named by this process: a warm rig's scratch directory outlives it and serves the next command too.
            Path stderrFile = rig.scratch().resolve("exec-stderr-" + ProcessHandle.current().pid());
            Files.write(stderrFile, new byte[0]);
            List<String> args = new ArrayList<>(inner);
            args.addAll(1, List.of("--stderr-file", stderrFile.toString())); // after "exec", before its "--"
            List<String> jvm = RunCommand.jvmInRig(RunCommand.aotCache(k, i).orElse(null));
            AtomicBoolean done = new AtomicBoolean();
            Thread copier = Thread.ofPlatform().daemon().name("exec-stderr").start(() -> follow(stderrFile, done, System.err));
            RunResult result;
            try {
                result = rig.runProgram(jvm, Panamax.class.getName(), Standby.class.getName(), args, rigLimit, unclosed(System.out),
                        System.in);
            } finally {
                done.set(true);
                copier.join();
                Files.deleteIfExists(stderrFile);
            }
            return result.timedOut() ? TIMED_OUT : result.exitStatus();
        } catch (MissingIngredientException e) {
            throw new UserError(e.getMessage());
        } catch (RigException e) {
            System.err.println("panamax: the nested KVM rig failed: " + e.getMessage());
            return FAILED;
        } catch (IOException e) {
            throw new UserError("cannot use the rig's scratch directory: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return FAILED;
        }
    }

    /** How long {@link #follow} waits between looks at a file that has not grown. */
    private static final long FOLLOW_PAUSE_MILLIS = 50;

    /** Copies what is appended to {@code file} to {@code to} until {@code done} is set, then the rest. */
    static void follow(Path file, AtomicBoolean done, OutputStream to) {
        byte[] buffer = new byte[64 * 1024];
        try (RandomAccessFile in = new RandomAccessFile(file.toFile(), "r")) {
            for (;;) {
                boolean last = done.get(); // read once more after done, for what came before it
                int n;
                while ((n = in.read(buffer)) > 0) {
                    to.write(buffer, 0, n);
                    to.flush();
                }
                if (last) {
                    return;
                }
                Thread.sleep(FOLLOW_PAUSE_MILLIS);
            }
        } catch (IOException e) {
            // our stderr is gone: nobody would see the rest
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** {@code out} for a stream that closes: flushed, never closed (it is our stdout or stderr). */
    private static OutputStream unclosed(OutputStream out) {
        return new FilterOutputStream(out) {
            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                out.write(b, off, len);
            }

            @Override
            public void close() throws IOException {
                flush();
            }
        };
    }
}
