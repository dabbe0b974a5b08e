package dev.panamax.rig;

import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Locale;

/** Durations as people write them on command lines and in variables: "90s", "10m", "2h", or ISO-8601 ("PT1M30S"). */
public final class DurationText {
    private DurationText() {}

    /** The duration {@code text} writes; an {@link IllegalArgumentException} saying how to write one otherwise. */
    public static Duration parse(String text) {
        String t = text.strip().toLowerCase(Locale.ROOT);
        try {
            if (t.matches("\\d{1,9}[smh]")) {
                long n = Long.parseLong(t.substring(0, t.length() - 1));
                return switch (t.charAt(t.length() - 1)) {
                    case 's' -> Duration.ofSeconds(n);
                    case 'm' -> Duration.ofMinutes(n);
                    default -> Duration.ofHours(n);
                };
            }
            return Duration.parse(t.toUpperCase(Locale.ROOT));
        } catch (DateTimeParseException e) {
            throw new IllegalArgumentException("'" + text + "' is not a duration; write it like 90s, 10m or 2h");
        }
    }
}
