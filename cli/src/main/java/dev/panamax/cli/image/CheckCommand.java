package dev.panamax.cli.image;

import dev.panamax.storage.CheckReport;
import dev.panamax.storage.image.ImageChecker;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

@Command(name = "check", mixinStandardHelpOptions = true,
        description = "Check an image for corruptions and leaked clusters, and its backing chain for missing files.",
        exitCodeListHeading = "Exit status:%n",
        exitCodeList = {"0:no problems", "2:corruptions found (or the image could not be opened)", "3:only leaked clusters found"})
final class CheckCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ReportOptions report;

    @Override
    public Integer call() {
        return ImageCommand.run(() -> {
            CheckReport r = ImageChecker.check(report.image, report.format());
            PrintWriter out = spec.commandLine().getOut();
            out.println(report.json ? toJson(report.image, r) : toText(r));
            return r.exitStatus();
        });
    }

    static String toText(CheckReport r) {
        StringBuilder s = new StringBuilder();
        for (CheckReport.Problem p : r.problems()) {
            s.append(switch (p.kind()) {
                case CORRUPTION -> "ERROR ";
                case LEAK -> "Leaked: ";
                case NOTE -> "Note: ";
            }).append(p.message()).append('\n');
        }
        if (r.isClean()) {
            s.append("No errors were found on the image.");
        } else {
            if (r.corruptions() > 0) {
                s.append(r.corruptions()).append(" errors were found on the image.\n")
                        .append("Data may be corrupted, or further writes to the image may corrupt it.\n");
            }
            if (r.leaks() > 0) {
                s.append(r.leaks()).append(" leaked clusters were found on the image.\n")
                        .append("This means waste of disk space, but no harm to data; 'panamax image repair' reclaims it.\n");
            }
        }
        return s.toString().stripTrailing();
    }

    static String toJson(Path image, CheckReport r) {
        StringBuilder problems = new StringBuilder("[");
        for (CheckReport.Problem p : r.problems()) {
            if (problems.length() > 1) problems.append(", ");
            problems.append(new Json().field("kind", p.kind().name().toLowerCase()).field("message", p.message()));
        }
        return new Json().field("filename", image.toString()).field("corruptions", r.corruptions())
                .field("leaks", r.leaks()).raw("problems", problems.append(']').toString()).toString();
    }
}
