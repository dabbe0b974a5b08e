package dev.panamax.rig;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import jdk.net.ExtendedSocketOptions;
import jdk.net.UnixDomainPrincipal;

/**
 * The warm rig's daemon: one per user, a JVM that keeps one rig running between commands and runs
 * its clients' commands in it, one at a time (the rig's agent runs one command at a time). Started by
 * the first {@link WarmRig} client that finds none; ends after {@link #IDLE_VARIABLE} (15 minutes by
 * default) without a command, on {@code panamax rig stop}, when its socket is deleted, or when a
 * client of another build asks for it (it retires once idle). QEMU runs under a death signal, so a
 * killed daemon never leaves a rig behind.
 *
 * <p>A client whose rig options the running rig does not cover (a directory it does not share, or
 * another shape) gets a fresh rig that shares what both ask for, so that clients alternating between
 * directories do not restart it each time.
 */
public final class RigDaemon {
    /** How long the daemon waits for a command before it ends: a duration like 90s, 15m or 2h. */
    static final String IDLE_VARIABLE = "PANAMAX_RIG_IDLE";
    static final Duration DEFAULT_IDLE = Duration.ofMinutes(15);
    /** How long a killed command may take to end (its agent's trailer) before the rig is taken for wedged. */
    private static final Duration KILL_GRACE = Duration.ofSeconds(30);
    /** How long a standby JVM waits for a client before it ends (the idle timeout ends it sooner). */
    private static final Duration STANDBY_LIFETIME = Duration.ofDays(1);
    private static final ScheduledExecutorService TIMERS = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("rig-daemon-timers").unstarted(r));
    /** How long a client waits for the one before to end before it is told the rig is busy. */
    private static final Duration BUSY_WAIT = Duration.ofSeconds(3);

    private final DaemonDirectory directory;
    private final Function<Rig.Options, DaemonRig> starter;
    private final Duration idle;
    private final String buildKey;
    private final Instant started = Instant.now();
    /** Held by the client being served: one at a time. */
    private final Semaphore busy = new Semaphore(1);
    private final Object lock = new Object();
    private DaemonRig rig; // guarded by lock
    private Command standby; // guarded by lock: a JVM in the rig waiting for the next client's run
    /** The script of the last standby a client asked for: started again after any command, so a run after another command finds one. */
    private volatile String lastStandby;
    private volatile long idleSince = System.nanoTime();
    private volatile String retiring; // why the daemon ends once idle; null while it serves
    private volatile boolean stopped;
    private ServerSocketChannel server;

    RigDaemon(DaemonDirectory directory, Function<Rig.Options, DaemonRig> starter, Duration idle, String buildKey) {
        this.directory = directory;
        this.starter = starter;
        this.idle = idle;
        this.buildKey = buildKey;
    }

    /** {@code RigDaemon DIRECTORY}: serves until idle; exits at once if another daemon holds the directory's lock. */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: RigDaemon DIRECTORY (started by panamax, not by hand)");
            System.exit(2);
        }
        DaemonDirectory directory = new DaemonDirectory(Path.of(args[0]));
        DaemonDirectory.check(directory.path(), DaemonDirectory.uid());
        try (FileChannel lockFile = FileChannel.open(directory.lock(), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock held = lockFile.tryLock()) {
            if (held == null) {
                return; // another daemon serves; the client that started this one finds it
            }
            Duration idle = idleTimeout(System.getenv(IDLE_VARIABLE));
            new RigDaemon(directory, Rig::start, idle, buildKey(System.getProperty("java.class.path"))).serve();
        }
        System.exit(0); // connection threads may still be blocked in reads
    }

    /** The idle timeout from {@value #IDLE_VARIABLE}'s value: 15 minutes unless it gives another. */
    static Duration idleTimeout(String value) {
        if (value == null || value.isBlank()) return DEFAULT_IDLE;
        try {
            return DurationText.parse(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(IDLE_VARIABLE + " is '" + value + "'; give a duration like 90s, 15m or 2h");
        }
    }

    /**
     * What a daemon's code is: the JDK and each class path entry's path, size and modification time.
     * A client whose key differs was built after the daemon started, so the daemon retires.
     */
    static String buildKey(String classPath) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(System.getProperty("java.home").getBytes(StandardCharsets.UTF_8));
            for (String entry : classPath.split(java.io.File.pathSeparator)) {
                Path p = Path.of(entry);
                String stamp = entry;
                if (Files.isRegularFile(p)) {
                    stamp += "\t" + Files.size(p) + "\t" + Files.getLastModifiedTime(p).toMillis();
                }
                sha.update((stamp + "\n").getBytes(StandardCharsets.UTF_8));
            }
            return HexFormat.of().formatHex(sha.digest(), 0, 16);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Listens on the directory's socket and serves until idle or stopped. */
    void serve() throws IOException {
        Files.deleteIfExists(directory.socket()); // a dead daemon's: the lock says none lives
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(directory.socket()));
        Files.setPosixFilePermissions(directory.socket(), PosixFilePermissions.fromString("rw-------"));
        say("serving on " + directory.socket() + ", pid " + ProcessHandle.current().pid() + ", idle timeout " + idle.toSeconds() + " s");
        Thread watchdog = Thread.ofPlatform().daemon().name("rig-daemon-idle").start(this::watchIdle);
        try {
            while (!stopped) {
                SocketChannel client;
                try {
                    client = server.accept();
                } catch (IOException e) {
                    if (stopped) break;
                    throw e;
                }
                Thread.ofPlatform().daemon().name("rig-daemon-client").start(() -> converse(client));
            }
        } finally {
            stop("the daemon's socket closed");
            watchdog.interrupt();
        }
    }

    /** Stops the rig and the daemon, once. */
    void stop(String why) {
        synchronized (lock) {
            if (stopped) return;
            stopped = true;
            say("stopping: " + why);
            if (rig != null) rig.close();
            rig = null;
        }
        try {
            Files.deleteIfExists(directory.socket());
            server.close();
        } catch (IOException e) {
            say("could not remove its socket: " + e.getMessage());
        }
    }

    private void watchIdle() {
        while (!stopped) {
            try {
                Thread.sleep(Math.min(1000, Math.max(50, idle.toMillis() / 10)));
            } catch (InterruptedException e) {
                return;
            }
            if (busy.availablePermits() == 0) continue;
            if (retiring != null) stop(retiring);
            else if (System.nanoTime() - idleSince > idle.toNanos()) stop("no command for " + idle.toSeconds() + " s");
            else if (!Files.exists(directory.socket())) stop("its socket " + directory.socket() + " was deleted");
        }
    }

    private void converse(SocketChannel channel) {
        try (channel) {
            UnixDomainPrincipal peer = channel.getOption(ExtendedSocketOptions.SO_PEERCRED);
            if (!peer.user().getName().equals(System.getProperty("user.name"))) {
                say("refused a connection from user " + peer.user().getName());
                return;
            }
            WarmRigWire wire = new WarmRigWire(Channels.newInputStream(channel), new ChannelOutput(channel));
            WarmRigWire.Frame first = wire.read();
            if (first == null) return;
            switch (first.type()) {
                case WarmRigWire.STATUS -> wire.write(WarmRigWire.READY, status());
                case WarmRigWire.STOP -> {
                    wire.write(WarmRigWire.READY, "stopping");
                    stop("asked to by panamax rig stop");
                }
                case WarmRigWire.HELLO -> hello(wire, first.text());
                default -> say("a client began with frame " + (char) first.type() + "; closed");
            }
        } catch (IOException | RuntimeException e) {
            say("a client's connection failed: " + e);
        }
    }

    private void hello(WarmRigWire wire, String hello) throws IOException {
        WarmRig.Hello h;
        try {
            h = WarmRig.Hello.parse(hello);
        } catch (IllegalArgumentException e) {
            wire.write(WarmRigWire.FAILED, "the warm rig's daemon refused the request: " + e.getMessage());
            return;
        }
        if (h.protocol() != WarmRigWire.PROTOCOL || !h.buildKey().equals(buildKey)) {
            retiring = "a client of another build came";
            wire.write(WarmRigWire.STALE);
            return;
        }
        if (retiring != null || stopped) {
            wire.write(WarmRigWire.STALE);
            return;
        }
        // A short wait: the client before may have just left, its command still being killed.
        boolean served;
        try {
            served = busy.tryAcquire(BUSY_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        if (!served) {
            wire.write(WarmRigWire.BUSY, "the warm rig is busy with another command");
            return;
        }
        try {
            serveClient(wire, h.options());
        } finally {
            idleSince = System.nanoTime();
            busy.release();
        }
    }

    private void serveClient(WarmRigWire wire, Rig.Options wanted) throws IOException {
        DaemonRig r;
        try {
            r = rigFor(wanted, wire);
        } catch (RuntimeException e) {
            wire.write(WarmRigWire.FAILED, String.valueOf(e.getMessage()));
            return;
        }
        wire.write(WarmRigWire.READY, r.scratch().toString());
        Command current = null;
        try {
            for (WarmRigWire.Frame f; (f = wire.read()) != null; ) {
                switch (f.type()) {
                    case WarmRigWire.RUN -> {
                        if (current != null && !ended(current)) throw new IOException("a second command before the first ended");
                        WarmRig.RunRequest request = WarmRig.RunRequest.parse(f.payload());
                        Command waiting = takeStandby(r, request.standbyScript());
                        if (waiting != null) {
                            say("a command of " + request.label() + " went to the standby JVM");
                            waiting.attach(request, wire);
                            current = waiting;
                        } else {
                            say("a command of " + request.label() + " started" + (request.standbyScript() == null ? ""
                                    : ", no standby JVM of its kind waiting"));
                            current = new Command(r, request, wire);
                            current.start();
                        }
                    }
                    case WarmRigWire.INPUT -> {
                        if (current != null) current.input.add(f.payload());
                    }
                    case WarmRigWire.END_OF_INPUT -> {
                        if (current != null) current.input.end();
                    }
                    case WarmRigWire.KILL -> {
                        if (current != null && current.isAlive()) r.killRun();
                    }
                    default -> throw new IOException("frame " + (char) f.type() + " during a session");
                }
            }
        } catch (IOException | IllegalArgumentException e) {
            say("a client's session ended: " + e.getMessage());
        } finally {
            if (current != null) finish(r, current);
        }
    }

    /** Whether {@code command} has ended; it may still be leaving its thread right after its exit frame. */
    private static boolean ended(Command command) {
        try {
            command.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return !command.isAlive();
    }

    /** After the client left: its command, if still running, is killed; a rig that does not end it is stopped. */
    private void finish(DaemonRig r, Command command) {
        command.input.abort();
        if (!command.isAlive()) return;
        r.killRun();
        try {
            command.join(KILL_GRACE.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (command.isAlive()) {
            say("a killed command did not end within " + KILL_GRACE.toSeconds() + " s; stopping the rig");
            r.close();
        }
    }

    /** The running rig if it covers {@code wanted}, else a fresh one that shares what both ask for. */
    private DaemonRig rigFor(Rig.Options wanted, WarmRigWire wire) throws IOException {
        synchronized (lock) {
            if (stopped) throw new RigException("the warm rig's daemon is stopping");
            Rig.Options options = wanted;
            if (rig != null && !rig.isStopped() && rig.options().covers(wanted)) return rig;
            if (rig != null) {
                if (rig.isStopped()) {
                    say("the rig had stopped since the last command: " + rig.whyStopped());
                } else {
                    options = union(wanted, rig.options());
                    wire.write(WarmRigWire.PROGRESS, sameShape(wanted, rig.options())
                            ? "the warm rig starts again to share this command's directories (it keeps sharing the earlier ones)"
                            : "the warm rig starts again with this command's CPUs and memory");
                }
                rig.close();
                rig = null;
            }
            String idleText = idle.toSeconds() % 60 == 0 ? idle.toMinutes() + " min" : idle.toSeconds() + " s";
            wire.write(WarmRigWire.PROGRESS, "starting the warm nested KVM rig (QEMU TCG; about 10-15 s); later commands reuse it, and it"
                    + " ends after " + idleText + " without one (or with `panamax rig stop`; PANAMAX_RIG_DAEMON=0: no warm rig)");
            long begin = System.nanoTime();
            rig = starter.apply(options);
            say("rig started in " + (System.nanoTime() - begin) / 1_000_000 + " ms, sharing " + options.shares());
            return rig;
        }
    }

    /** Whether rigs of {@code a} and of {@code b} have the same CPUs, memory and TCG threading. */
    private static boolean sameShape(Rig.Options a, Rig.Options b) {
        return a.cpus() == b.cpus() && a.memoryMib() == b.memoryMib() && a.oneTcgThread() == b.oneTcgThread();
    }

    /**
     * {@code wanted} with what {@code earlier} shared too, when both have the same shape: directories
     * that no longer exist are dropped, and a directory both share is read-write if either wants it so.
     */
    static Rig.Options union(Rig.Options wanted, Rig.Options earlier) {
        if (!sameShape(wanted, earlier)) return wanted;
        Rig.Options union = wanted;
        List<Rig.Share> more = new ArrayList<>(earlier.shares());
        more.add(new Rig.Share(earlier.workingDirectory(), false));
        for (Rig.Share s : more) {
            if (Files.isDirectory(s.path()) && !s.path().startsWith("/usr") && !s.path().startsWith("/etc")) {
                union = union.withShare(s.path(), s.readOnly());
            }
        }
        return union;
    }

    private String status() {
        StringBuilder s = new StringBuilder();
        s.append("daemon pid ").append(ProcessHandle.current().pid()).append(residentMib("self")).append(", up ")
                .append(Duration.between(started, Instant.now()).toSeconds()).append(" s, ")
                .append(busy.availablePermits() == 0 ? "serving a command" : "idle for " + (System.nanoTime() - idleSince) / 1_000_000_000 + " s")
                .append(" (it ends after ").append(idle.toSeconds()).append(" s idle)\n");
        synchronized (lock) {
            if (rig == null || rig.isStopped()) {
                s.append("no rig running\n");
            } else {
                s.append("rig: ");
                if (rig instanceof Rig real) {
                    s.append("QEMU pid ").append(real.qemuPid()).append(residentMib(String.valueOf(real.qemuPid()))).append(", ");
                }
                Rig.Options o = rig.options();
                s.append(o.cpus()).append(" vCPUs, ").append(o.memoryMib()).append(" MiB\n");
                s.append("standby JVM: ").append(standby != null && standby.isAlive() ? (standby.output.passing ? "ready" : "starting") : "none")
                        .append('\n');
                s.append("shared: ").append(o.workingDirectory());
                for (Rig.Share share : o.shares()) {
                    if (share.path().equals(o.workingDirectory())) continue; // shared already, writable
                    s.append(", ").append(share.path()).append(share.readOnly() ? " (read-only)" : "");
                }
                s.append('\n');
            }
        }
        return s.toString();
    }

    /** " (resident N MiB)" for process {@code pid} ("self" for this one), from its VmRSS; empty if unknown. */
    private static String residentMib(String pid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc", pid, "status"))) {
                if (line.startsWith("VmRSS:")) {
                    return " (resident " + Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024 + " MiB)";
                }
            }
        } catch (IOException | NumberFormatException e) {
            // gone, or unreadable: the figure is left out
        }
        return "";
    }

    private static void say(String message) {
        System.err.println(Instant.now() + " rig daemon: " + message);
    }

    /**
     * A command in the rig on a thread of its own, while the client's frames keep coming: a client's
     * script, or a standby JVM that waits for a client (its output is dropped up to its
     * {@linkplain WarmRig#STANDBY_READY ready marker}; a client's arguments come as its first input line).
     */
    private final class Command extends Thread {
        final FrameInput input = new FrameInput();
        final String script;
        private final DaemonRig rig;
        private final String label;
        private final Duration timeout;
        private final boolean takesInput;
        final Output output = new Output();
        private volatile WarmRigWire client;
        private volatile String nextStandby; // the standby script to start once this ends, if any
        private volatile boolean timedOut;
        private volatile ScheduledFuture<?> killer;

        /** A client's script, its output to {@code client}. */
        Command(DaemonRig rig, WarmRig.RunRequest request, WarmRigWire client) {
            this(rig, request.script(), request.label(), request.timeout(), false, request.interactive());
            this.client = client;
            this.nextStandby = request.standbyScript();
        }

        /** A standby JVM started from {@code script}, waiting for {@link #attach}. */
        Command(DaemonRig rig, String script) {
            this(rig, script, "a standby JVM", STANDBY_LIFETIME, true, true); // its first input line is a client's arguments
        }

        private Command(DaemonRig rig, String script, String label, Duration timeout, boolean standby, boolean takesInput) {
            super(standby ? "rig-daemon-standby" : "rig-daemon-command");
            setDaemon(true);
            this.rig = rig;
            this.script = script;
            this.label = label;
            this.timeout = timeout;
            this.takesInput = takesInput;
            output.passing = !standby;
        }

        /** Hands a waiting standby a client's request: its arguments, then the client's input, under the client's timeout. */
        void attach(WarmRig.RunRequest request, WarmRigWire to) {
            client = to;
            nextStandby = request.standbyScript();
            input.add((request.args() + "\n").getBytes(StandardCharsets.US_ASCII));
            if (!request.interactive()) input.end();
            killer = TIMERS.schedule(() -> {
                timedOut = true;
                rig.killRun();
            }, request.timeout().toMillis(), TimeUnit.MILLISECONDS);
        }

        @Override
        public void run() {
            try {
                RunResult r = rig.runScript(script, label, timeout, output, takesInput ? input : null);
                if (client != null) client.write(WarmRigWire.EXIT, r.exitStatus() + " " + (r.timedOut() || timedOut));
            } catch (RigException | IllegalStateException e) {
                try {
                    if (client != null) client.write(WarmRigWire.STOPPED, String.valueOf(e.getMessage()));
                } catch (IOException gone) {
                    // the client left
                }
            } catch (IOException e) {
                // the client left before the end
            } finally {
                input.abort(); // the rig's input thread must not wait for ever
                if (killer != null) killer.cancel(false);
                if (nextStandby != null) lastStandby = nextStandby;
                if (client != null && lastStandby != null) startStandby(rig, lastStandby);
            }
        }

        /** Passes output to the client; a standby's only after its ready marker. */
        final class Output extends OutputStream {
            private final byte[] marker = WarmRig.STANDBY_READY.getBytes(StandardCharsets.US_ASCII);
            private int matched;
            volatile boolean passing;

            @Override
            public void write(int b) {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                int from = off;
                while (!passing && from < off + len) { // dropped, up to and including the marker
                    matched = b[from] == marker[matched] ? matched + 1 : b[from] == marker[0] ? 1 : 0;
                    from++;
                    if (matched == marker.length) passing = true;
                }
                WarmRigWire to = client;
                if (from < off + len && to != null) {
                    try {
                        to.write(WarmRigWire.OUTPUT, b, from, off + len - from);
                    } catch (IOException e) {
                        // the client left: its session kills the command; the output goes nowhere
                    }
                }
            }
        }
    }

    /** Starts a standby JVM from {@code script} in {@code r}, unless one waits already or {@code r} is no longer the rig. */
    private void startStandby(DaemonRig r, String script) {
        synchronized (lock) {
            if (stopped || r != rig || r.isStopped() || standby != null && standby.isAlive()) return;
            standby = new Command(r, script);
            standby.start();
        }
    }

    /** The waiting standby if it was started from {@code script}; any other is dismissed (killed). */
    private Command takeStandby(DaemonRig r, String script) {
        Command s;
        synchronized (lock) {
            s = standby;
            standby = null;
        }
        if (s == null) return null;
        if (script != null && s.script.equals(script) && s.isAlive() && s.rig == r) return s;
        s.input.abort();
        s.rig.killRun(); // a no-op if it already ended with the rig it ran in
        try {
            s.join(KILL_GRACE.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return null;
    }

    /**
     * A command's stdin, fed by the client's input frames: it ends after their end, and at once when
     * the command ends or its client leaves. Holds at most {@link #LIMIT} bytes: a client that types
     * faster than the command reads waits.
     */
    static final class FrameInput extends InputStream {
        private static final int LIMIT = 256 * 1024;
        private final java.util.ArrayDeque<byte[]> chunks = new java.util.ArrayDeque<>();
        private int queued;
        private byte[] chunk = new byte[0];
        private int at;
        private boolean ended;
        private boolean aborted;

        synchronized void add(byte[] bytes) {
            while (queued > LIMIT && !aborted) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
            if (ended || aborted || bytes.length == 0) return;
            chunks.add(bytes);
            queued += bytes.length;
            notifyAll();
        }

        /** No more input after what came. */
        synchronized void end() {
            ended = true;
            notifyAll();
        }

        /** No more input, and what came but was not read is dropped. */
        synchronized void abort() {
            aborted = true;
            chunks.clear();
            queued = 0;
            notifyAll();
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public synchronized int read(byte[] b, int off, int len) throws IOException {
            if (len == 0) return 0;
            while (at == chunk.length) {
                if (aborted) return -1;
                if (!chunks.isEmpty()) {
                    chunk = chunks.poll();
                    queued -= chunk.length;
                    at = 0;
                    notifyAll();
                } else if (ended) {
                    return -1;
                } else {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new java.io.InterruptedIOException();
                    }
                }
            }
            int n = Math.min(len, chunk.length - at);
            System.arraycopy(chunk, at, b, off, n);
            at += n;
            return n;
        }
    }

    /** Writes to a socket channel directly, so that a read blocked on the same channel in another thread never holds it up. */
    static final class ChannelOutput extends OutputStream {
        private final SocketChannel channel;

        ChannelOutput(SocketChannel channel) {
            this.channel = channel;
        }

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            ByteBuffer buf = ByteBuffer.wrap(b, off, len);
            while (buf.hasRemaining()) channel.write(buf);
        }
    }
}
