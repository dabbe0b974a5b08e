package dev.panamax.cli;

import java.util.ArrayList;
import java.util.List;

/**
 * The comma-separated settings of an option such as {@code --disk PATH,readonly}. A comma inside a
 * value (a path with a comma in its name) is written twice, as QEMU's options do: {@code
 * --disk a,,b.qcow2,readonly} is the image {@code a,b.qcow2}, read-only.
 */
final class OptionSettings {
    private OptionSettings() {}

    /** The settings of {@code spec}, with each doubled comma read as one comma of a value; empty settings kept. */
    static List<String> split(String spec) {
        List<String> settings = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (int i = 0; i < spec.length(); i++) {
            char c = spec.charAt(i);
            if (c != ',') {
                current.append(c);
            } else if (i + 1 < spec.length() && spec.charAt(i + 1) == ',') {
                current.append(',');
                i++;
            } else {
                settings.add(current.toString());
                current.setLength(0);
            }
        }
        settings.add(current.toString());
        return settings;
    }

    /** {@code value} as one setting: each comma doubled, so {@link #split} gives it back whole. */
    static String escape(String value) {
        return value.replace(",", ",,");
    }
}
