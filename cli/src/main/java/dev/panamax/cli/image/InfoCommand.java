package dev.panamax.cli.image;

import dev.panamax.storage.image.ImageInfo;
import dev.panamax.storage.qcow2.Qcow2Snapshot;
import java.io.PrintWriter;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

@Command(name = "info", mixinStandardHelpOptions = true, description = "Show format, sizes, backing file and snapshots of an image.")
final class InfoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ReportOptions report;

    @Override
    public Integer call() {
        return ImageCommand.run(() -> {
            ImageInfo info = ImageInfo.read(report.image, report.format());
            PrintWriter out = spec.commandLine().getOut();
            out.println(report.json ? toJson(info) : toText(info));
            return 0;
        });
    }

    static String toText(ImageInfo i) {
        StringBuilder s = new StringBuilder();
        s.append("image: ").append(i.path()).append('\n');
        s.append("file format: ").append(i.format().id()).append('\n');
        s.append("virtual size: ").append(Sizes.human(i.virtualSize())).append(" (").append(i.virtualSize()).append(" bytes)\n");
        s.append("disk size: ").append(Sizes.human(i.allocatedBytes())).append('\n');
        if (i.clusterSize() > 0) s.append("cluster_size: ").append(i.clusterSize()).append('\n');
        if (i.vhdType() != null) s.append("vhd type: ").append(i.vhdType()).append('\n');
        if (i.vdiType() != null) s.append("vdi type: ").append(i.vdiType()).append('\n');
        if (i.vhdxType() != null) {
            s.append("Format specific information:\n");
            s.append("    type: ").append(i.vhdxType()).append('\n');
            s.append("    block size: ").append(i.clusterSize()).append('\n');
            s.append("    logical sector size: ").append(i.logicalSectorSize()).append('\n');
        }
        if (i.backingFile() != null) {
            s.append("backing file: ").append(i.backingFile()).append('\n');
            if (i.backingFormat() != null) s.append("backing file format: ").append(i.backingFormat()).append('\n');
        }
        if (!i.snapshots().isEmpty()) {
            s.append("Snapshot list:\n");
            s.append(String.format("%-4s %-20s %12s %-19s%n", "ID", "TAG", "DISK SIZE", "DATE"));
            for (Qcow2Snapshot sn : i.snapshots()) {
                s.append(String.format("%-4s %-20s %12s %-19s%n", sn.id(), sn.name(), Sizes.human(sn.diskSize()), date(sn)));
            }
        }
        if (i.vmdkCreateType() != null) {
            s.append("Format specific information:\n");
            s.append("    create type: ").append(i.vmdkCreateType()).append('\n');
            s.append("    extents:\n");
            for (String e : i.vmdkExtents()) s.append("        ").append(e).append('\n');
        }
        if (i.qcow2Version() != null) {
            s.append("Format specific information:\n");
            s.append("    compat: ").append(i.qcow2Version() == 2 ? "0.10" : "1.1").append('\n');
            s.append("    compression type: ").append(i.compression().id()).append('\n');
            s.append("    lazy refcounts: ").append(i.lazyRefcounts()).append('\n');
            s.append("    corrupt: ").append(i.corrupt()).append('\n');
            s.append("    extended l2: ").append(i.extendedL2()).append('\n');
            if (i.dirty()) s.append("    dirty: true (not closed cleanly; refcounts are rebuilt on the next write)\n");
        }
        return s.toString().stripTrailing();
    }

    private static String date(Qcow2Snapshot s) {
        return DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault())
                .format(Instant.ofEpochSecond(s.dateSeconds()));
    }

    static String toJson(ImageInfo i) {
        Json j = new Json();
        j.field("filename", i.path().toString()).field("format", i.format().id()).field("virtual-size", i.virtualSize())
                .field("actual-size", i.allocatedBytes()).field("file-size", i.fileSize());
        if (i.clusterSize() > 0) j.field("cluster-size", i.clusterSize());
        if (i.backingFile() != null) j.field("backing-filename", i.backingFile());
        if (i.backingFormat() != null) j.field("backing-filename-format", i.backingFormat());
        if (i.vhdType() != null) j.field("vhd-type", i.vhdType());
        if (i.vdiType() != null) j.field("vdi-type", i.vdiType());
        if (i.vhdxType() != null) {
            j.field("vhdx-type", i.vhdxType()).field("block-size", i.clusterSize())
                    .field("logical-sector-size", i.logicalSectorSize());
        }
        if (i.vmdkCreateType() != null) {
            j.field("create-type", i.vmdkCreateType());
            StringBuilder arr = new StringBuilder("[");
            for (String e : i.vmdkExtents()) {
                if (arr.length() > 1) arr.append(", ");
                arr.append(new Json().field("description", e).toString());
            }
            j.raw("extents", arr.append(']').toString());
        }
        if (i.qcow2Version() != null) {
            j.field("compat", i.qcow2Version() == 2 ? "0.10" : "1.1").field("compression-type", i.compression().id())
                    .field("lazy-refcounts", i.lazyRefcounts()).field("corrupt", i.corrupt())
                    .field("extended-l2", i.extendedL2()).field("dirty", i.dirty());
        }
        if (!i.snapshots().isEmpty()) {
            StringBuilder arr = new StringBuilder("[");
            for (Qcow2Snapshot s : i.snapshots()) {
                if (arr.length() > 1) arr.append(", ");
                arr.append(new Json().field("id", s.id()).field("name", s.name()).field("disk-size", s.diskSize())
                        .field("date-sec", s.dateSeconds()).field("date-nsec", s.dateNanos()).toString());
            }
            j.raw("snapshots", arr.append(']').toString());
        }
        return j.toString();
    }
}
