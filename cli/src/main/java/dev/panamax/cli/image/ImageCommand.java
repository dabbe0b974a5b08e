package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.ReadOnlyImageException;
import dev.panamax.storage.image.ImageConverter;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine;

/** {@code panamax image}: create, inspect, check, repair, convert and snapshot disk images. */
@Command(
        name = "image",
        mixinStandardHelpOptions = true,
        description = "Create, inspect, check, repair and convert disk images (raw, qcow2, vhd, vmdk, vdi; vhdx read), and copy files out of them.")
public final class ImageCommand implements Callable<Integer> {
    /** The image commands, in the order help lists them (Panamax adds them, only the one named when it can). */
    public static final List<Class<?>> COMMANDS = List.of(
            CreateCommand.class,
            InfoCommand.class,
            CheckCommand.class,
            RepairCommand.class,
            RebaseCommand.class,
            ChainCommand.class,
            ConvertCommand.class,
            SnapshotCommand.class,
            CommitCommand.class,
            MapCommand.class);

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getOut());
        return 0;
    }

    /** The body of a subcommand; the library's exceptions about the user's input become one-line {@link UserError}s. */
    @FunctionalInterface
    interface Action {
        int run() throws IOException;
    }

    static int run(Action action) {
        try {
            return action.run();
        } catch (NoSuchFileException e) {
            throw new UserError(e.getFile() + ": " + (e.getReason() == null ? "no such file" : e.getReason()), e);
        } catch (AccessDeniedException e) {
            throw new UserError(e.getFile() + ": " + (e.getReason() == null ? "permission denied" : e.getReason()), e);
        } catch (FileAlreadyExistsException e) {
            throw new UserError(e.getFile() + ": already exists", e);
        } catch (InvalidImageException | ReadOnlyImageException | ImageRequestException e) {
            throw new UserError(e.getMessage(), e);
        } catch (IOException e) {
            throw new UserError("I/O error: " + e.getMessage(), e);
        }
    }

    /** The description of the option that gives the format of the image a command reads. */
    static final String SOURCE_FORMAT = "format of the image read: raw, qcow2, vhd, vmdk, vdi or vhdx (default: detected from its"
            + " contents, and a file in a format Panamax cannot read, such as QED or LUKS, is refused; raw reads any file as a raw disk)";

    static ImageFormat format(String name) {
        if (name == null) return null;
        try {
            return ImageFormat.parse(name);
        } catch (ImageRequestException e) {
            throw new UserError(e.getMessage());
        }
    }

    /** A one-line progress bar on stderr, redrawn in place; only used on a terminal unless forced. */
    static ImageConverter.Progress progressBar(PrintWriter err, boolean enabled) {
        if (!enabled) return null;
        return (done, total) -> {
            int pct = total == 0 ? 100 : (int) (done * 100 / total);
            int filled = pct * 40 / 100;
            err.print("\r    (" + "#".repeat(filled) + " ".repeat(40 - filled) + ") " + pct + "%");
            if (done >= total) err.println();
            err.flush();
        };
    }

    static boolean onTerminal() {
        return System.console() != null && System.console().isTerminal();
    }
}
