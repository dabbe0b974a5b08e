package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vmm.ConfigException;
import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {

    private static void assertMalformed(String text, String expected) {
        assertThatThrownBy(() -> Json.parse(text, "body")).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("body: malformed JSON at ").hasMessageContaining(expected);
    }

    @Test
    void parsesEveryKindOfValue() {
        Object v = Json.parse(" {\"a\": [1, -2.5e1, true, false, null], \"b\": {\"c\": \"x\\n\\u00e9\\\"\"},"
                + " \"big\": 12345678901234567890, \"zero\": 0}\r\n", "body");
        Map<String, Object> expected = new LinkedHashMap<>();
        expected.put("a", java.util.Arrays.asList(1L, -25.0, true, false, null));
        expected.put("b", Map.of("c", "x\né\""));
        expected.put("big", new BigInteger("12345678901234567890"));
        expected.put("zero", 0L);
        assertThat(v).isEqualTo(expected);
        assertThat(List.copyOf(((Map<?, ?>) v).keySet())).as("document order").isEqualTo(List.of("a", "b", "big", "zero"));
    }

    @Test
    void writesWhatItParses() {
        Map<String, Object> value = new LinkedHashMap<>();
        value.put("s", "quote \" backslash \\ tab \t bell \u0007 é");
        value.put("n", List.of(1L, 2.5, -3L));
        value.put("nothing", null);
        value.put("yes", true);
        String text = Json.write(value);
        assertThat(text).isEqualTo("{\"s\":\"quote \\\" backslash \\\\ tab \\t bell \\u0007 é\",\"n\":[1,2.5,-3],\"nothing\":null,\"yes\":true}");
        assertThat(Json.parse(text, "again")).isEqualTo(value);
    }

    @Test
    void malformedTextIsRefusedWithItsPlace() {
        assertMalformed("", "line 1, column 1: expected a JSON value, found the end of the text");
        assertMalformed("{\"a\": 1,}", "line 1, column 9: expected a member name in double quotes, found '}'");
        assertMalformed("{\n  \"a\" 1}", "line 2, column 7: expected ':' after the member name \"a\", found '1'");
        assertMalformed("{\"a\": 1 \"b\": 2}", "expected ',' or '}' after the value of \"a\"");
        assertMalformed("[1 2]", "expected ',' or ']' after an array element");
        assertMalformed("{\"a\": 1, \"a\": 2}", "line 1, column 10: the key \"a\" appears twice in one object");
        assertMalformed("\"open", "this string has no closing quote");
        assertMalformed("\"a\tb\"", "a control character (U+0009) must be escaped");
        assertMalformed("\"\\x\"", "\\x is not a JSON escape");
        assertMalformed("\"\\u12g4\"", "\\u must be followed by four hex digits");
        assertMalformed("-", "a number needs digits after '-'");
        assertMalformed("1.", "a number needs digits after '.'");
        assertMalformed("1e", "a number needs digits in its exponent");
        assertMalformed("[1, -1e309]", "line 1, column 5: the number -1e309 is too large");
        assertMalformed("01", "unexpected '1' after the JSON value");
        assertMalformed("tru", "expected a JSON value, found 't'");
        assertMalformed("{} x", "unexpected 'x' after the JSON value");
        assertMalformed("// comment\n{}", "expected a JSON value, found '/'");
    }

    @Test
    void nestingIsBounded() {
        String deep = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH);
        assertThat(Json.parse(deep, "body")).isInstanceOf(List.class);
        // Deep enough to overflow a recursive parser's stack without the bound.
        assertMalformed("[".repeat(100_000), "nested more than " + Json.MAX_DEPTH + " deep");
    }

    @Test
    void valuesAreDescribedForErrorMessages() {
        assertThat(Json.describe("two")).isEqualTo("the string \"two\"");
        assertThat(Json.describe(1.5)).isEqualTo("the number 1.5");
        assertThat(Json.describe(null)).isEqualTo("null");
        assertThat(Json.describe(List.of())).isEqualTo("an array");
        assertThat(Json.describe(Map.of())).isEqualTo("an object");
    }
}
