package dev.panamax.storage;

import java.util.Locale;
import java.util.Optional;

/**
 * The image formats qemu-img recognises that Panamax cannot read yet. A file in one of them is
 * refused by name: read as raw, its container's headers and tables would be the disk's content, and a
 * guest writing to it would destroy them.
 */
public enum ForeignFormat {
    QED("qed", "a QED image (QEMU enhanced disk)"),
    LUKS("luks", "a LUKS-encrypted image"),
    PARALLELS("parallels", "a Parallels image"),
    DMG("dmg", "a DMG image (Apple disk image)"),
    CLOOP("cloop", "a cloop image (compressed loopback)"),
    BOCHS("bochs", "a Bochs growing image"),
    QCOW("qcow", "a qcow image of version 1 (the format before qcow2)");

    private final String id;
    private final String description;

    ForeignFormat(String id, String description) {
        this.id = id;
        this.description = description;
    }

    /** qemu-img's name for the format ({@code -f vmdk}). */
    public String id() {
        return id;
    }

    /** What a file in this format is, for a sentence: "a VMDK image (VMware)". */
    public String description() {
        return description;
    }

    /** The format qemu-img calls {@code name}, if Panamax knows it as one it cannot read. */
    public static Optional<ForeignFormat> byId(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        for (ForeignFormat f : values()) {
            if (f.id.equals(n)) return Optional.of(f);
        }
        return Optional.empty();
    }
}
