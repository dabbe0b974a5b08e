package dev.panamax.cli.image;

import dev.panamax.storage.image.ImageCommit;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(name = "commit", mixinStandardHelpOptions = true,
        description = "Write an overlay's changes into its backing file, then empty the overlay.")
final class CommitCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = {"-p", "--progress"}, description = "show a progress bar even when not on a terminal")
    boolean progress;

    @Parameters(paramLabel = "OVERLAY")
    Path overlay;

    @Override
    public Integer call() {
        return ImageCommand.run(() -> {
            long bytes = ImageCommit.commit(overlay, ImageCommand.progressBar(spec.commandLine().getErr(),
                    progress || ImageCommand.onTerminal()));
            spec.commandLine().getOut().println("Image committed (" + Sizes.human(bytes) + " copied).");
            return 0;
        });
    }
}
