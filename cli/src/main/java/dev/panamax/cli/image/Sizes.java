package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Sizes on the command line: bytes, or a number with a binary unit (K, M, G, T, P; "KiB"/"k" too), as qemu-img takes them. */
final class Sizes {
    private static final Pattern SIZE = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*([kmgtpe]?)(?:i?b)?", Pattern.CASE_INSENSITIVE);

    private Sizes() {}

    static long parse(String text) {
        Matcher m = SIZE.matcher(text.trim());
        if (!m.matches()) {
            throw new UserError("'" + text + "' is not a size; write bytes or a number with a unit, e.g. 512M or 10G");
        }
        int shift = switch (m.group(2).toLowerCase(Locale.ROOT)) {
            case "" -> 0;
            case "k" -> 10;
            case "m" -> 20;
            case "g" -> 30;
            case "t" -> 40;
            case "p" -> 50;
            default -> 60;
        };
        java.math.BigDecimal bytes = new java.math.BigDecimal(m.group(1)).multiply(java.math.BigDecimal.valueOf(2).pow(shift));
        if (bytes.compareTo(java.math.BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
            throw new UserError("size '" + text + "' is too large");
        }
        if (bytes.stripTrailingZeros().scale() > 0) throw new UserError("size '" + text + "' is not a whole number of bytes");
        return bytes.longValueExact();
    }

    /** A cluster size option: a size that fits an int (the format checks the range). */
    static int clusterSize(String text) {
        long cluster = parse(text);
        if (cluster > Integer.MAX_VALUE) throw new UserError("cluster size " + text + " is too large");
        return (int) cluster;
    }

    /** "10 GiB", "1.5 MiB", "512 B": for humans, like qemu-img info. */
    static String human(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int u = 0;
        double v = bytes;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        if (u == 0) return bytes + " B";
        String s = String.format(Locale.ROOT, "%.3g", v);
        if (s.contains(".")) s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        return s + " " + units[u];
    }
}
