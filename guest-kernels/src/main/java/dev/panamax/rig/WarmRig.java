package dev.panamax.rig;

import dev.panamax.guest.Progress;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The user's warm rig, reached through its {@link RigDaemon}: a rig that outlives the command that
 * started it, so that the next command pays no rig start. {@link #open} starts the daemon if none runs.
 * Commands run in the caller's working directory with the caller's environment, as in a private rig.
 * {@link #close} leaves the rig running; {@code panamax rig stop} or the idle timeout ends it.
 */
public final class WarmRig implements RigSession {
    /**
     * What a standby JVM prints when it is ready for a client's arguments; the daemon drops its output
     * up to here. No newline: the rig's agent channel holds a trailing newline back.
     */
    public static final String STANDBY_READY = "panamax-standby-ready;";
    /** How long a client waits for a daemon it started to listen. */
    private static final Duration DAEMON_START = Duration.ofSeconds(30);

    /** Why the warm rig cannot serve this command (busy, or its directory unusable); a private rig can. */
    public static final class UnavailableException extends Exception {
        UnavailableException(String message) {
            super(message);
        }
    }

    private final SocketChannel channel;
    private final WarmRigWire wire;
    private final Rig.Options options;
    private final Path scratch;
    private final Path log;

    private WarmRig(SocketChannel channel, WarmRigWire wire, Rig.Options options, Path scratch, Path log) {
        this.channel = channel;
        this.wire = wire;
        this.options = options;
        this.scratch = scratch;
        this.log = log;
    }

    /**
     * The warm rig, ready for commands with {@code options}' shares and shape; the daemon is started
     * if none runs, and its rig (re)started if it shares less than {@code options} asks for.
     *
     * @throws UnavailableException when the daemon is busy with another client or cannot be reached
     * @throws RigException         when the daemon cannot start a rig (as {@link Rig#start} would not)
     */
    public static WarmRig open(Rig.Options options) throws UnavailableException {
        DaemonDirectory directory;
        try {
            directory = DaemonDirectory.forThisUser();
        } catch (IOException e) {
            throw new UnavailableException("the warm rig is unavailable: " + e.getMessage());
        }
        return open(options, directory, true);
    }

    static WarmRig open(Rig.Options options, DaemonDirectory directory, boolean mayStartDaemon) throws UnavailableException {
        String hello = new Hello(WarmRigWire.PROTOCOL, RigDaemon.buildKey(System.getProperty("java.class.path")), options).text();
        long deadline = System.nanoTime() + DAEMON_START.toNanos();
        long lastSpawn = 0;
        while (System.nanoTime() < deadline) {
            SocketChannel channel = connect(directory.socket());
            if (channel == null) {
                if (mayStartDaemon && System.nanoTime() - lastSpawn > Duration.ofSeconds(5).toNanos() && lockIsFree(directory)) {
                    // What may ask the user something or take minutes the first time (installing QEMU, building the
                    // rig's kernel) happens here, on the user's terminal, not in the daemon.
                    Rig.prepare();
                    spawnDaemon(directory);
                    lastSpawn = System.nanoTime();
                    deadline = lastSpawn + DAEMON_START.toNanos();
                }
                pause(100);
                continue;
            }
            WarmRigWire wire = new WarmRigWire(Channels.newInputStream(channel), new RigDaemon.ChannelOutput(channel));
            try {
                wire.write(WarmRigWire.HELLO, hello);
                for (WarmRigWire.Frame f; (f = wire.read()) != null; ) {
                    switch (f.type()) {
                        case WarmRigWire.PROGRESS -> Progress.say(f.text());
                        case WarmRigWire.READY -> {
                            return new WarmRig(channel, wire, options, Path.of(f.text()), directory.log());
                        }
                        case WarmRigWire.BUSY -> throw new UnavailableException(f.text());
                        case WarmRigWire.FAILED -> throw new RigException(f.text() + " (the warm rig's log: " + directory.log() + ")");
                        case WarmRigWire.STALE -> {
                            // a daemon of another build, retiring: the next round starts one of this build
                        }
                        default -> throw new IOException("the daemon answered with frame " + (char) f.type());
                    }
                    if (f.type() == WarmRigWire.STALE) break;
                }
                closeQuietly(channel);
                pause(200);
            } catch (IOException e) {
                closeQuietly(channel);
                throw new RigException("the warm rig's daemon failed (" + e.getMessage() + "); its log: " + directory.log(), e);
            } catch (UnavailableException | RuntimeException e) {
                closeQuietly(channel);
                throw e;
            }
        }
        throw new UnavailableException("the warm rig's daemon did not listen within " + DAEMON_START.toSeconds() + " s (its log: "
                + directory.log() + ")");
    }

    @Override
    public Path scratch() {
        return scratch;
    }

    /** Kills the command running now; the rig stays warm for the next. */
    @Override
    public void interruptRun() {
        try {
            wire.write(WarmRigWire.KILL);
        } catch (IOException e) {
            // the daemon is gone, and the command with it
        }
    }

    @Override
    public RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input) {
        if (argv.isEmpty()) throw new IllegalArgumentException("no command to run in the rig");
        return send(new RunRequest(timeout, input != null, argv.getFirst(), Rig.script(options.workingDirectory(), argv)), echo, input);
    }

    /** Sends the standby's script along: the daemon starts one after this run, and a later run of the same JVM may use it. */
    @Override
    public RunResult runProgram(List<String> jvm, String mainClass, String standbyClass, List<String> args, Duration timeout,
            OutputStream echo, InputStream input) {
        List<String> cold = new ArrayList<>(jvm);
        cold.add(mainClass);
        cold.addAll(args);
        List<String> standby = new ArrayList<>(jvm);
        standby.add(standbyClass);
        return send(new RunRequest(timeout, input != null, mainClass, Rig.script(options.workingDirectory(), cold),
                Rig.script(options.workingDirectory(), standby), encodeArgs(args)), echo, input);
    }

    private synchronized RunResult send(RunRequest request, OutputStream echo, InputStream input) {
        long start = System.nanoTime();
        OutputTail out = new OutputTail(echo);
        AtomicBoolean running = new AtomicBoolean(true);
        try {
            wire.write(WarmRigWire.RUN, request.bytes());
            if (input != null) forwardInput(input, running);
            for (WarmRigWire.Frame f; (f = wire.read()) != null; ) {
                switch (f.type()) {
                    case WarmRigWire.OUTPUT -> out.write(f.payload(), 0, f.payload().length);
                    case WarmRigWire.EXIT -> {
                        String[] words = f.text().split(" ");
                        if (words.length != 2) throw new IOException("a malformed exit frame: " + f.text());
                        return new RunResult(Integer.parseInt(words[0]), Boolean.parseBoolean(words[1]),
                                Duration.ofNanos(System.nanoTime() - start), out.text());
                    }
                    case WarmRigWire.STOPPED -> throw new RigStoppedException(f.text(), null);
                    default -> throw new IOException("frame " + (char) f.type() + " during a command");
                }
            }
            throw new IOException("the daemon closed the connection");
        } catch (IOException | NumberFormatException e) {
            throw new RigStoppedException("the warm rig's daemon went away while running " + request.label() + " (" + e.getMessage()
                    + "); its log: " + log, e);
        } finally {
            running.set(false);
        }
    }

    @Override
    public List<String> jvmOptions() {
        return Rig.JVM_OPTIONS;
    }

    /** Leaves the warm rig to the next command. */
    @Override
    public void close() {
        closeQuietly(channel);
    }

    private void forwardInput(InputStream input, AtomicBoolean running) {
        Thread.ofPlatform().daemon().name("warm-rig-input").start(() -> {
            byte[] buf = new byte[8192];
            try {
                for (int n; (n = input.read(buf)) > 0 && running.get(); ) {
                    wire.write(WarmRigWire.INPUT, buf, 0, n);
                }
                if (running.get()) wire.write(WarmRigWire.END_OF_INPUT);
            } catch (IOException e) {
                // the input or the daemon ended; the command's stdin ends with it
            }
        });
    }

    /**
     * Asks the user's daemon, if one runs, for its status ({@code stop} false) or to stop; empty when
     * none runs.
     */
    public static Optional<String> askDaemon(boolean stop) throws IOException {
        DaemonDirectory directory = DaemonDirectory.forThisUser();
        SocketChannel channel = connect(directory.socket());
        if (channel == null) return Optional.empty();
        try (channel) {
            WarmRigWire wire = new WarmRigWire(Channels.newInputStream(channel), new RigDaemon.ChannelOutput(channel));
            wire.write(stop ? WarmRigWire.STOP : WarmRigWire.STATUS);
            WarmRigWire.Frame answer = wire.read();
            if (answer == null) return Optional.empty();
            if (stop) awaitLock(directory, Duration.ofSeconds(30));
            return Optional.of(answer.text());
        }
    }

    /** Waits until no daemon holds the directory's lock (it has ended), for at most {@code limit}. */
    private static void awaitLock(DaemonDirectory directory, Duration limit) {
        long deadline = System.nanoTime() + limit.toNanos();
        while (!lockIsFree(directory) && System.nanoTime() < deadline) pause(100);
    }

    private static SocketChannel connect(Path socket) {
        try {
            SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                c.connect(UnixDomainSocketAddress.of(socket));
                return c;
            } catch (IOException e) {
                c.close();
                return null; // none listens: no socket, or a dead daemon's
            }
        } catch (IOException e) {
            return null;
        }
    }

    private static boolean lockIsFree(DaemonDirectory directory) {
        try (FileChannel f = FileChannel.open(directory.lock(), StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            FileLock l = f.tryLock();
            if (l == null) return false;
            l.release();
            return true;
        } catch (OverlappingFileLockException e) {
            return false; // this JVM holds it: a daemon serves in process (tests)
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * Starts a daemon in a session of its own (so that the terminal's Ctrl-C and hang-up do not reach
     * it), on this JVM's JDK and class path, its output appended to its log.
     */
    private static void spawnDaemon(DaemonDirectory directory) {
        List<String> argv = new ArrayList<>(List.of("setsid", Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        argv.addAll(Rig.JVM_OPTIONS); // a JVM that waits and relays: C1 and the small serial heap serve it
        argv.addAll(List.of("-cp", System.getProperty("java.class.path"), RigDaemon.class.getName(), directory.path().toString()));
        try {
            new ProcessBuilder(argv).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(directory.log().toFile())).start();
        } catch (IOException e) {
            throw new RigException("could not start the warm rig's daemon: " + e.getMessage(), e);
        }
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RigException("interrupted while reaching the warm rig", e);
        }
    }

    private static void closeQuietly(SocketChannel c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // closing is all we wanted
        }
    }

    /**
     * A client's hello: the protocol, its build key and the rig it wants, as lines ("protocol N", "key K",
     * "cpus N", "memory MIB", "tcg single|multi", "cwd PATH", then "share ro|rw PATH" each).
     */
    record Hello(int protocol, String buildKey, Rig.Options options) {
        String text() {
            StringBuilder s = new StringBuilder();
            s.append("protocol ").append(protocol).append('\n').append("key ").append(buildKey).append('\n')
                    .append("cpus ").append(options.cpus()).append('\n').append("memory ").append(options.memoryMib()).append('\n')
                    .append("tcg ").append(options.oneTcgThread() ? "single" : "multi").append('\n')
                    .append("cwd ").append(options.workingDirectory()).append('\n');
            for (Rig.Share share : options.shares()) {
                s.append("share ").append(share.readOnly() ? "ro " : "rw ").append(share.path()).append('\n');
            }
            return s.toString();
        }

        /** Parses a hello; every line is checked, and paths must be absolute with no newline, tab or NUL. */
        static Hello parse(String text) {
            List<String> lines = text.lines().toList();
            if (lines.size() < 6) throw new IllegalArgumentException("a hello of " + lines.size() + " lines");
            int protocol = number(value(lines.get(0), "protocol"), 1, 1000);
            String key = value(lines.get(1), "key");
            if (!key.matches("[0-9a-f]{1,64}")) throw new IllegalArgumentException("a build key '" + key + "'");
            int cpus = number(value(lines.get(2), "cpus"), 1, 8);
            int memory = number(value(lines.get(3), "memory"), 256, 65536);
            String tcg = value(lines.get(4), "tcg");
            if (!tcg.equals("single") && !tcg.equals("multi")) throw new IllegalArgumentException("tcg '" + tcg + "'");
            Path cwd = path(value(lines.get(5), "cwd"));
            Rig.Options options = new Rig.Options(cwd, List.of(), memory, cpus, Rig.BOOT_TIMEOUT, false, tcg.equals("single"),
                    Rig.WEDGED_AFTER, null);
            for (String line : lines.subList(6, lines.size())) {
                String share = value(line, "share");
                if (!share.startsWith("ro ") && !share.startsWith("rw ")) throw new IllegalArgumentException("a share '" + share + "'");
                options = options.withShare(path(share.substring(3)), share.startsWith("ro "));
            }
            return new Hello(protocol, key, options);
        }

        private static String value(String line, String name) {
            if (!line.startsWith(name + " ")) throw new IllegalArgumentException("'" + line + "' where " + name + " belongs");
            return line.substring(name.length() + 1);
        }

        private static int number(String text, int min, int max) {
            try {
                int n = Integer.parseInt(text);
                if (n >= min && n <= max) return n;
            } catch (NumberFormatException e) {
                // refused below
            }
            throw new IllegalArgumentException("'" + text + "' is not a number from " + min + " to " + max);
        }

        private static Path path(String text) {
            if (text.isEmpty() || text.charAt(0) != '/' || text.contains("\t") || text.contains("\0")) {
                throw new IllegalArgumentException("'" + text + "' is not an absolute path");
            }
            return Path.of(text).normalize();
        }
    }

    /**
     * A command to run: its timeout, whether it takes input, its name for messages and its script;
     * and for a Java program a standby JVM can run, the script that starts that standby ({@code null}
     * otherwise) and the program's arguments as the standby's first input line ({@link #encodeArgs}).
     */
    record RunRequest(Duration timeout, boolean interactive, String label, String script, String standbyScript, String args) {
        RunRequest(Duration timeout, boolean interactive, String label, String script) {
            this(timeout, interactive, label, script, null, "");
        }

        byte[] bytes() {
            byte[] s = script.getBytes(StandardCharsets.UTF_8);
            byte[] t = standbyScript == null ? new byte[0] : standbyScript.getBytes(StandardCharsets.UTF_8);
            byte[] a = args.getBytes(StandardCharsets.US_ASCII);
            String head = timeout.toMillis() + "\n" + (interactive ? "input" : "none") + "\n" + label.replace('\n', ' ') + "\n"
                    + s.length + " " + (standbyScript == null ? -1 : t.length) + " " + a.length + "\n";
            byte[] h = head.getBytes(StandardCharsets.UTF_8);
            byte[] all = Arrays.copyOf(h, h.length + s.length + t.length + a.length);
            System.arraycopy(s, 0, all, h.length, s.length);
            System.arraycopy(t, 0, all, h.length + s.length, t.length);
            System.arraycopy(a, 0, all, h.length + s.length + t.length, a.length);
            return all;
        }

        static RunRequest parse(byte[] bytes) {
            int at = 0;
            String[] head = new String[4];
            for (int i = 0; i < head.length; i++) {
                int nl = at;
                while (nl < bytes.length && bytes[nl] != '\n') nl++;
                if (nl == bytes.length) throw new IllegalArgumentException("a run request of " + i + " header lines");
                head[i] = new String(bytes, at, nl - at, StandardCharsets.UTF_8);
                at = nl + 1;
            }
            long millis = number(head[0], "a timeout");
            if (millis <= 0) throw new IllegalArgumentException("a timeout of " + millis + " ms");
            if (!head[1].equals("input") && !head[1].equals("none")) throw new IllegalArgumentException("input '" + head[1] + "'");
            String[] sizes = head[3].split(" ");
            if (sizes.length != 3) throw new IllegalArgumentException("sizes '" + head[3] + "'");
            long script = number(sizes[0], "a script size");
            long standby = number(sizes[1], "a standby script size");
            long args = number(sizes[2], "an argument size");
            if (script < 0 || standby < -1 || args < 0 || script + Math.max(standby, 0) + args != bytes.length - at) {
                throw new IllegalArgumentException("sizes " + head[3] + " for " + (bytes.length - at) + " bytes");
            }
            String s = new String(bytes, at, (int) script, StandardCharsets.UTF_8);
            at += (int) script;
            String t = standby < 0 ? null : new String(bytes, at, (int) standby, StandardCharsets.UTF_8);
            at += (int) Math.max(standby, 0);
            String a = new String(bytes, at, (int) args, StandardCharsets.US_ASCII);
            if (!a.matches("[A-Za-z0-9+/=]*")) throw new IllegalArgumentException("arguments that are not base64");
            return new RunRequest(Duration.ofMillis(millis), head[1].equals("input"), head[2], s, t, a);
        }

        private static long number(String text, String what) {
            try {
                return Long.parseLong(text);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(what + " '" + text + "'");
            }
        }
    }

    /** A program's arguments as one line: base64 of the arguments joined by NUL (which no argument holds). */
    public static String encodeArgs(List<String> args) {
        return Base64.getEncoder().encodeToString(String.join("\0", args).getBytes(StandardCharsets.UTF_8));
    }

    /** The arguments {@link #encodeArgs} wrote. */
    public static List<String> decodeArgs(String line) {
        String joined = new String(Base64.getDecoder().decode(line.strip()), StandardCharsets.UTF_8);
        return joined.isEmpty() ? List.of() : List.of(joined.split("\0", -1));
    }
}
