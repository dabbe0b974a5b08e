package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.ImageConverter;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Copy an image (with its whole backing chain) into a new image of any format; zero ranges stay sparse.",
        exitCodeListHeading = "Exit status:%n",
        exitCodeList = {"0:converted (with --salvage: nothing was lost)", "2:the conversion failed (or bad usage)",
            "3:--salvage: converted, but ranges that could not be read are zeros in the output (listed on stderr)"})
final class ConvertCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = {"-O", "--output-format"},
            description = "raw, qcow2, vhd, vmdk (monolithicSparse) or vdi (default: from the target's extension"
                    + " .qcow2/.vhd/.vmdk/.vdi, otherwise raw)")
    String format;

    @Option(names = {"-f", "--format"}, description = ImageCommand.SOURCE_FORMAT)
    String sourceFormat;

    @Option(names = {"-c", "--compress"},
            description = "compress every cluster (qcow2 output; with zlib unless -o compression_type=zstd)")
    boolean compress;

    @Option(names = "--cluster-size", defaultValue = "64K", description = "qcow2 output cluster size (default: ${DEFAULT-VALUE})")
    String clusterSize;

    @Option(names = {"-o", "--options"}, paramLabel = "KEY=VALUE[,...]", description = Qcow2Options.DESCRIPTION)
    List<String> options;

    @Option(names = "--fixed", description = "vhd output: a fixed VHD; vdi output: a static (preallocated) VDI")
    boolean fixed;

    @Option(names = {"-p", "--progress"}, description = "show a progress bar even when not on a terminal")
    boolean progress;

    @Option(names = {"-q", "--quiet"}, description = "no progress bar")
    boolean quiet;

    @Option(names = "--no-sync", description = "skip the final fsync of the output (what qemu-img convert does by default)")
    boolean noSync;

    @Option(names = "--force", description = "overwrite an existing output file")
    boolean force;

    @Option(names = "--salvage",
            description = "copy what can be read from a damaged image: each range that cannot be read or decoded (a"
                    + " qcow2 L2 table or cluster, a VHD block) is zeros in the output and listed on stderr (guest offset,"
                    + " length, reason); exit status 3 when anything was lost")
    boolean salvage;

    @Parameters(index = "0", paramLabel = "SOURCE")
    Path source;

    @Parameters(index = "1", paramLabel = "TARGET")
    Path target;

    /** --salvage lost data: distinct from 2 (failure), as check's 3 is distinct from its 2. */
    static final int EXIT_DATA_LOST = 3;

    static ImageFormat byExtension(Path target) {
        String name = target.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        if (name.endsWith(".qcow2")) return ImageFormat.QCOW2;
        if (name.endsWith(".vhd") || name.endsWith(".vpc")) return ImageFormat.VHD;
        if (name.endsWith(".vmdk")) return ImageFormat.VMDK;
        if (name.endsWith(".vdi")) return ImageFormat.VDI;
        if (name.endsWith(".vhdx")) return ImageFormat.VHDX; // refused as an output, rather than a raw file named .vhdx
        return ImageFormat.RAW;
    }

    @Override
    public Integer call() {
        ImageFormat f = format != null ? ImageCommand.format(format) : byExtension(target);
        ImageFormat from = ImageCommand.format(sourceFormat);
        if (compress && f != ImageFormat.QCOW2) throw new UserError("--compress needs qcow2 output (-O qcow2)");
        Qcow2Options qcow2 = Qcow2Options.parse(options);
        if (qcow2.given() && f != ImageFormat.QCOW2) throw new UserError("-o options are for qcow2 output (-O qcow2)");
        if (Files.exists(target) && !force) throw new UserError(target + " already exists; use --force to overwrite it");
        int cluster = Sizes.clusterSize(clusterSize);
        boolean bar = !quiet && (progress || ImageCommand.onTerminal());
        return ImageCommand.run(() -> {
            ImageConverter.Result r = ImageConverter.convert(source, target, ImageConverter.Options.of(f)
                    .withCompress(compress).withClusterSize(cluster).withVhdFixed(fixed)
                    .withCompression(qcow2.compression()).withExtendedL2(qcow2.extendedL2()).withSync(!noSync)
                    .withSourceFormat(from).withSalvage(salvage),
                    ImageCommand.progressBar(spec.commandLine().getErr(), bar));
            if (r.damaged().isEmpty()) return 0;
            PrintWriter err = spec.commandLine().getErr();
            for (ImageConverter.Damage d : r.damaged()) {
                err.println("panamax: lost guest range " + d.offset() + "+" + d.length() + " (0x" + Long.toHexString(d.offset())
                        + "-0x" + Long.toHexString(d.end()) + "), zeros in the output: " + d.reason());
            }
            err.println("panamax: salvaged " + source + " into " + target + ": " + r.bytesLost() + " bytes in "
                    + r.damaged().size() + " ranges could not be read and are zeros; everything else was copied");
            err.flush();
            return EXIT_DATA_LOST;
        });
    }
}
