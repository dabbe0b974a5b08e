package dev.panamax.cli.image;

import dev.panamax.storage.image.ImageRebase;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "rebase", mixinStandardHelpOptions = true,
        description = {"Point a qcow2 image at a different backing file.",
            "By default data is copied into the image wherever the old and new backing files differ, so it reads the same.",
            "With -u only the recorded name changes: use it when the backing file was moved or renamed."})
final class RebaseCommand implements Callable<Integer> {
    @Option(names = {"-b", "--backing"}, required = true, description = "new backing file; an empty string removes it")
    String backing;

    @Option(names = {"-F", "--backing-format"}, description = "format of the new backing file (detected when omitted)")
    String backingFormat;

    @Option(names = {"-u", "--unsafe"}, description = "only rewrite the backing file name, copy nothing")
    boolean unsafe;

    @Parameters(paramLabel = "IMAGE")
    Path image;

    @Override
    public Integer call() {
        return ImageCommand.run(() -> {
            ImageRebase.rebase(image, backing.isEmpty() ? null : backing, ImageCommand.format(backingFormat), unsafe);
            return 0;
        });
    }
}
