package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.Qcow2Compression;
import java.util.List;
import java.util.Locale;

/**
 * The qcow2 creation options {@code -o key=value[,key=value...]} of {@code image create} and
 * {@code image convert}, spelled as qemu-img spells them; the option may also be repeated.
 *
 * @param compression how compressed clusters are compressed ({@code compression_type=zlib|zstd})
 * @param extendedL2  extended L2 entries with subclusters ({@code extended_l2=on|off})
 * @param given       whether any option was given at all (they apply to qcow2 only)
 */
record Qcow2Options(Qcow2Compression compression, boolean extendedL2, boolean given) {
    static final String DESCRIPTION = "qcow2 options, comma separated: compression_type=zlib|zstd, extended_l2=on|off";

    static Qcow2Options parse(List<String> options) {
        Qcow2Compression compression = Qcow2Compression.ZLIB;
        boolean extendedL2 = false, given = false;
        for (String option : options == null ? List.<String>of() : options) {
            for (String item : option.split(",")) {
                if (item.isBlank()) continue;
                int eq = item.indexOf('=');
                if (eq < 0) throw new UserError("-o " + item + ": write key=value, e.g. -o compression_type=zstd");
                String key = item.substring(0, eq).trim(), value = item.substring(eq + 1).trim();
                given = true;
                switch (key) {
                    case "compression_type" -> {
                        try {
                            compression = Qcow2Compression.parse(value);
                        } catch (ImageRequestException e) {
                            throw new UserError(e.getMessage());
                        }
                    }
                    case "extended_l2" -> extendedL2 = onOff(key, value);
                    default -> throw new UserError("-o " + key + " is not a known option; known are compression_type and"
                            + " extended_l2");
                }
            }
        }
        return new Qcow2Options(compression, extendedL2, given);
    }

    private static boolean onOff(String key, String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "on", "true", "yes" -> true;
            case "off", "false", "no" -> false;
            default -> throw new UserError("-o " + key + "=" + value + ": the value must be on or off");
        };
    }
}
