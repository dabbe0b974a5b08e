package dev.panamax.cli.image;

import dev.panamax.storage.image.ImageChecker;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(name = "repair", mixinStandardHelpOptions = true,
        description = {"Repair an image: reclaim leaked clusters and fix wrong refcounts (qcow2).",
            "Backing-chain problems (a missing or moved backing file) are reported; fix them with 'rebase'."},
        exitCodeListHeading = "Exit status:%n",
        exitCodeList = {"0:the image is clean now", "2:corruptions remain", "3:leaks remain"})
final class RepairCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(paramLabel = "IMAGE")
    Path image;

    @Override
    public Integer call() {
        return ImageCommand.run(() -> {
            ImageChecker.RepairResult r = ImageChecker.repair(image);
            PrintWriter out = spec.commandLine().getOut();
            out.println("Before repair: " + r.before().corruptions() + " errors, " + r.before().leaks() + " leaked clusters.");
            out.println("After repair:");
            out.println(CheckCommand.toText(r.after()));
            return r.after().exitStatus();
        });
    }
}
