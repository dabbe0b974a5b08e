package dev.panamax.cli;

import dev.panamax.api.Drive;
import dev.panamax.api.Transport;
import dev.panamax.cli.common.UserError;
import dev.panamax.vmm.VmRules;
import java.nio.file.Path;
import java.util.Locale;

/** {@code --disk PATH[,readonly][,root][,id=ID][,transport=pci|mmio]}: a drive given on the command line. */
final class DiskOption {
    private DiskOption() {}

    static final String SYNTAX = "PATH[,readonly][,root][,id=ID][,transport=pci|mmio]";

    /**
     * @param index the disk's position among the --disk options, for its default ID ("disk0", ...)
     * @throws UserError naming the option when it is malformed
     * @throws dev.panamax.vmm.ConfigException when the ID or the image file is unusable
     */
    static Drive parse(String spec, int index) {
        String[] parts = spec.split(",", -1);
        if (parts[0].isEmpty()) {
            throw new UserError("--disk " + spec + ": the image path is missing (" + SYNTAX + ")");
        }
        boolean readOnly = false;
        boolean root = false;
        String id = "disk" + index;
        Transport transport = Transport.PCI;
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i];
            if (part.equals("readonly")) {
                readOnly = true;
            } else if (part.equals("root")) {
                root = true;
            } else if (part.startsWith("id=")) {
                id = part.substring(3);
            } else if (part.startsWith("transport=")) {
                try {
                    transport = Transport.valueOf(part.substring(10).toUpperCase(Locale.ROOT));
                } catch (IllegalArgumentException e) {
                    throw new UserError("--disk " + spec + ": the transport is pci or mmio, not '" + part.substring(10) + "'");
                }
            } else {
                throw new UserError("--disk " + spec + ": unknown setting '" + part + "' (" + SYNTAX + ")");
            }
        }
        VmRules.id(id, "--disk " + spec);
        Path image = VmRules.diskImage(parts[0], readOnly, "--disk " + spec).toAbsolutePath().normalize();
        return new Drive(id, image, readOnly, root, transport);
    }

    /** The option that names {@code drive} again, with its absolute path: for the copy of a command run in the rig. */
    static String format(Drive drive) {
        return drive.path() + (drive.readOnly() ? ",readonly" : "") + (drive.root() ? ",root" : "") + ",id=" + drive.id()
                + ",transport=" + drive.transport().name().toLowerCase(Locale.ROOT);
    }
}
