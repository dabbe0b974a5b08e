package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import dev.panamax.api.VirtualMachineException;
import dev.panamax.cli.common.UserError;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code panamax snapshot-merge}: a diff snapshot's memory pages onto its base's memory file. */
@Command(name = "snapshot-merge", mixinStandardHelpOptions = true, description = {
    "Copy the memory pages of the diff snapshot in DIFF_DIR onto the memory file of its base in BASE_DIR,"
            + " then make DIFF_DIR's state the one BASE_DIR restores: BASE_DIR then holds the VM as the diff saved it.",
    "Merge diffs in the order they were taken."})
final class SnapshotMergeCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "DIFF_DIR", description = "a diff snapshot (panamax snapshot --diff)")
    Path diff;

    @Parameters(index = "1", paramLabel = "BASE_DIR", description = "its base: a full snapshot, with any earlier diffs merged")
    Path base;

    @Override
    public Integer call() throws IOException {
        Path diffState = diff.resolve(SnapshotCommand.STATE_FILE);
        try {
            VirtualMachine.mergeMemory(diffState, diff.resolve(SnapshotCommand.MEMORY_FILE), base.resolve(SnapshotCommand.MEMORY_FILE));
            Files.copy(diffState, base.resolve(SnapshotCommand.STATE_FILE), StandardCopyOption.REPLACE_EXISTING);
        } catch (VirtualMachineException e) {
            throw new UserError(e.getMessage());
        } catch (NoSuchFileException e) {
            throw new UserError("there is no " + e.getFile() + ": a snapshot directory holds " + SnapshotCommand.STATE_FILE + " and "
                    + SnapshotCommand.MEMORY_FILE);
        }
        System.err.println("panamax: merged " + diff + " onto " + base);
        return 0;
    }
}
