package dev.panamax.cli.image;

import dev.panamax.storage.ImageFormat;
import java.nio.file.Path;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The IMAGE argument and the --json and --format options of the commands that report on one image (info, check, map). */
final class ReportOptions {
    @Option(names = "--json", description = "print JSON instead of text")
    boolean json;

    @Option(names = {"-f", "--format"}, description = ImageCommand.SOURCE_FORMAT)
    String format;

    @Parameters(paramLabel = "IMAGE")
    Path image;

    /** The format given, or null to probe it. */
    ImageFormat format() {
        return ImageCommand.format(format);
    }
}
