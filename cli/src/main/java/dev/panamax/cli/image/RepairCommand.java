package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import dev.panamax.storage.image.ImageChecker;
import dev.panamax.storage.qcow2.Qcow2Rebuild;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(name = "repair", mixinStandardHelpOptions = true,
        description = {"Repair an image: reclaim leaked clusters and fix wrong refcounts (qcow2).",
            "Backing-chain problems (a missing or moved backing file) are reported; fix them with 'rebase'.",
            "With --rebuild-tables (qcow2), rebuild an image whose L1 table or refcount structures are destroyed from"
                    + " the L2 tables a scan of the file finds; the damaged original is kept (IMAGE.damaged, --backup) or"
                    + " left alone (-O)."},
        exitCodeListHeading = "Exit status:%n",
        exitCodeList = {"0:the image is clean now (--rebuild-tables: and every L2 table found is in place)",
            "2:corruptions remain", "3:leaks remain",
            "4:--rebuild-tables: the image is clean, but L1 entries were dropped or L2 tables orphaned (listed): their"
                    + " data is not in it"})
final class RepairCommand implements Callable<Integer> {
    /** The rebuilt image is sound but does not map everything the scan found. */
    static final int EXIT_TABLES_LEFT_OUT = 4;

    @Spec
    CommandSpec spec;

    @Option(names = "--rebuild-tables",
            description = "qcow2: rebuild the L1 table and the refcounts by scanning the file for L2 tables. A surviving"
                    + " L1 entry keeps its table; a table no L1 entry names (orphaned) is placed only when exactly one"
                    + " table and one empty L1 slot are left, otherwise listed (and written out with --orphans)")
    boolean rebuildTables;

    @Option(names = {"-O", "--output"}, paramLabel = "OUT",
            description = "--rebuild-tables: write the rebuilt image to OUT and leave IMAGE as it is")
    Path output;

    @Option(names = "--backup", paramLabel = "PATH",
            description = "--rebuild-tables in place: copy the damaged original to PATH first (default: IMAGE.damaged)")
    Path backup;

    @Option(names = "--orphans", paramLabel = "DIR",
            description = "--rebuild-tables: write the data each orphaned L2 table maps to DIR/l2-at-0xOFFSET.raw, one"
                    + " L2 range (a raw file, holes where it maps nothing)")
    Path orphans;

    @Parameters(paramLabel = "IMAGE")
    Path image;

    @Override
    public Integer call() {
        if (!rebuildTables && (output != null || backup != null || orphans != null)) {
            throw new UserError("-O, --backup and --orphans go with --rebuild-tables");
        }
        if (output != null && backup != null) {
            throw new UserError("-O leaves the original alone, so there is nothing to back up; give one of -O and --backup");
        }
        return ImageCommand.run(() -> {
            PrintWriter out = spec.commandLine().getOut();
            if (rebuildTables) return rebuild(out);
            ImageChecker.RepairResult r = ImageChecker.repair(image);
            out.println("Before repair: " + r.before().corruptions() + " errors, " + r.before().leaks() + " leaked clusters.");
            out.println("After repair:");
            out.println(CheckCommand.toText(r.after()));
            return r.after().exitStatus();
        });
    }

    private int rebuild(PrintWriter out) throws java.io.IOException {
        ImageChecker.RebuildResult r = ImageChecker.rebuildTables(image, new ImageChecker.RebuildOptions(output, backup, orphans));
        Qcow2Rebuild.Result t = r.tables();
        out.println("Rebuilt " + r.rebuilt() + (output != null ? " from " + image : "; the damaged original is kept as "
                + r.original()) + ".");
        out.println("L2 tables found by scanning the file: " + t.tablesFound() + "; in place: " + (t.keptByL1() + t.placed())
                + " (" + t.keptByL1() + " named by surviving L1 entries, " + t.placed() + " put in the only slot left);"
                + " orphaned: " + t.orphans().size() + ".");
        out.println("Guest clusters mapped: " + t.clustersMapped() + "; in orphaned tables: " + t.clustersOrphaned() + ".");
        for (String dropped : t.droppedL1()) out.println("Dropped: " + dropped);
        if (t.droppedLeftEmpty() > 0) {
            out.println(t.droppedLeftEmpty() + " guest ranges whose L1 entry was dropped stay empty (read as zeros or from"
                    + " the backing file).");
        }
        for (Qcow2Rebuild.Orphan o : t.orphans()) {
            out.println("Orphaned L2 table at host offset 0x" + Long.toHexString(o.hostOffset()) + ": " + o.clusters()
                    + " clusters, guest range unknown" + (o.file() != null ? "; its data is in " + o.file() : ""));
        }
        out.println("After rebuild:");
        out.println(CheckCommand.toText(r.after()));
        int status = r.after().exitStatus();
        if (status == 0 && !t.complete()) return EXIT_TABLES_LEFT_OUT;
        return status;
    }
}
