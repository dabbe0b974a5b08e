package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** Parses {@code --disk PATH[,readonly][,id=ID][,transport=pci|mmio]}. */
final class DiskOption {
    private DiskOption() {}

    static final String SYNTAX = "PATH[,readonly][,id=ID][,transport=pci|mmio]";

    /**
     * @param index the disk's position among the --disk options, for its default ID ("disk0", ...)
     * @throws UserError naming the option when it is malformed or the file is not a usable image file
     */
    static VirtualMachine.Disk parse(String spec, int index) {
        String[] parts = spec.split(",", -1);
        if (parts[0].isEmpty()) {
            throw new UserError("--disk " + spec + ": the image path is missing (" + SYNTAX + ")");
        }
        Path path = Path.of(parts[0]).toAbsolutePath().normalize();
        boolean readOnly = false;
        String id = "disk" + index;
        VirtualMachine.Transport transport = VirtualMachine.Transport.PCI;
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i];
            if (part.equals("readonly")) {
                readOnly = true;
            } else if (part.startsWith("id=")) {
                id = part.substring(3);
            } else if (part.startsWith("transport=")) {
                try {
                    transport = VirtualMachine.Transport.valueOf(part.substring(10).toUpperCase(Locale.ROOT));
                } catch (IllegalArgumentException e) {
                    throw new UserError("--disk " + spec + ": the transport is pci or mmio, not '" + part.substring(10) + "'");
                }
            } else {
                throw new UserError("--disk " + spec + ": unknown setting '" + part + "' (" + SYNTAX + ")");
            }
        }
        if (Files.isDirectory(path)) {
            throw new UserError("--disk " + spec + ": " + path + " is a directory, not a disk image");
        }
        if (!Files.exists(path)) {
            throw new UserError("--disk " + spec + ": " + path + " does not exist (create one with: panamax image create " + path + " 1G)");
        }
        if (!Files.isRegularFile(path)) {
            throw new UserError("--disk " + spec + ": " + path + " is not a regular file");
        }
        if (!Files.isReadable(path) || (!readOnly && !Files.isWritable(path))) {
            throw new UserError("--disk " + spec + ": no permission to " + (readOnly ? "read " : "read and write ") + path
                    + (readOnly ? "" : " (add ,readonly for a read-only disk)"));
        }
        try {
            return new VirtualMachine.Disk(path, readOnly, id, transport);
        } catch (IllegalArgumentException e) {
            throw new UserError("--disk " + spec + ": " + e.getMessage());
        }
    }

    /** The option that names {@code disk} again, with its absolute path: for the copy of a command run in the rig. */
    static String format(VirtualMachine.Disk disk) {
        return disk.path() + (disk.readOnly() ? ",readonly" : "") + ",id=" + disk.id() + ",transport=" + disk.transport().name().toLowerCase(Locale.ROOT);
    }
}
