package dev.panamax.cli;

import static dev.panamax.cli.CliRun.panamax;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.image.ImageCommand;
import dev.panamax.cli.rig.RigCommand;
import dev.panamax.cli.rig.RigStopCommand;
import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** Panamax builds picocli's model of the command named on the command line only; help still sees them all. */
class CommandTreeTest {
    private static List<String> names(CommandLine cli) {
        return List.copyOf(cli.getSubcommands().keySet());
    }

    @Test
    void aNamedCommandIsTheOnlyOneBuiltAndAnyOtherWordBuildsThemAll() {
        CommandLine cli = new CommandLine(new Panamax());
        Panamax.addCommands(cli, Panamax.COMMANDS, new String[] {"image", "info", "x.qcow2"}, 0);
        assertThat(names(cli)).containsExactly("image");
        assertThat(names(cli.getSubcommands().get("image"))).containsExactly("info");

        for (String[] args : List.of(new String[] {}, new String[] {"help", "image"}, new String[] {"--help"}, new String[] {"imgae"})) {
            CommandLine all = new CommandLine(new Panamax());
            Panamax.addCommands(all, Panamax.COMMANDS, args, 0);
            assertThat(names(all)).as(String.join(" ", args)).hasSize(Panamax.COMMANDS.size()).contains("run", "image", "exec", "rig");
            assertThat(names(all.getSubcommands().get("image"))).hasSize(ImageCommand.COMMANDS.size() + 1).contains("info", "extract");
        }
    }

    @Test
    void helpListsEveryCommandAndFindsNestedOnesAndAMisspeltOneIsSuggested() {
        CliRun help = panamax("--help");
        for (Class<?> c : Panamax.COMMANDS) {
            assertThat(help.out()).contains("  " + Panamax.commandName(c));
        }
        assertThat(panamax("help", "image").out()).contains("Usage: panamax image", "extract");
        assertThat(panamax("image", "info", "--help").out()).contains("Usage: panamax image info");
        assertThat(panamax("image", "--help").out()).contains("extract", "convert", "map");
        CliRun typo = panamax("imgae");
        assertThat(typo.status()).isEqualTo(Panamax.EXIT_USAGE);
        assertThat(typo.err()).contains("Did you mean", "image");
        assertThat(panamax("--version").out()).startsWith("panamax ");
    }

    @Test
    void rigStopAndStatusAreCommandsButAfterDoubleDashTheyRunInTheRig() {
        CommandLine cli = new CommandLine(new Panamax());
        Panamax.addCommands(cli, Panamax.COMMANDS, new String[] {"rig", "stop"}, 0);
        List<CommandLine> parsed = cli.parseArgs("rig", "stop").asCommandLineList();
        Object stop = parsed.getLast().getCommand();
        assertThat(stop).isInstanceOf(RigStopCommand.class);

        CommandLine dashed = new CommandLine(new Panamax());
        Panamax.addCommands(dashed, Panamax.COMMANDS, new String[] {"rig", "--", "stop"}, 0);
        assertThat(names(dashed.getSubcommands().get("rig"))).containsExactlyInAnyOrder("stop", "status");
        List<CommandLine> run = dashed.parseArgs("rig", "--", "stop", "now").asCommandLineList();
        Object inRig = run.getLast().getCommand();
        assertThat(inRig).isInstanceOfSatisfying(RigCommand.class,
                rig -> assertThat(rig.command()).containsExactly("stop", "now"));

        CliRun nothing = panamax("rig");
        assertThat(nothing.status()).isEqualTo(Panamax.EXIT_USAGE);
        assertThat(nothing.err()).contains("give the command to run in the rig, after --");
    }
}
