package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import dev.panamax.storage.CreateOptions;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(name = "create", mixinStandardHelpOptions = true, description = "Create a new image.")
final class CreateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = {"-f", "--format"}, defaultValue = "qcow2", description = "raw, qcow2, vhd, vmdk (monolithicSparse) or vdi (default: ${DEFAULT-VALUE})")
    String format;

    @Option(names = {"-b", "--backing"}, description = "backing file (qcow2 only); relative names are relative to the image")
    String backing;

    @Option(names = {"-F", "--backing-format"}, description = "format of the backing file (detected when omitted)")
    String backingFormat;

    @Option(names = {"-c", "--cluster-size"}, defaultValue = "64K", description = "qcow2 cluster size, 512 to 2M (default: ${DEFAULT-VALUE})")
    String clusterSize;

    @Option(names = "--lazy-refcounts", description = "qcow2: defer refcount updates (faster; repaired after a crash)")
    boolean lazyRefcounts;

    @Option(names = "--fixed", description = "vhd, vdi: preallocate the whole disk (fixed VHD, static VDI) instead of a dynamic one")
    boolean fixed;

    @Option(names = {"-o", "--options"}, paramLabel = "KEY=VALUE[,...]", description = Qcow2Options.DESCRIPTION)
    List<String> options;

    @Option(names = "--force", description = "overwrite an existing file")
    boolean force;

    @Parameters(index = "0", paramLabel = "IMAGE")
    Path image;

    @Parameters(index = "1", paramLabel = "SIZE", arity = "0..1",
            description = "virtual size, e.g. 10G or 512M (default with a backing file: its size)")
    String size;

    @Override
    public Integer call() {
        ImageFormat f = ImageCommand.format(format);
        long bytes = size == null ? -1 : Sizes.parse(size);
        if (bytes < 0 && backing == null) throw new UserError("give the image size, e.g. 'panamax image create disk.qcow2 10G'");
        int cluster = Sizes.clusterSize(clusterSize);
        Qcow2Options qcow2 = Qcow2Options.parse(options);
        if (qcow2.given() && f != ImageFormat.QCOW2) throw new UserError("-o options are for qcow2 images (-f qcow2)");
        if (Files.exists(image) && !force) throw new UserError(image + " already exists; use --force to overwrite it");
        return ImageCommand.run(() -> {
            Images.create(image, CreateOptions.of(f, bytes).withClusterSize(cluster)
                    .withBacking(backing, ImageCommand.format(backingFormat)).withLazyRefcounts(lazyRefcounts)
                    .withVhdFixed(fixed).withCompression(qcow2.compression()).withExtendedL2(qcow2.extendedL2()));
            var info = dev.panamax.storage.image.ImageInfo.read(image);
            spec.commandLine().getOut().println("Formatting '" + image + "', fmt=" + f.id() + " size=" + info.virtualSize()
                    + (backing == null ? "" : " backing_file=" + backing));
            return 0;
        });
    }
}
