package dev.panamax.cli;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code panamax} command. Each subcommand lives in its own class; this one only wires them
 * together and maps exceptions to exit statuses.
 */
@Command(
        name = "panamax",
        mixinStandardHelpOptions = true,
        versionProvider = Panamax.Version.class,
        description = "A KVM virtual machine monitor in Java.",
        subcommands = {
            CommandLine.HelpCommand.class,
            RunCommand.class,
            ExecCommand.class,
            KernelConfigCommand.class,
            ServeCommand.class,
            ApiCommand.class,
            SnapshotCommand.class,
            SnapshotMergeCommand.class,
            DemoCommand.class,
            DoctorCommand.class,
            BenchCommand.class,
            dev.panamax.cli.image.ImageCommand.class,
            dev.panamax.cli.rig.RigCommand.class,
        })
public final class Panamax {

    /** Exit status for bad input (usage errors, missing files): the convention of picocli and of QEMU. */
    public static final int EXIT_USAGE = 2;

    public static void main(String[] args) {
        // Log records (for example the KVM acceleration verdict) as one line each, like the rest of the output.
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "panamax: %5$s%6$s%n");
        }
        System.exit(execute(args));
    }

    /** Runs the command line and returns its exit status, for tests. */
    public static int execute(String... args) {
        CommandLine cli = new CommandLine(new Panamax());
        cli.setExecutionExceptionHandler(new UserErrors());
        return cli.execute(args);
    }

    /** Panamax's version, as the build wrote it. */
    public static String version() {
        try (InputStream in = Panamax.class.getResourceAsStream("version.txt")) {
            return in == null ? "dev" : new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            return "dev";
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"panamax " + version() + " (Java " + Runtime.version() + ")"};
        }
    }
}
