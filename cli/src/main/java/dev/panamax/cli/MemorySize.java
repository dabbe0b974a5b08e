package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Sizes as users write them: {@code 512M}, {@code 2G}, {@code 1.5G}, {@code 65536K}, {@code 256} (MiB), binary units. */
final class MemorySize {
    private MemorySize() {}

    private static final Pattern SIZE = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*([KMGT]?)(?:I?B)?", Pattern.CASE_INSENSITIVE);

    /** Bytes in {@code text}; a bare number is MiB. */
    static long parse(String text, String option) {
        Matcher m = SIZE.matcher(text.strip());
        if (!m.matches()) {
            throw new UserError(option + " '" + text + "' is not a size: write it like 512M or 2G");
        }
        double value = Double.parseDouble(m.group(1));
        int shift = switch (m.group(2).toUpperCase(Locale.ROOT)) {
            case "K" -> 10;
            case "G" -> 30;
            case "T" -> 40;
            default -> 20;
        };
        double bytes = value * (1L << shift);
        if (bytes >= Long.MAX_VALUE / 2) {
            throw new UserError(option + " '" + text + "' is too large");
        }
        return (long) bytes;
    }
}
