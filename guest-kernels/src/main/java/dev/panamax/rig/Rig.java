package dev.panamax.rig;

import dev.panamax.guest.DebianPackages;
import dev.panamax.guest.Initramfs;
import dev.panamax.guest.MissingIngredientException;
import dev.panamax.guest.PanamaxCache;
import dev.panamax.guest.Progress;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.Deque;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;

/**
 * The nested KVM rig: QEMU with its software CPU (TCG, emulated AMD SVM) running Debian's stock
 * kernel, whose kvm_amd makes a real {@code /dev/kvm} for L2 guests. Started once, it runs many
 * commands one after another ({@link #run}); {@link #close} stops it. The host's {@code /usr} and
 * {@code /etc} are visible read-only, the {@linkplain Options shares} at their host paths.
 *
 * <p>QEMU never outlives the JVM that started it: it runs under {@code setpriv --pdeathsig KILL},
 * from a thread that lives as long as QEMU (the death signal follows the parent thread), and the
 * agent inside powers off when the control socket closes.
 */
public final class Rig implements RigSession, DaemonRig {
    private static final String QEMU_PACKAGE = "qemu-system-x86";
    private static final Duration KILL_GRACE = Duration.ofSeconds(30);
    /** How often the host asks the agent whether the rig is alive while a command runs. */
    private static final Duration PING_EVERY = Duration.ofSeconds(10);
    /**
     * A rig that sent nothing this long while a command ran, not even a ping's answer, is wedged:
     * QEMU's software CPU has been seen to stop the whole rig (its kernel silent, both QEMU threads
     * busy, not even a soft lockup report on its console) for good. The agent answers a ping (every
     * 10 s) within a second even with both of the rig's CPUs loaded, and each wedge costs this much of a
     * test run (two or three a CI run on a host without KVM), so half a minute, three pings: silences
     * over {@link #SILENCE_REPORTED} are reported, to show how close a healthy rig came (none in the CI
     * runs of 2026-12-06, while every wedge there lasted the minute this was then).
     */
    static final Duration WEDGED_AFTER = Duration.ofSeconds(30);
    /** What the message of a command the rig wedged under says, for a caller that runs such a command once more. */
    public static final String TAKEN_FOR_WEDGED = "so it was taken for wedged and stopped";
    /**
     * How long a rig's boot to its agent may take: it took 10-26 s (median 12) in 126 starts of CI
     * rehearsals, but once it said nothing for the 180 s this then was, the software CPU's wedge at boot.
     * So a boot that takes this long is taken for wedged and tried once more ({@link #BOOT_ATTEMPTS}).
     */
    static final Duration BOOT_TIMEOUT = Duration.ofSeconds(90);
    /** Boots of a rig tried before giving up: a wedge at boot is rare, two in a row not seen. */
    private static final int BOOT_ATTEMPTS = 2;
    /** A silence this long while a command ran is worth a line on stderr, wedged or not. */
    private static final Duration SILENCE_REPORTED = Duration.ofSeconds(20);
    private static final String SCRATCH_PREFIX = "panamax-rig-";
    /** QEMU's human monitor, beside the control socket in the scratch directory: asked where the vCPUs are at a wedge. */
    private static final String MONITOR_SOCKET = "monitor.sock";
    /** In each scratch directory: the pid of the JVM that owns it. */
    private static final String OWNER_FILE = "owner.pid";
    private static final ScheduledExecutorService TIMERS = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("rig-timers").unstarted(r));

    /** A host directory visible in the rig at the same path. */
    public record Share(Path path, boolean readOnly) {
        public Share {
            path = path.toAbsolutePath().normalize();
        }
    }

    /**
     * How to start the rig.
     *
     * @param workingDirectory where commands run (shared read-write)
     * @param shares           further host directories to share
     * @param memoryMib        the rig's RAM (it holds JVMs and L2 guests)
     * @param cpus             its vCPUs
     * @param bootTimeout      how long the boot to the agent may take
     * @param showConsole      copy the rig's console (kernel, init) to stderr
     * @param oneTcgThread     run all the rig's vCPUs on one TCG thread (see {@link #withOneTcgThread})
     * @param wedgedAfter      how long a rig may send nothing while a command runs, not even the answer
     *                         to a ping, before it is taken for wedged and stopped
     * @param jvmTraining      what the start-up cache of the JVMs started in the rig is trained on, or null
     *                         for none (see {@link #withJvmTraining})
     */
    public record Options(Path workingDirectory, List<Share> shares, int memoryMib, int cpus, Duration bootTimeout,
            boolean showConsole, boolean oneTcgThread, Duration wedgedAfter, JvmTraining jvmTraining) {

        /**
         * The working directory, the git work tree around it (sibling modules' class paths live
         * there) and the Panamax cache read-write, the Maven repository read-only; and read-only what
         * else this JVM runs from, its class path (the git work tree around an entry, else the entry's
         * directory) and its JDK, for the JVMs started in the rig: a Panamax run from another directory
         * than its checkout's found no class in the rig.
         */
        public static Options defaults() {
            Path cwd = Path.of(System.getProperty("user.dir")).toAbsolutePath();
            List<Share> shares = new ArrayList<>(List.of(new Share(PanamaxCache.root(), false)));
            workTree(cwd).ifPresent(tree -> shares.add(new Share(tree, false)));
            Path m2 = Path.of(System.getProperty("user.home"), ".m2");
            if (Files.isDirectory(m2)) shares.add(new Share(m2, true));
            Options options = new Options(cwd, shares, 4096, cpus(System.getenv("PANAMAX_RIG_CPUS")), BOOT_TIMEOUT,
                    System.getenv("PANAMAX_RIG_CONSOLE") != null, "single".equals(System.getenv("PANAMAX_RIG_TCG")), WEDGED_AFTER, null);
            for (String entry : System.getProperty("java.class.path", "").split(java.io.File.pathSeparator)) {
                Path p = Path.of(entry).toAbsolutePath().normalize();
                if (!entry.isEmpty() && Files.exists(p) && p.getParent() != null) {
                    options = options.withVisible(workTree(p).orElse(Files.isDirectory(p) ? p : p.getParent()), true);
                }
            }
            return options.withVisible(Path.of(System.getProperty("java.home")), true);
        }

        /** The git work tree {@code path} is in, if any. */
        private static Optional<Path> workTree(Path path) {
            for (Path p = path; p != null && p.getNameCount() > 0; p = p.getParent()) {
                if (Files.exists(p.resolve(".git"))) {
                    return Optional.of(p);
                }
            }
            return Optional.empty();
        }

        /**
         * Whether a rig of these options sees {@code dir} at its own path, and may write in it unless
         * {@code readOnly}: the host's /usr and /etc (read-only), the working directory and each share.
         */
        public boolean shows(Path dir, boolean readOnly) {
            Path d = dir.toAbsolutePath().normalize();
            return readOnly && (d.startsWith("/usr") || d.startsWith("/etc")) || d.startsWith(workingDirectory)
                    || shares.stream().anyMatch(s -> d.startsWith(s.path()) && (readOnly || !s.readOnly()));
        }

        /** These options with {@code dir} shared, unless they {@linkplain #shows show} it already. */
        public Options withVisible(Path dir, boolean readOnly) {
            return shows(dir, readOnly) ? this : withShare(dir, readOnly);
        }

        /** The rig's vCPUs for {@code PANAMAX_RIG_CPUS}'s value (1 to 8), else 2: a rig of one vCPU runs one TCG thread. */
        static int cpus(String value) {
            if (value == null || value.isEmpty()) {
                return 2;
            }
            try {
                int cpus = Integer.parseInt(value);
                if (cpus >= 1 && cpus <= 8) {
                    return cpus;
                }
            } catch (NumberFormatException e) {
                // refused below
            }
            throw new IllegalArgumentException("PANAMAX_RIG_CPUS is '" + value + "'; give the rig's vCPU count, 1 to 8");
        }

        public Options withShare(Path path, boolean readOnly) {
            List<Share> more = new ArrayList<>(shares);
            more.add(new Share(path, readOnly));
            return new Options(workingDirectory, more, memoryMib, cpus, bootTimeout, showConsole, oneTcgThread, wedgedAfter, jvmTraining);
        }

        public Options withConsole(boolean show) {
            return new Options(workingDirectory, shares, memoryMib, cpus, bootTimeout, show, oneTcgThread, wedgedAfter, jvmTraining);
        }

        public Options withWorkingDirectory(Path dir) {
            return new Options(dir.toAbsolutePath().normalize(), shares, memoryMib, cpus, bootTimeout, showConsole, oneTcgThread, wedgedAfter, jvmTraining);
        }

        /**
         * All vCPUs on one TCG thread. With a thread each (the default), the rig wedged in 3 of 4 runs
         * of VmLifecycleTest, which creates and destroys a VM every 0.15 s: the kernel code patching
         * that rig-init.sh's held VM now prevents. The unit tests' rig keeps one thread: with two, its
         * tests took longer in sum (vmm-core's: 240 and 286 s against 192). One thread makes SMP L2
         * guests slow (below), so boot tests keep the default.
         */
        public Options withOneTcgThread() {
            return new Options(workingDirectory, shares, memoryMib, cpus, bootTimeout, showConsole, true, wedgedAfter, jvmTraining);
        }

        /**
         * Whether a rig of these options runs what a rig of {@code wanted} runs: the same shape (vCPUs,
         * memory, TCG threads), and every directory {@code wanted} shares, its working directory too,
         * visible with the rights it asks for.
         */
        public boolean covers(Options wanted) {
            if (wanted.cpus() != cpus || wanted.memoryMib() != memoryMib || wanted.oneTcgThread() != oneTcgThread) {
                return false;
            }
            return shows(wanted.workingDirectory(), false) && wanted.shares().stream().allMatch(n -> shows(n.path(), n.readOnly()));
        }

        public Options withWedgedAfter(Duration silence) {
            return new Options(workingDirectory, shares, memoryMib, cpus, bootTimeout, showConsole, oneTcgThread, silence, jvmTraining);
        }

        /**
         * JVMs started in the rig ({@link Rig#javaCommand}) with an ahead-of-time cache trained in the rig on
         * {@code training}, once per class path and build ({@link RigJvmCache}).
         */
        public Options withJvmTraining(JvmTraining training) {
            return new Options(workingDirectory, shares, memoryMib, cpus, bootTimeout, showConsole, oneTcgThread, wedgedAfter, training);
        }
    }

    /**
     * A run of a Java program that loads and links what the JVMs started in the rig mostly load (a
     * guest's boot, for Panamax's), for their start-up cache to be trained on.
     *
     * @param mainClass its main class, on the running class path
     * @param args      its arguments, asked for only when a cache is trained
     */
    public record JvmTraining(String mainClass, Supplier<List<String>> args) {
    }

    private final Options options;
    private final Path scratch;
    private final Process qemu;
    private final Deque<String> console = new ArrayDeque<>();
    private final SocketChannel control;
    private final InputStream fromAgent;
    private final Thread shutdownHook = new Thread(this::close, "rig-shutdown");
    /** What the agent's ping answers carry; random, so a command's output cannot fake one. */
    private final String aliveToken = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong());
    private volatile boolean closed;
    /** The nonce of the command running now, for {@link #killRun}; null between commands. */
    private volatile String runningNonce;

    private Rig(Options options, Path scratch, Process qemu, SocketChannel control) {
        this.options = options;
        this.scratch = scratch;
        this.qemu = qemu;
        this.control = control;
        this.fromAgent = Channels.newInputStream(control);
    }

    public static Rig start() {
        return start(Options.defaults());
    }

    /**
     * Installs what a rig needs (QEMU, util-linux) and builds its kernel and initramfs if they are
     * not cached: the part of a start that may ask the user something or take minutes the first time.
     */
    public static RigImages.Images prepare() {
        DebianPackages.ensureInstalled(QEMU_PACKAGE, "util-linux");
        return RigImages.ensure();
    }

    /**
     * Boots the rig and returns once its agent is ready for commands; a boot that wedged (no agent
     * within the options' boot timeout) is reported with where QEMU's vCPUs stood and tried once more.
     */
    public static Rig start(Options options) {
        RigImages.Images images = prepare();
        for (int attempt = 1; ; attempt++) {
            try {
                return boot(options, images);
            } catch (BootWedgedException e) {
                if (attempt == BOOT_ATTEMPTS) throw e;
                Progress.say(e.getMessage() + "\nstarting the rig once more");
            }
        }
    }

    /** A boot that reached no agent in time, QEMU still running: the software CPU wedged (or crawled). */
    static final class BootWedgedException extends RigException {
        BootWedgedException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private static Rig boot(Options options, RigImages.Images images) {
        long begin = System.nanoTime();
        Progress.say("starting the nested KVM rig (QEMU TCG; about 10-15 s)");
        Path scratch;
        try {
            removeScratchOfDeadJvms();
            scratch = Files.createTempDirectory(SCRATCH_PREFIX);
            Files.writeString(scratch.resolve(OWNER_FILE), String.valueOf(ProcessHandle.current().pid()));
        } catch (IOException e) {
            throw new UncheckedIOException("could not create the rig's scratch directory: " + e.getMessage(), e);
        }
        Rig rig = null;
        try {
            Map<Path, Share> shares = shares(options, scratch);
            Path initrd = initrdWithShares(images.initramfs(), shares, scratch);
            Path socket = scratch.resolve("control.sock");
            List<String> argv = qemuCommand(options, images.kernel(), initrd, shares, socket);
            Process qemu = launch(argv);
            SocketChannel control = connect(socket, qemu);
            rig = new Rig(options, scratch, qemu, control);
            rig.pumpConsole();
            rig.awaitReady(options.bootTimeout());
            Runtime.getRuntime().addShutdownHook(rig.shutdownHook);
            Progress.say("rig ready in %.1f s".formatted((System.nanoTime() - begin) / 1e9));
            return rig;
        } catch (RuntimeException e) {
            if (rig != null) rig.close();
            else deleteQuietly(scratch);
            throw e;
        }
    }

    /** The directory shared with the rig read-write for exchanging files; deleted by {@link #close}. */
    @Override
    public Path scratch() {
        return scratch;
    }

    /** A private rig ends the command by stopping: nobody else uses it, and that is quickest. */
    @Override
    public void interruptRun() {
        close();
    }

    /** Whether the rig is stopped: closed, or its QEMU gone. */
    @Override
    public boolean isStopped() {
        return closed || !qemu.isAlive();
    }

    @Override
    public String whyStopped() {
        if (closed) return "it was stopped";
        if (qemu.isAlive()) return "it runs";
        return "QEMU exited with status " + qemu.exitValue() + "; the rig's console ended with:\n" + consoleTail();
    }

    /** QEMU's process id (for tests that check it is gone). */
    public long qemuPid() {
        return qemu.pid();
    }

    /** The last lines of the rig's console (kernel and init messages), for diagnosing failures. */
    public String consoleTail() {
        synchronized (console) {
            return String.join("\n", console);
        }
    }

    /**
     * Runs {@code argv} in the rig in the working directory with the host's essential environment
     * (PATH, HOME, JAVA_HOME, locale, PANAMAX_CACHE), one command at a time.
     *
     * @throws RigException when the rig dies or stops answering
     */
    @Override
    public RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input) {
        if (argv.isEmpty()) throw new IllegalArgumentException("no command to run in the rig");
        return runScript(script(options.workingDirectory(), argv), argv.getFirst(), timeout, echo, input);
    }

    /**
     * Runs a script of {@link #script}'s making, one at a time, as {@link #run} does; {@code label}
     * names it in messages. The warm rig's daemon runs its clients' scripts so.
     */
    @Override
    public synchronized RunResult runScript(String script, String label, Duration timeout, OutputStream echo, InputStream input) {
        if (closed) throw new IllegalStateException("the rig is stopped");
        String nonce = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong());
        OutputTail out = new OutputTail(echo);
        ExitTrailer trailer = new ExitTrailer(nonce, aliveToken, out);
        long start = System.nanoTime();
        AtomicBoolean timedOut = new AtomicBoolean();
        AtomicBoolean running = new AtomicBoolean(true);
        AtomicBoolean wedged = new AtomicBoolean();
        AtomicReference<String> wedgeReport = new AtomicReference<>("");
        AtomicLong lastHeard = new AtomicLong(start);
        send((input == null ? "RUN " : "RUNI ") + nonce + " " + Base64.getEncoder().encodeToString(script.getBytes(StandardCharsets.UTF_8)));
        runningNonce = nonce;
        if (input != null) {
            forwardInput(nonce, input, running);
        }
        ScheduledFuture<?> kill = TIMERS.schedule(() -> {
            timedOut.set(true);
            send("KILL " + nonce);
        }, timeout.toMillis(), TimeUnit.MILLISECONDS);
        // If even the kill gets no answer, the rig is wedged: stopping it ends the read below.
        ScheduledFuture<?> abandon = TIMERS.schedule(this::close, timeout.plus(KILL_GRACE).toMillis(), TimeUnit.MILLISECONDS);
        // A wedge long before the command's timeout is caught by pings: stopping the rig then lets
        // the caller (a test run's SharedRig, say) run the command again in a fresh rig.
        long pingEvery = Math.min(PING_EVERY.toMillis(), options.wedgedAfter().toMillis() / 3);
        AtomicLong longestSilence = new AtomicLong();
        ScheduledFuture<?> watchdog = TIMERS.scheduleAtFixedRate(() -> {
            long silence = System.nanoTime() - lastHeard.get();
            longestSilence.accumulateAndGet(silence, Math::max);
            if (silence > options.wedgedAfter().toNanos()) {
                wedgeReport.set(vcpuStates());
                wedged.set(true);
                close();
            } else {
                try {
                    send("PING " + aliveToken);
                } catch (RigException e) {
                    // stopped under us: the read below ends
                }
            }
        }, pingEvery, pingEvery, TimeUnit.MILLISECONDS);
        try {
            byte[] buf = new byte[8192];
            while (trailer.exitStatus() == null) {
                int n = fromAgent.read(buf);
                if (n < 0) throw new IOException("the control channel closed");
                lastHeard.set(System.nanoTime());
                trailer.feed(buf, 0, n);
            }
        } catch (IOException e) {
            close();
            String why = wedged.get() ? "it answered nothing for " + options.wedgedAfter().toSeconds() + " s, " + TAKEN_FOR_WEDGED
                    : e.getMessage();
            throw new RigStoppedException("the rig stopped while running " + label + " (" + why
                    + "); its console ended with:\n" + consoleTail() + wedgeReport.get(), e);
        } finally {
            runningNonce = null;
            running.set(false);
            kill.cancel(false);
            abandon.cancel(false);
            watchdog.cancel(false);
            if (!wedged.get() && longestSilence.get() > SILENCE_REPORTED.toNanos()) {
                Progress.say("the rig answered nothing for up to %d s while running %s (taken for wedged after %d s)".formatted(
                        longestSilence.get() / 1_000_000_000, label, options.wedgedAfter().toSeconds()));
            }
        }
        return new RunResult(trailer.exitStatus(), timedOut.get(), Duration.ofNanos(System.nanoTime() - start), out.text());
    }

    /**
     * Where QEMU's vCPUs are, from its monitor ({@code info registers -a}: each CPU's RIP, control
     * registers and EFER, whose SVME bit says whether nested SVM is on), as lines to append to a wedge's
     * message: the evidence for what froze the rig. A monitor that does not answer within 5 s says so
     * (a vCPU thread then holds QEMU's big lock).
     */
    String vcpuStates() {
        Path monitor = scratch.resolve(MONITOR_SOCKET);
        StringBuilder kept = new StringBuilder("\nQEMU's vCPUs then (info registers -a; the rig's kernel has no KASLR):\n");
        try (SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(monitor))) {
            ch.write(ByteBuffer.wrap("info registers -a\n".getBytes(StandardCharsets.US_ASCII)));
            ByteArrayOutputStream answer = new ByteArrayOutputStream();
            CompletableFuture<Void> read = CompletableFuture.runAsync(() -> {
                ByteBuffer buf = ByteBuffer.allocate(8192);
                try {
                    // The banner's prompt, then the answer's lines, then the next prompt.
                    while (answer.toString(StandardCharsets.US_ASCII).split("\\(qemu\\)", -1).length < 3 && ch.read(buf.clear()) > 0) {
                        answer.write(buf.array(), 0, buf.position());
                    }
                } catch (IOException e) {
                    // closed below on a timeout
                }
            });
            try {
                read.get(5, TimeUnit.SECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                kept.append("(the monitor did not answer within 5 s)\n");
            }
            for (String line : answer.toString(StandardCharsets.US_ASCII).split("\r?\n")) {
                if (line.startsWith("CPU#") || line.startsWith("RIP=") || line.startsWith("EIP=") || line.startsWith("CR0=") || line.startsWith("EFER=")) {
                    kept.append("  ").append(line.strip()).append('\n');
                }
            }
        } catch (IOException | java.util.concurrent.ExecutionException e) {
            kept.append("(no monitor: ").append(e.getMessage()).append(")\n");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return kept.toString();
    }

    /** Checks first that the class path is visible in the rig, which a missing share would hide. */
    @Override
    public RunResult runJava(String mainClass, List<String> args, Duration timeout, OutputStream echo, InputStream input) {
        for (String entry : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            Path p = Path.of(entry).toAbsolutePath().normalize();
            if (!p.startsWith(scratch) && !options.shows(p, true) && Files.exists(p)) {
                throw new IllegalArgumentException("class path entry " + p + " is not shared with the rig;"
                        + " add a share for it with Rig.Options.withShare");
            }
        }
        return RigSession.super.runJava(mainClass, args, timeout, echo, input);
    }

    @Override
    public List<String> jvmOptions() {
        return JVM_OPTIONS;
    }

    /** With the options' {@link Options#jvmTraining}, the JVM starts with the start-up cache trained on it here. */
    @Override
    public List<String> javaCommand(String mainClass, List<String> args) {
        Optional<RigJvmCache> cache = options.jvmTraining() == null ? Optional.empty()
                : RigJvmCache.prepare(options.jvmTraining(), JVM_OPTIONS, this);
        return cache.map(c -> c.javaCommand(JVM_OPTIONS, mainClass, args)).orElseGet(() -> RigSession.super.javaCommand(mainClass, args));
    }

    /** Stops the rig (the agent powers off when the control channel closes; QEMU is killed if it lingers). */
    @Override
    public void close() {
        synchronized (shutdownHook) {
            if (closed) return;
            closed = true;
        }
        try {
            control.close();
        } catch (IOException ignored) {
            // closing is all we wanted
        }
        try {
            if (!qemu.waitFor(5, TimeUnit.SECONDS)) {
                qemu.destroyForcibly();
                qemu.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            qemu.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException alreadyShuttingDown) {
            // called from the hook itself
        }
        deleteQuietly(scratch);
    }

    /**
     * Kills the command running now, if any, with everything it started; the rig stays up and the
     * command's {@link #run} returns its status (137).
     */
    @Override
    public void killRun() {
        String nonce = runningNonce;
        if (nonce != null && !closed) {
            try {
                send("KILL " + nonce);
            } catch (RigException e) {
                // the rig is gone, and the command with it
            }
        }
    }

    /** The options this rig started with. */
    @Override
    public Options options() {
        return options;
    }

    /**
     * The script that runs {@code argv} in the rig: in {@code workingDirectory}, with this process's
     * essential environment (PATH, HOME, JAVA_HOME, locale, CI, PANAMAX_CACHE). Built by the caller,
     * so that a warm rig's daemon runs a client's command with the client's directory and environment.
     */
    public static String script(Path workingDirectory, List<String> argv) {
        StringBuilder s = new StringBuilder("cd ").append(quote(workingDirectory.toString())).append(" || exit 126\n");
        Map<String, String> env = new LinkedHashMap<>();
        for (String name : List.of("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "TZ", "JAVA_HOME", "CI")) {
            String v = System.getenv(name);
            if (v != null) env.put(name, v);
        }
        env.put("PANAMAX_CACHE", PanamaxCache.root().toString());
        env.put("PANAMAX_IN_RIG", "1");
        env.forEach((k, v) -> s.append("export ").append(k).append('=').append(quote(v)).append('\n'));
        s.append("exec");
        for (String a : argv) s.append(' ').append(quote(a));
        return s.append('\n').toString();
    }

    /** Quotes {@code s} as one word for sh. */
    static String quote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    /**
     * Sends what {@code input} yields to run {@code nonce}'s stdin, as it comes (keys typed at a
     * terminal), then its end. A thread of its own, because reading input blocks; it stops sending
     * once the run is over. Small amounts only: the agent writes them into a pipe, and a command
     * that does not read would stall the agent once the pipe is full.
     */
    private void forwardInput(String nonce, InputStream input, AtomicBoolean running) {
        Thread.ofPlatform().daemon().name("rig-input").start(() -> {
            byte[] buf = new byte[3072];
            try {
                for (int n; (n = input.read(buf)) > 0 && running.get(); ) {
                    send("IN " + nonce + " " + Base64.getEncoder().encodeToString(java.util.Arrays.copyOf(buf, n)));
                }
            } catch (IOException | RigException e) {
                // the input or the rig ended; the command's stdin ends with it
            }
            if (running.get()) {
                try {
                    send("EOF " + nonce);
                } catch (RigException e) {
                    // the rig is gone already
                }
            }
        });
    }

    private void send(String line) {
        ByteBuffer b = ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.US_ASCII));
        synchronized (control) {
            try {
                while (b.hasRemaining()) control.write(b);
            } catch (IOException e) {
                throw new RigException("could not reach the rig's agent: " + e.getMessage() + "; its console ended with:\n"
                        + consoleTail(), e);
            }
        }
    }

    private void awaitReady(Duration timeout) {
        AtomicBoolean settled = new AtomicBoolean(); // the agent's first line, or the timeout: whichever comes first counts
        AtomicReference<String> wedgeReport = new AtomicReference<>();
        ScheduledFuture<?> abandon = TIMERS.schedule(() -> {
            if (!settled.compareAndSet(false, true)) return;
            wedgeReport.set(qemu.isAlive() ? vcpuStates() : ""); // before close() removes the monitor's socket
            qemu.destroyForcibly(); // no agent to power it off
            close();
        }, timeout.toMillis(), TimeUnit.MILLISECONDS);
        String failure = null;
        IOException cause = null;
        try {
            StringBuilder line = new StringBuilder();
            for (int c; (c = fromAgent.read()) != '\n'; ) {
                if (c < 0) throw new IOException("the control channel closed");
                line.append((char) c);
            }
            if (!line.toString().equals("READY")) failure = "the agent said " + line + " instead of READY";
        } catch (IOException e) {
            failure = e.getMessage();
            cause = e;
        }
        if (settled.compareAndSet(false, true)) {
            abandon.cancel(false);
            if (failure == null) return;
            close();
            throw new RigException("the rig did not boot to its agent (" + failure + "); its console ended with:\n" + consoleTail(), cause);
        }
        try {
            abandon.get(); // the report, then the stop
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.util.concurrent.ExecutionException e) {
            // close() throws nothing; the report says what it could
        }
        throw new BootWedgedException("the rig did not boot to its agent within " + timeout.toSeconds()
                + " s, so it was taken for wedged and stopped; its console ended with:\n" + consoleTail() + wedgeReport.get(), cause);
    }

    private void pumpConsole() {
        Thread.ofPlatform().daemon().name("rig-console-" + qemu.pid()).start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(qemu.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    synchronized (console) {
                        if (console.size() == 60) console.removeFirst();
                        console.addLast(line);
                    }
                    if (options.showConsole()) System.err.println("rig| " + line);
                }
            } catch (IOException ignored) {
                // QEMU is gone
            }
        });
    }

    /**
     * Starts QEMU from a thread that stays alive as long as QEMU does: PR_SET_PDEATHSIG fires when
     * the parent <em>thread</em> exits, so spawning from a short-lived caller thread would kill it early.
     */
    private static Process launch(List<String> argv) {
        CompletableFuture<Process> started = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("rig-qemu").start(() -> {
            Process p;
            try {
                p = new ProcessBuilder(argv).redirectErrorStream(true).start(); // stdin stays a pipe from this JVM
            } catch (IOException e) {
                started.completeExceptionally(e);
                return;
            }
            started.complete(p);
            try {
                p.waitFor();
            } catch (InterruptedException e) {
                p.destroyForcibly();
            }
        });
        try {
            return started.join();
        } catch (java.util.concurrent.CompletionException e) {
            throw new MissingIngredientException("could not start " + argv.get(3) + " (" + e.getCause().getMessage()
                    + "); install it with `apt-get install " + QEMU_PACKAGE + "`.", e);
        }
    }

    private static SocketChannel connect(Path socket, Process qemu) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (true) {
            if (!qemu.isAlive()) {
                String out;
                try {
                    out = new String(qemu.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                } catch (IOException e) {
                    out = e.getMessage();
                }
                throw new RigException("QEMU exited with status " + qemu.exitValue() + " before the rig booted: " + out.strip());
            }
            if (Files.exists(socket)) {
                try {
                    return SocketChannel.open(UnixDomainSocketAddress.of(socket));
                } catch (IOException e) {
                    // QEMU has bound but not listened yet
                }
            }
            if (System.nanoTime() > deadline) {
                qemu.destroyForcibly();
                throw new RigException("QEMU did not open the rig's control socket " + socket + " within 20 s");
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                qemu.destroyForcibly();
                Thread.currentThread().interrupt();
                throw new RigException("interrupted while starting the rig", e);
            }
        }
    }

    /** The shares of a run by path (parents before children), each checked; tags are assigned in order. */
    private static Map<Path, Share> shares(Options options, Path scratch) {
        List<Share> all = new ArrayList<>(options.shares());
        all.add(new Share(options.workingDirectory(), false));
        all.add(new Share(scratch, false));
        Map<Path, Share> byPath = new java.util.TreeMap<>(Comparator.comparing(Path::toString));
        for (Share s : all) {
            Path p = s.path();
            String text = p.toString();
            if (text.contains("\t") || text.contains("\n")) {
                throw new IllegalArgumentException("cannot share a path with a tab or newline: " + text);
            }
            if (!Files.isDirectory(p)) {
                throw new IllegalArgumentException("cannot share " + p + " with the rig: it is not a directory");
            }
            if (p.getNameCount() == 0) {
                throw new IllegalArgumentException("the rig never shares / itself: it spans unrelated mounts");
            }
            if (p.startsWith("/usr") || p.startsWith("/etc")) {
                if (!s.readOnly()) {
                    throw new IllegalArgumentException(p + " is inside /usr or /etc, which the rig sees read-only");
                }
                continue;
            }
            byPath.merge(p, s, (a, b) -> new Share(p, a.readOnly() && b.readOnly())); // read-write wins
        }
        // A share inside another that grants as much is already visible through it.
        byPath.values().removeIf(inner -> byPath.values().stream().anyMatch(outer -> outer != inner
                && inner.path().startsWith(outer.path()) && (!outer.readOnly() || inner.readOnly())));
        return byPath;
    }

    /** The cached initramfs with a second archive appended that lists the run's shares (/rig/shares). */
    private static Path initrdWithShares(Path base, Map<Path, Share> shares, Path scratch) {
        try {
            StringBuilder list = new StringBuilder();
            int tag = 0;
            for (Share s : shares.values()) { // tags in the order qemuCommand gives them
                list.append("s").append(tag++).append('\t').append(s.readOnly() ? "ro" : "rw").append('\t').append(s.path()).append('\n');
            }
            Path extra = scratch.resolve("shares.cpio.gz");
            try (Initramfs cpio = Initramfs.create(extra)) {
                cpio.file("rig/shares", 0644, list.toString().getBytes(StandardCharsets.UTF_8));
            }
            Path initrd = scratch.resolve("initrd.cpio.gz");
            try (OutputStream out = Files.newOutputStream(initrd)) {
                Files.copy(base, out); // the kernel unpacks concatenated gzip'd archives one after another
                Files.copy(extra, out);
            }
            return initrd;
        } catch (IOException e) {
            throw new UncheckedIOException("could not write the rig's initramfs: " + e.getMessage(), e);
        }
    }

    /**
     * Options for JVMs inside the rig. Only the C1 compiler: a JVM there crashed once (SIGSEGV in
     * freshly patched JIT code) in about 40 starts, the pattern of one TCG vCPU running translated
     * code that another had just rewritten. Tier-up from C1 to C2 is the JVM's main source of such
     * patching, and C2 compiling under QEMU's software CPU is slow anyway. (Running all the rig's
     * vCPUs on one TCG thread avoids the race too, but makes an SMP L2 guest crawl: its cross-CPU
     * waits take a TCG round-robin slice each.) And the heap settings of every Panamax JVM (the
     * launcher's {@code jvm_options} has the same): the serial collector from a 4 MiB heap, which
     * grows as needed. A VMM keeps little on its heap (guest memory, buffers and rings are native),
     * and G1 committed a 64 MiB heap and 38 MiB of its own structures up front: the VMM's memory
     * beyond guest RAM went from 83 to 65 MiB in the rig ({@code footprint-vs-qemu.sh}).
     */
    public static final List<String> JVM_OPTIONS = List.of("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xms4m");

    private static List<String> qemuCommand(Options o, Path kernel, Path initrd, Map<Path, Share> shares, Path socket) {
        List<String> argv = new ArrayList<>(List.of("setpriv", "--pdeathsig", "KILL", "qemu-system-x86_64",
                "-accel", "tcg,thread=" + (o.oneTcgThread() ? "single" : "multi"), "-cpu", "max", "-M", "pc", "-smp", String.valueOf(o.cpus()),
                "-m", String.valueOf(o.memoryMib()), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-serial", "stdio", "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                // Without KASLR, the RIPs of a wedge report (vcpuStates) are the same at every boot: /proc/kallsyms of any rig names them
                // (Debian's System.map is a placeholder; the real one is in the -dbg package).
                "-append", "console=ttyS0 panic=-1 nokaslr" + (System.getenv("PANAMAX_RIG_VERBOSE") != null ? "" : " quiet"),
                "-monitor", "unix:" + socket.resolveSibling(MONITOR_SOCKET) + ",server=on,wait=off",
                "-device", "virtio-serial-pci,id=vs",
                "-chardev", "socket,id=ctl,path=" + socket + ",server=on,wait=off",
                "-device", "virtserialport,bus=vs.0,chardev=ctl,name=panamax.ctl"));
        virtfs(argv, "usr", Path.of("/usr"), true);
        virtfs(argv, "etc", Path.of("/etc"), true);
        int tag = 0;
        for (Share s : shares.values()) virtfs(argv, "s" + tag++, s.path(), s.readOnly());
        return argv;
    }

    private static void virtfs(List<String> argv, String tag, Path path, boolean readOnly) {
        if (path.toString().contains(",")) throw new IllegalArgumentException("QEMU cannot share a path with a comma: " + path);
        argv.add("-virtfs");
        argv.add("local,path=" + path + ",mount_tag=" + tag + ",security_model=none" + (readOnly ? ",readonly=on" : ""));
    }

    /** A JVM killed with SIGKILL cannot delete its scratch directory; the next rig start does. */
    private static void removeScratchOfDeadJvms() throws IOException {
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        try (var dirs = Files.newDirectoryStream(tmp, SCRATCH_PREFIX + "*")) {
            for (Path dir : dirs) {
                try {
                    long owner = Long.parseLong(Files.readString(dir.resolve(OWNER_FILE)).strip());
                    if (ProcessHandle.of(owner).map(ProcessHandle::isAlive).orElse(false)) continue;
                } catch (IOException | NumberFormatException e) {
                    continue; // not (yet) marked by its owner: leave it
                }
                deleteQuietly(dir);
            }
        }
    }

    private static void deleteQuietly(Path dir) {
        try {
            PanamaxCache.deleteTree(dir);
        } catch (IOException ignored) {
            // a leftover temp directory is harmless
        }
    }
}
