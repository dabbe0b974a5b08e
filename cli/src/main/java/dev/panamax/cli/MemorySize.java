package dev.panamax.cli;

import dev.panamax.api.HugePages;
import dev.panamax.cli.common.UserError;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Sizes as users write them: {@code 512M}, {@code 2G}, {@code 1.5G}, {@code 65536K}, {@code 256} (MiB), binary units. */
final class MemorySize {
    private MemorySize() {}

    /** {@code --memory SIZE[,hugepages=2M|1G|none]}: the size, and what guest memory is mapped from. */
    record WithPages(long bytes, HugePages hugePages) {}

    static final String SYNTAX = "SIZE[,hugepages=2M|1G]";

    /** {@code text} as {@code --memory} takes it: a size, then optionally {@code hugepages=2M}, {@code 1G} or {@code none}. */
    static WithPages parseWithPages(String text, String option) {
        String[] parts = text.split(",", -1);
        long bytes = parse(parts[0], option);
        HugePages pages = HugePages.NONE;
        for (int i = 1; i < parts.length; i++) {
            if (!parts[i].startsWith("hugepages=")) {
                throw new UserError(option + " " + text + ": '" + parts[i] + "' is not an option of it (" + SYNTAX + ")");
            }
            String size = parts[i].substring("hugepages=".length());
            pages = switch (size.toUpperCase(Locale.ROOT)) {
                case "2M" -> HugePages.SIZE_2M;
                case "1G" -> HugePages.SIZE_1G;
                case "NONE" -> HugePages.NONE;
                default -> throw new UserError(option + " " + text + ": the huge page size is 2M or 1G (or none), not '" + size + "'");
            };
        }
        return new WithPages(bytes, pages);
    }

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
