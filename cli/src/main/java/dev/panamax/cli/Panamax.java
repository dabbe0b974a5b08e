package dev.panamax.cli;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine.Command;
import picocli.CommandLine;

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
            FirecrackerCommand.class,
            ApiCommand.class,
            SnapshotCommand.class,
            SnapshotMergeCommand.class,
            MigrateCommand.class,
            DemoCommand.class,
            DoctorCommand.class,
            BenchCommand.class,
            dev.panamax.cli.image.ImageCommand.class,
            dev.panamax.cli.rig.RigCommand.class,
        })
public final class Panamax {

    /**
     * The system property in which the launcher passes the name it was started under ({@code basename "$0"}):
     * started as {@code firecracker} (a symlink to the launcher), Panamax is {@code panamax firecracker}.
     */
    public static final String INVOKED_AS = "panamax.invokedAs";

    /** Exit status for bad input (usage errors, missing files): the convention of picocli and of QEMU. */
    public static final int EXIT_USAGE = 2;

    public static void main(String[] args) {
        // Log records (for example the KVM acceleration verdict) as one line each, like the rest of the output.
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "panamax: %5$s%6$s%n");
        }
        System.exit(executeAs(System.getProperty(INVOKED_AS, "panamax"), args));
    }

    /**
     * Runs the command line as the program named {@code name} would (the name it was started under):
     * {@code firecracker} is {@code panamax firecracker}, any other name {@code panamax}.
     */
    public static int executeAs(String name, String... args) {
        if (name.equals("firecracker")) {
            String[] all = new String[args.length + 1];
            all[0] = "firecracker";
            System.arraycopy(args, 0, all, 1, args.length);
            return execute(all);
        }
        return execute(args);
    }

    /** Runs the command line and returns its exit status, for tests. */
    public static int execute(String... args) {
        CommandLine cli = new CommandLine(new Panamax());
        // Registered here, not on ImageCommand: extract runs through exec, and dev.panamax.cli.image stays below dev.panamax.cli.
        cli.getSubcommands().get("image").addSubcommand(new ExtractCommand());
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
