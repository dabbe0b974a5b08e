package dev.panamax.cli;

import dev.panamax.cli.image.ImageCommand;
import dev.panamax.cli.rig.RigCommand;
import dev.panamax.cli.rig.RigStatusCommand;
import dev.panamax.cli.rig.RigStopCommand;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
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
        description = "A KVM virtual machine monitor in Java.")
public final class Panamax {

    /**
     * The system property in which the launcher passes the name it was started under ({@code basename "$0"}):
     * started as {@code firecracker} (a symlink to the launcher), Panamax is {@code panamax firecracker}.
     */
    public static final String INVOKED_AS = "panamax.invokedAs";

    /** Exit status for bad input (usage errors, missing files): the convention of picocli and of QEMU. */
    public static final int EXIT_USAGE = 2;

    /** Panamax's commands, in the order its help lists them. */
    static final List<Class<?>> COMMANDS = List.of(
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
            ImageCommand.class,
            RigCommand.class);

    /**
     * The commands under a command. extract is added here, not on ImageCommand: it runs through exec,
     * and dev.panamax.cli.image stays below dev.panamax.cli.
     */
    private static final Map<Class<?>, List<Class<?>>> NESTED = Map.of(ImageCommand.class,
            Stream.concat(ImageCommand.COMMANDS.stream(), Stream.of(ExtractCommand.class)).toList(),
            RigCommand.class, List.of(RigStopCommand.class, RigStatusCommand.class));

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
        boolean versionOnly = args.length == 1 && (args[0].equals("--version") || args[0].equals("-V"));
        if (!versionOnly) {
            addCommands(cli, COMMANDS, args, 0);
        }
        cli.setExecutionExceptionHandler(new UserErrors());
        return cli.execute(args);
    }

    /**
     * Adds {@code commands} under {@code parent}: only the one {@code args[at]} names when it names one,
     * else all of them (for help, a command's usage, and picocli's suggestions). picocli reflects over
     * every option of every command it is given, which cost each start about 100 ms with all of them.
     */
    static void addCommands(CommandLine parent, List<Class<?>> commands, String[] args, int at) {
        String word = at < args.length ? args[at] : null;
        if (word != null && !word.equals("help")) {
            for (Class<?> c : commands) {
                if (commandName(c).equals(word)) {
                    addCommand(parent, c, args, at + 1);
                    return;
                }
            }
        }
        for (Class<?> c : commands) {
            addCommand(parent, c, args, Integer.MAX_VALUE); // all the way down: `help image info` finds info
        }
    }

    private static void addCommand(CommandLine parent, Class<?> command, String[] args, int next) {
        CommandLine sub = new CommandLine(command);
        List<Class<?>> nested = NESTED.get(command);
        if (nested != null) {
            addCommands(sub, nested, args, next);
        }
        parent.addSubcommand(sub);
    }

    /** The name a command class's annotation gives it. */
    static String commandName(Class<?> command) {
        return command.getAnnotation(Command.class).name();
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
