package dev.panamax.storage;

import java.util.Locale;

public enum ImageFormat {
    RAW,
    QCOW2,
    VHD;

    /** The name used on the command line and in qcow2 backing-format extensions ("raw", "qcow2", "vpc"). */
    public String id() {
        return this == VHD ? "vpc" : name().toLowerCase(Locale.ROOT);
    }

    public static ImageFormat parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "raw" -> RAW;
            case "qcow2" -> QCOW2;
            case "vhd", "vpc" -> VHD;
            default -> throw new ImageRequestException(ForeignFormat.byId(name)
                    .map(f -> "Panamax cannot read " + f.id() + " images yet; use raw, qcow2 or vhd (convert with qemu-img first)")
                    .orElse("unknown image format '" + name + "'; use raw, qcow2 or vhd"));
        };
    }
}
