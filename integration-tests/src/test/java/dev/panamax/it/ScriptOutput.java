package dev.panamax.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** What a boot test's script printed, read back. */
final class ScriptOutput {
    private ScriptOutput() {}

    /** The first group of {@code regex}'s first match in {@code out}; a test failure, with the whole output, when it has none. */
    static String fact(String out, String regex) {
        Matcher m = Pattern.compile(regex).matcher(out);
        assertThat(m.find()).as("output has " + regex + ":\n" + out).isTrue();
        return m.group(1);
    }
}
