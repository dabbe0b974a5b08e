package dev.panamax.storage.image;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.Qcow2Compression;
import dev.panamax.storage.RawImage;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.storage.qcow2.Qcow2Snapshot;
import dev.panamax.storage.vdi.VdiImage;
import dev.panamax.storage.vhd.VhdImage;
import dev.panamax.storage.vhdx.VhdxImage;
import dev.panamax.storage.vmdk.VmdkImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * What {@code info} shows about an image; read without opening its backing chain. {@code compression}
 * is null for formats other than qcow2. For VHDX, {@code clusterSize} is the block size, {@code vhdxType}
 * "fixed" or "dynamic" and {@code logicalSectorSize} the sector size the guest sees (0 for other formats).
 */
public record ImageInfo(Path path, ImageFormat format, long virtualSize, long fileSize, long allocatedBytes,
        int clusterSize, String backingFile, String backingFormat, Integer qcow2Version, boolean lazyRefcounts,
        boolean corrupt, boolean dirty, String vhdType, List<Qcow2Snapshot> snapshots, Qcow2Compression compression,
        boolean extendedL2, String vmdkCreateType, List<String> vmdkExtents, String vdiType, String vhdxType,
        int logicalSectorSize) {

    public static ImageInfo read(Path path) throws IOException {
        return read(path, null);
    }

    /** @param format the image's format, or null to probe it */
    public static ImageInfo read(Path path, ImageFormat format) throws IOException {
        try (BlockBackend disk = Images.open(path, Images.OpenOptions.readOnly().withoutBacking().withFormat(format))) {
            return switch (disk) {
                case Qcow2Image q -> new ImageInfo(path, ImageFormat.QCOW2, q.size(), q.fileSize(), q.allocatedBytes(),
                        q.clusterSize(), q.backingFileName(), q.backingFormatName(), q.version(), q.lazyRefcounts(),
                        q.markedCorrupt(), q.markedDirty(), null, q.snapshots(), q.compression(), q.extendedL2(), null,
                        List.of(), null, null, 0);
                case VhdImage v -> new ImageInfo(path, ImageFormat.VHD, v.size(), v.fileSize(), v.allocatedBytes(), 0,
                        null, null, null, false, false, false, v.isDynamic() ? "dynamic" : "fixed", List.of(),
                        null, false, null, List.of(), null, null, 0);
                case VmdkImage v -> new ImageInfo(path, ImageFormat.VMDK, v.size(), v.fileSize(), v.allocatedBytes(),
                        v.grainSize(), null, null, null, false, false, false, null, List.of(), null, false, v.createType(),
                        v.extentDescriptions(), null, null, 0);
                case VdiImage v -> new ImageInfo(path, ImageFormat.VDI, v.size(), v.fileSize(), v.allocatedBytes(),
                        v.blockSize(), null, null, null, false, false, false, null, List.of(), null, false, null, List.of(),
                        v.isStatic() ? "static" : "dynamic", null, 0);
                case VhdxImage v -> new ImageInfo(path, ImageFormat.VHDX, v.size(), v.fileSize(), v.allocatedBytes(),
                        v.blockSize(), null, null, null, false, false, false, null, List.of(), null, false, null, List.of(),
                        null, v.isFixed() ? "fixed" : "dynamic", v.logicalSectorSize());
                case RawImage r -> new ImageInfo(path, ImageFormat.RAW, r.size(), r.file().size(),
                        r.file().allocatedBytes(), 0, null, null, null, false, false, false, null, List.of(), null, false,
                        null, List.of(), null, null, 0);
                default -> throw new IllegalStateException("unknown backend " + disk.getClass());
            };
        }
    }
}
