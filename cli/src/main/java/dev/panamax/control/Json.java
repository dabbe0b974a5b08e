package dev.panamax.control;

import dev.panamax.vmm.ConfigException;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * JSON (RFC 8259) as plain Java values: an object is a {@code Map<String, Object>} (in document
 * order), an array a {@code List<Object>}, a string a {@code String}, a number without fraction or
 * exponent a {@code Long} (or {@code BigInteger} beyond a long), any other number a {@code Double},
 * {@code true}/{@code false} a {@code Boolean}, {@code null} null. Strict: no comments, no trailing
 * commas, no duplicate keys, nesting at most {@value #MAX_DEPTH} deep (input comes from clients).
 */
public final class Json {
    private Json() {}

    public static final int MAX_DEPTH = 64;

    /**
     * Parses one JSON value that makes up the whole of {@code text}.
     *
     * @param source what the text is, for error messages (a file name, "the request body")
     * @throws ConfigException naming the line and column of the first error
     */
    public static Object parse(String text, String source) {
        Parser p = new Parser(text, source);
        p.skipWhitespace();
        Object value = p.value(0);
        p.skipWhitespace();
        if (p.pos < text.length()) {
            throw p.error("unexpected " + p.describeNext() + " after the JSON value");
        }
        return value;
    }

    /** {@code value} (built from the types {@link #parse} returns, any {@link Number}) as compact JSON. */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString();
    }

    private static void write(Object value, StringBuilder out) {
        switch (value) {
            case null -> out.append("null");
            case String s -> out.append(quote(s));
            case Boolean b -> out.append(b);
            case Double d when d.isNaN() || d.isInfinite() -> throw new IllegalArgumentException("JSON has no " + d);
            case Float f when f.isNaN() || f.isInfinite() -> throw new IllegalArgumentException("JSON has no " + f);
            case Number n -> out.append(n);
            case Map<?, ?> map -> {
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    if (!first) out.append(',');
                    first = false;
                    out.append(quote((String) e.getKey())).append(':');
                    write(e.getValue(), out);
                }
                out.append('}');
            }
            case List<?> list -> {
                out.append('[');
                for (int i = 0; i < list.size(); i++) {
                    if (i > 0) out.append(',');
                    write(list.get(i), out);
                }
                out.append(']');
            }
            default -> throw new IllegalArgumentException("not a JSON value: " + value.getClass().getName());
        }
    }

    /** {@code s} as a JSON string literal. */
    public static String quote(String s) {
        StringBuilder q = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> q.append("\\\"");
                case '\\' -> q.append("\\\\");
                case '\n' -> q.append("\\n");
                case '\r' -> q.append("\\r");
                case '\t' -> q.append("\\t");
                default -> {
                    if (c < 0x20) q.append(String.format("\\u%04x", (int) c));
                    else q.append(c);
                }
            }
        }
        return q.append('"').toString();
    }

    /** How an error message shows a value: its JSON type, with short scalars quoted. */
    public static String describe(Object value) {
        return switch (value) {
            case null -> "null";
            case String s -> s.length() <= 40 ? "the string " + quote(s) : "a string";
            case Boolean b -> b.toString();
            case Number n -> "the number " + n;
            case Map<?, ?> m -> "an object";
            case List<?> l -> "an array";
            default -> value.getClass().getSimpleName();
        };
    }

    private static final class Parser {
        private final String text;
        private final String source;
        private int pos;

        Parser(String text, String source) {
            this.text = text;
            this.source = source;
        }

        Object value(int depth) {
            if (pos >= text.length()) {
                throw error("expected a JSON value, found the end of the text");
            }
            char c = text.charAt(pos);
            return switch (c) {
                case '{' -> object(depth + 1);
                case '[' -> array(depth + 1);
                case '"' -> string();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> {
                    if (c == '-' || (c >= '0' && c <= '9')) yield number();
                    throw error("expected a JSON value, found " + describeNext());
                }
            };
        }

        private Map<String, Object> object(int depth) {
            checkDepth(depth);
            pos++; // {
            Map<String, Object> members = new LinkedHashMap<>();
            skipWhitespace();
            if (peek('}')) {
                pos++;
                return members;
            }
            while (true) {
                skipWhitespace();
                if (!peek('"')) {
                    throw error("expected a member name in double quotes, found " + describeNext());
                }
                int keyStart = pos;
                String key = string();
                if (members.containsKey(key)) {
                    pos = keyStart;
                    throw error("the key " + quote(key) + " appears twice in one object");
                }
                skipWhitespace();
                expect(':', "after the member name " + quote(key));
                skipWhitespace();
                members.put(key, value(depth));
                skipWhitespace();
                if (peek(',')) {
                    pos++;
                } else if (peek('}')) {
                    pos++;
                    return members;
                } else {
                    throw error("expected ',' or '}' after the value of " + quote(key) + ", found " + describeNext());
                }
            }
        }

        private List<Object> array(int depth) {
            checkDepth(depth);
            pos++; // [
            List<Object> items = new ArrayList<>();
            skipWhitespace();
            if (peek(']')) {
                pos++;
                return items;
            }
            while (true) {
                skipWhitespace();
                items.add(value(depth));
                skipWhitespace();
                if (peek(',')) {
                    pos++;
                } else if (peek(']')) {
                    pos++;
                    return items;
                } else {
                    throw error("expected ',' or ']' after an array element, found " + describeNext());
                }
            }
        }

        private String string() {
            int start = pos;
            pos++; // opening quote
            StringBuilder s = new StringBuilder();
            while (true) {
                if (pos >= text.length()) {
                    pos = start;
                    throw error("this string has no closing quote");
                }
                char c = text.charAt(pos++);
                if (c == '"') {
                    return s.toString();
                }
                if (c < 0x20) {
                    pos--;
                    throw error(String.format("a control character (U+%04X) must be escaped in a string", (int) c));
                }
                if (c != '\\') {
                    s.append(c);
                    continue;
                }
                if (pos >= text.length()) {
                    continue; // reported as the missing closing quote
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case '"', '\\', '/' -> s.append(e);
                    case 'b' -> s.append('\b');
                    case 'f' -> s.append('\f');
                    case 'n' -> s.append('\n');
                    case 'r' -> s.append('\r');
                    case 't' -> s.append('\t');
                    case 'u' -> {
                        if (pos + 4 > text.length() || !text.substring(pos, pos + 4).matches("[0-9A-Fa-f]{4}")) {
                            pos -= 2;
                            throw error("\\u must be followed by four hex digits");
                        }
                        s.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        pos += 4;
                    }
                    default -> {
                        pos -= 2;
                        throw error("\\" + e + " is not a JSON escape");
                    }
                }
            }
        }

        private Object number() {
            int start = pos;
            if (peek('-')) pos++;
            if (peek('0')) {
                pos++;
            } else if (!digits()) {
                pos = start;
                throw error("a number needs digits after '-'");
            }
            boolean integral = true;
            if (peek('.')) {
                pos++;
                integral = false;
                if (!digits()) throw error("a number needs digits after '.'");
            }
            if (peek('e') || peek('E')) {
                pos++;
                integral = false;
                if (peek('+') || peek('-')) pos++;
                if (!digits()) throw error("a number needs digits in its exponent");
            }
            String token = text.substring(start, pos);
            if (integral) {
                BigInteger big = new BigInteger(token);
                return big.bitLength() < 64 ? (Object) big.longValue() : big;
            }
            double value = Double.parseDouble(token);
            if (Double.isInfinite(value)) {
                // Beyond a double's range: the value would read as infinity, which JSON cannot write back.
                pos = start;
                throw error("the number " + token + " is too large");
            }
            return value;
        }

        private boolean digits() {
            int start = pos;
            while (pos < text.length() && text.charAt(pos) >= '0' && text.charAt(pos) <= '9') pos++;
            return pos > start;
        }

        private Object literal(String word, Object value) {
            if (!text.startsWith(word, pos)) {
                throw error("expected a JSON value, found " + describeNext());
            }
            pos += word.length();
            return value;
        }

        private void checkDepth(int depth) {
            if (depth > MAX_DEPTH) {
                throw error("objects and arrays are nested more than " + MAX_DEPTH + " deep");
            }
        }

        private void expect(char c, String where) {
            if (!peek(c)) {
                throw error("expected '" + c + "' " + where + ", found " + describeNext());
            }
            pos++;
        }

        private boolean peek(char c) {
            return pos < text.length() && text.charAt(pos) == c;
        }

        void skipWhitespace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
                pos++;
            }
        }

        String describeNext() {
            if (pos >= text.length()) return "the end of the text";
            int cp = text.codePointAt(pos);
            return cp >= 0x20 && cp < 0x7f ? "'" + (char) cp + "'" : String.format("U+%04X", cp);
        }

        ConfigException error(String problem) {
            int line = 1;
            int column = 1;
            for (int i = 0; i < pos && i < text.length(); i++) {
                if (text.charAt(i) == '\n') {
                    line++;
                    column = 1;
                } else {
                    column++;
                }
            }
            return new ConfigException(source, "malformed JSON at line " + line + ", column " + column + ": " + problem);
        }
    }
}
