package dev.panamax.cli.image;

import java.nio.file.Path;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The IMAGE argument and --json option of the commands that report on one image (info, check, map). */
final class ReportOptions {
    @Option(names = "--json", description = "print JSON instead of text")
    boolean json;

    @Parameters(paramLabel = "IMAGE")
    Path image;
}
