package dev.panamax.cli.image;

import dev.panamax.storage.AllocationMap;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.image.Images;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

@Command(name = "map", mixinStandardHelpOptions = true,
        description = "Show which ranges of the disk hold data, read as zeros, or come from a backing file (depth > 0).")
final class MapCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ReportOptions report;

    @Override
    public Integer call() {
        return ImageCommand.run(() -> {
            PrintWriter out = spec.commandLine().getOut();
            try (BlockBackend disk = Images.open(report.image, Images.OpenOptions.readOnly().withFormat(report.format()))) {
                var entries = AllocationMap.map(disk);
                if (report.json) {
                    StringBuilder s = new StringBuilder("[");
                    for (AllocationMap.Entry e : entries) {
                        if (s.length() > 1) s.append(",\n");
                        s.append(new Json().field("start", e.offset()).field("length", e.length())
                                .field("depth", Math.max(e.depth(), 0)).field("zero", e.kind() == Extent.Kind.ZERO)
                                .field("data", e.kind() == Extent.Kind.DATA));
                    }
                    out.println(s.append(']'));
                } else {
                    out.printf("%-18s %-18s %6s  %s%n", "Offset", "Length", "Depth", "State");
                    for (AllocationMap.Entry e : entries) {
                        String state = e.kind() == Extent.Kind.DATA ? (e.depth() == 0 ? "data" : "data in backing file")
                                : e.depth() < 0 ? "zero (unallocated)" : "zero";
                        out.printf("0x%-16x 0x%-16x %6s  %s%n", e.offset(), e.length(), e.depth() < 0 ? "-" : e.depth(), state);
                    }
                }
            }
            return 0;
        });
    }
}
