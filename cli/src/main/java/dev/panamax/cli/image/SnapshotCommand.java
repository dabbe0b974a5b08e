package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(name = "snapshot", mixinStandardHelpOptions = true,
        description = "Create, list, apply (revert to) or delete internal snapshots of a qcow2 image.")
final class SnapshotCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    static final class Action {
        @Option(names = {"-c", "--create"}, paramLabel = "NAME", description = "create a snapshot")
        String create;

        @Option(names = {"-l", "--list"}, description = "list snapshots")
        boolean list;

        @Option(names = {"-a", "--apply"}, paramLabel = "ID|NAME", description = "revert the disk to a snapshot")
        String apply;

        @Option(names = {"-d", "--delete"}, paramLabel = "ID|NAME", description = "delete a snapshot")
        String delete;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Action action;

    @Parameters(paramLabel = "IMAGE")
    Path image;

    @Override
    public Integer call() {
        return ImageCommand.run(() -> {
            boolean write = !action.list;
            var options = write ? Images.OpenOptions.readWrite() : Images.OpenOptions.readOnly();
            try (BlockBackend disk = Images.open(image, options.withoutBacking())) {
                if (!(disk instanceof Qcow2Image q)) {
                    throw new UserError(image + " is a " + disk.format().id() + " image; only qcow2 images have snapshots");
                }
                PrintWriter out = spec.commandLine().getOut();
                if (action.list) {
                    out.println(InfoCommand.toText(dev.panamax.storage.image.ImageInfo.read(image)).lines()
                            .dropWhile(l -> !l.equals("Snapshot list:")).takeWhile(l -> !l.startsWith("Format specific"))
                            .reduce((a, b) -> a + "\n" + b).orElse("No snapshots."));
                } else if (action.create != null) {
                    var s = q.createSnapshot(action.create);
                    out.println("Created snapshot " + s.id() + " '" + s.name() + "'");
                } else if (action.apply != null) {
                    q.applySnapshot(action.apply);
                } else {
                    q.deleteSnapshot(action.delete);
                }
            }
            return 0;
        });
    }
}
