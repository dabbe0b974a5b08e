package dev.panamax.cli.rig;

import dev.panamax.cli.common.UserError;
import dev.panamax.guest.MissingIngredientException;
import dev.panamax.rig.DurationText;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RigException;
import dev.panamax.rig.RigSession;
import dev.panamax.rig.RunResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code panamax rig -- COMMAND...}: runs a command where /dev/kvm is real KVM, in the nested rig. */
@Command(
        name = "rig",
        mixinStandardHelpOptions = true,
        description = {
            "Runs COMMAND in the nested KVM rig: a QEMU TCG machine with emulated AMD SVM running Debian's kernel,"
                    + " whose /dev/kvm is real KVM. The command runs in the current directory with this JDK;"
                    + " /usr and /etc are shared read-only, the current git work tree and ~/.cache/panamax read-write.",
            "Its stdout and stderr come back interleaved on stdout; its stdin is empty."
                    + " Exits with the command's exit status (124 when it was killed at --timeout).",
            "The rig stays up after the command (the warm rig), and run, exec and rig reuse it; it ends after"
                    + " PANAMAX_RIG_IDLE (default 15m) without a command, or with `panamax rig stop`. PANAMAX_RIG_DAEMON=0:"
                    + " a rig of the command's own, stopped at its end."
        })
public final class RigCommand implements Callable<Integer> {
    /** The exit status of timeout(1) for a command it killed. */
    static final int EXIT_TIMED_OUT = 124;

    @Option(names = "--timeout", paramLabel = "DURATION",
            description = "Kill the command after this long, e.g. 90s, 10m, 2h (default: 24h).")
    String timeout = "24h";

    @Option(names = "--share", paramLabel = "DIR[:ro]",
            description = "Also share DIR at the same path (read-write, or read-only with :ro).")
    List<String> shares = List.of();

    @Option(names = "--console", description = "Show the rig's boot console on stderr.")
    boolean console;

    // 0..*: with 1..* picocli would ask for a COMMAND after `rig stop` too.
    @Parameters(arity = "0..*", paramLabel = "COMMAND", description = "The command and its arguments (put -- before it).")
    List<String> command = List.of();

    /** The command to run in the rig, as parsed (for tests). */
    public List<String> command() {
        return command;
    }

    @Override
    public Integer call() {
        if (command.isEmpty()) {
            throw new UserError("give the command to run in the rig, after --: panamax rig -- COMMAND... (or rig stop, rig status)");
        }
        Rig.Options options = Rig.Options.defaults();
        if (console) options = options.withConsole(true);
        for (String share : shares) {
            boolean readOnly = share.endsWith(":ro");
            Path dir = Path.of(readOnly ? share.substring(0, share.length() - 3) : share);
            if (!Files.isDirectory(dir)) throw new UserError("--share " + share + ": " + dir + " is not a directory.");
            options = options.withShare(dir, readOnly);
        }
        Duration limit = parseDuration(timeout);
        try (RigSession rig = RigSession.open(options)) {
            RunResult r = rig.run(command, limit, System.out);
            if (r.timedOut()) {
                System.err.println("panamax: " + command.getFirst() + " was killed after --timeout " + timeout + ".");
                return EXIT_TIMED_OUT;
            }
            return r.exitStatus();
        } catch (MissingIngredientException | IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        } catch (RigException e) {
            throw new UserError("the rig failed: " + e.getMessage(), e);
        }
    }

    /** Parses "90s", "10m", "2h" or an ISO-8601 duration ("PT1M30S"). */
    static Duration parseDuration(String text) {
        try {
            return DurationText.parse(text);
        } catch (IllegalArgumentException e) {
            throw new UserError("--timeout " + text + " is not a duration; write it like 90s, 10m or 2h.");
        }
    }
}
