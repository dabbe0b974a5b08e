package dev.panamax.cli.image;

/** Just enough JSON output for the image commands (one flat object at a time; nesting via {@link #raw}). */
final class Json {
    private final StringBuilder s = new StringBuilder("{");

    Json field(String name, String value) {
        return raw(name, quote(value));
    }

    Json field(String name, long value) {
        return raw(name, Long.toString(value));
    }

    Json field(String name, boolean value) {
        return raw(name, Boolean.toString(value));
    }

    Json raw(String name, String json) {
        if (s.length() > 1) s.append(", ");
        s.append(quote(name)).append(": ").append(json);
        return this;
    }

    static String quote(String v) {
        return dev.panamax.control.Json.quote(v);
    }

    @Override
    public String toString() {
        return s + "}";
    }
}
