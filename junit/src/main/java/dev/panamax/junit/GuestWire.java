package dev.panamax.junit;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * The text protocol between a test JVM ({@link GuestConnection}) and its {@link GuestServer}, over the
 * server's stdin and stdout: the one channel that reaches a JVM both on this host and inside the nested
 * rig (whose 9p scratch directory cannot carry a Unix socket between the two kernels). Every value that
 * is not a number is base64, so a message is one line of ASCII without spaces in its fields.
 *
 * <p>Test JVM to server, one line each: {@code EXEC <id> <timeout-ms> <arg>...}, {@code RESET <id> <timeout-ms>}
 * (bring the guest back to the snapshot taken after its boot; answered by a {@code DONE} with status 0, or
 * -1 and the reason) and {@code QUIT}.
 * Server to test JVM: {@code panamax-guest <KIND> <field>...;} then a newline. The {@code ;} ends the
 * message: the rig holds a newline back until the byte after it arrives (it might start its own exit
 * trailer), so a message is acted on at its {@code ;}. Lines without the mark (a JVM's warnings, say)
 * are the server's log, kept for diagnosis.
 */
final class GuestWire {
    static final String MARK = "panamax-guest ";
    static final char END = ';';
    /** The longest message line taken; longer ones are dropped as noise (an output chunk is at most 64 KiB before base64). */
    static final int MAX_LINE = 1 << 20;

    private GuestWire() {}

    /** A message from the server. */
    sealed interface ServerMessage {}

    /** The guest booted and its agent is waiting for commands. */
    record Ready() implements ServerMessage {}

    /** One line of the guest's serial console. */
    record Console(String line) implements ServerMessage {}

    /** One line the server itself wrote (its stderr, Panamax's messages). */
    record Log(String line) implements ServerMessage {}

    /** Bytes of command {@code id}'s stdout ({@code stream} 1) or stderr (2). */
    record Output(int id, int stream, byte[] bytes) implements ServerMessage {}

    /**
     * Command {@code id} ended: its exit status (-1 when there is none), whether it outlived its timeout,
     * how long it took in nanoseconds, and why it has no status (empty when it has one).
     */
    record Done(int id, int status, boolean timedOut, long nanos, String failure) implements ServerMessage {}

    /** The guest (or the server) ended, for the reason given; nothing more comes. */
    record Ended(String reason) implements ServerMessage {}

    /** A request to run {@code argv} in the guest within {@code timeoutMillis}. */
    record ExecRequest(int id, long timeoutMillis, List<String> argv) {
        ExecRequest {
            if (argv.isEmpty()) throw new IllegalArgumentException("no command to run");
            if (timeoutMillis <= 0) throw new IllegalArgumentException("a timeout must be positive, not " + timeoutMillis + " ms");
            argv = List.copyOf(argv);
        }
    }

    /** A request to restore the guest's snapshot and wait, within {@code timeoutMillis}, until its agent is back. */
    record ResetRequest(int id, long timeoutMillis) {
        ResetRequest {
            if (timeoutMillis <= 0) throw new IllegalArgumentException("a timeout must be positive, not " + timeoutMillis + " ms");
        }
    }

    static String encode(ServerMessage m) {
        String body = switch (m) {
            case Ready r -> "READY";
            case Console c -> "CONSOLE " + b64(c.line());
            case Log l -> "LOG " + b64(l.line());
            case Output o -> (o.stream() == 1 ? "OUT " : "ERR ") + o.id() + " " + Base64.getEncoder().encodeToString(o.bytes());
            case Done d -> "DONE " + d.id() + " " + d.status() + " " + (d.timedOut() ? 1 : 0) + " " + d.nanos() + " " + b64(d.failure());
            case Ended e -> "ENDED " + b64(e.reason());
        };
        return MARK + body + END + "\n";
    }

    /**
     * The message of a line that began with {@link #MARK} and ended at {@link #END} (both removed).
     *
     * @throws IllegalArgumentException when the line is not a well-formed message
     */
    static ServerMessage decode(String body) {
        String[] f = body.split(" ", -1);
        int fields = switch (f[0]) {
            case "READY" -> 0;
            case "CONSOLE", "LOG", "ENDED" -> 1;
            case "OUT", "ERR" -> 2;
            case "DONE" -> 5;
            default -> throw new IllegalArgumentException("unknown message " + printable(f[0]));
        };
        if (f.length != fields + 1) throw new IllegalArgumentException(f[0] + " with " + (f.length - 1) + " fields, not " + fields);
        return switch (f[0]) {
            case "READY" -> new Ready();
            case "CONSOLE" -> new Console(text(f[1]));
            case "LOG" -> new Log(text(f[1]));
            case "ENDED" -> new Ended(text(f[1]));
            case "OUT", "ERR" -> new Output(number(f[1]), f[0].equals("OUT") ? 1 : 2, bytes(f[2]));
            default -> new Done(number(f[1]), status(f[2]), flag(f[3]), nanos(f[4]), text(f[5]));
        };
    }

    static String encode(ExecRequest r) {
        StringBuilder line = new StringBuilder("EXEC ").append(r.id()).append(' ').append(r.timeoutMillis());
        for (String arg : r.argv()) line.append(' ').append(b64(arg));
        return line.append('\n').toString();
    }

    static final String QUIT = "QUIT\n";

    static String encode(ResetRequest r) {
        return "RESET " + r.id() + " " + r.timeoutMillis() + "\n";
    }

    /** Whether {@code line} (without its newline) is meant as a {@code RESET} request, well-formed or not. */
    static boolean isReset(String line) {
        return line.startsWith("RESET ");
    }

    /**
     * The request of a {@code RESET} line (without its newline).
     *
     * @throws IllegalArgumentException when it is not one
     */
    static ResetRequest decodeReset(String line) {
        String[] f = line.split(" ", -1);
        if (f.length != 3 || !f[0].equals("RESET")) throw new IllegalArgumentException("not a RESET request: " + printable(line));
        return new ResetRequest(number(f[1]), timeout(f[2]));
    }

    /**
     * The request of an {@code EXEC} line (without its newline).
     *
     * @throws IllegalArgumentException when it is not one
     */
    static ExecRequest decodeExec(String line) {
        String[] f = line.split(" ", -1);
        if (f.length < 4 || !f[0].equals("EXEC")) throw new IllegalArgumentException("not an EXEC request: " + printable(line));
        List<String> argv = new ArrayList<>();
        for (int i = 3; i < f.length; i++) argv.add(text(f[i]));
        return new ExecRequest(number(f[1]), timeout(f[2]), argv);
    }

    private static long timeout(String s) {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("a timeout of " + printable(s) + " ms");
        }
    }

    private static String b64(String text) {
        return Base64.getEncoder().encodeToString(text.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] bytes(String b64) {
        return Base64.getDecoder().decode(b64); // IllegalArgumentException when it is not base64
    }

    private static String text(String b64) {
        return new String(bytes(b64), StandardCharsets.UTF_8);
    }

    private static int number(String s) {
        try {
            int n = Integer.parseInt(s);
            if (n < 0) throw new NumberFormatException();
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("an id of " + printable(s));
        }
    }

    private static int status(String s) {
        try {
            int n = Integer.parseInt(s);
            if (n < -1 || n > 255) throw new NumberFormatException();
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("an exit status of " + printable(s));
        }
    }

    private static long nanos(String s) {
        try {
            long n = Long.parseLong(s);
            if (n < 0) throw new NumberFormatException();
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("a duration of " + printable(s) + " ns");
        }
    }

    private static boolean flag(String s) {
        return switch (s) {
            case "0" -> false;
            case "1" -> true;
            default -> throw new IllegalArgumentException("a flag of " + printable(s));
        };
    }

    /** At most 40 characters of {@code s}, control characters as '?', for a message about it. */
    static String printable(String s) {
        String cut = s.length() > 40 ? s.substring(0, 40) + "..." : s;
        StringBuilder b = new StringBuilder();
        cut.codePoints().forEach(c -> b.appendCodePoint(Character.isISOControl(c) ? '?' : c));
        return b.toString();
    }
}
