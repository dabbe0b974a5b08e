package dev.panamax.storage;

import java.util.Locale;

public enum ImageFormat {
    RAW,
    QCOW2,
    VHD,
    VMDK,
    VDI,
    VHDX;

    /** The name used on the command line and in qcow2 backing-format extensions ("raw", "qcow2", "vpc", "vmdk", "vdi", "vhdx"). */
    public String id() {
        return this == VHD ? "vpc" : name().toLowerCase(Locale.ROOT);
    }

    /** The formats Panamax reads, for messages. */
    public static final String NAMES = "raw, qcow2, vhd, vmdk, vdi or vhdx";

    public static ImageFormat parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "raw" -> RAW;
            case "qcow2" -> QCOW2;
            case "vhd", "vpc" -> VHD;
            case "vmdk" -> VMDK;
            case "vdi" -> VDI;
            case "vhdx" -> VHDX;
            default -> throw new ImageRequestException(ForeignFormat.byId(name)
                    .map(f -> "Panamax cannot read " + f.id() + " images yet; use " + NAMES + " (convert with qemu-img first)")
                    .orElse("unknown image format '" + name + "'; use " + NAMES));
        };
    }
}
