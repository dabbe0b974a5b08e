package dev.panamax.control;

import dev.panamax.vmm.ConfigException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * A parsed JSON object read member by member, every error naming the member's JSON path (for
 * example {@code machine-config.vcpu_count: expected an integer, not the string "two"}).
 */
final class JsonObject {
    private final Map<?, ?> members;
    private final String path;

    private JsonObject(Map<?, ?> members, String path) {
        this.members = members;
        this.path = path;
    }

    /** {@code value} as an object; {@code path} is where it is ("" for the whole document). */
    static JsonObject of(Object value, String path) {
        if (!(value instanceof Map<?, ?> map)) {
            throw new ConfigException(path, "expected a JSON object, not " + Json.describe(value));
        }
        return new JsonObject(map, path);
    }

    /** The JSON path of the member {@code key}. */
    String path(String key) {
        return path.isEmpty() ? key : path + "." + key;
    }

    /** Refuses members other than {@code known}, naming the first stranger and the known keys. */
    JsonObject allowOnly(Set<String> known) {
        for (Object key : members.keySet()) {
            if (!known.contains(key)) {
                throw new ConfigException(path((String) key), "unknown key; the keys here are " + String.join(", ", known.stream().sorted().toList()));
            }
        }
        return this;
    }

    /** The members' names, in the document's order. */
    List<String> keys() {
        return members.keySet().stream().map(String.class::cast).toList();
    }

    /** Whether the member is there with a non-null value. */
    boolean has(String key) {
        return members.get(key) != null;
    }

    Object get(String key) {
        return members.get(key);
    }

    String string(String key) {
        return switch (required(key)) {
            case String s -> s;
            case Object other -> throw typeError(key, "a string", other);
        };
    }

    /** The string, or null when the member is absent or null. */
    String optionalString(String key) {
        return has(key) ? string(key) : null;
    }

    long integer(String key) {
        return switch (required(key)) {
            case Long l -> l;
            case java.math.BigInteger big -> throw new ConfigException(path(key), big + " is out of range");
            case Object other -> throw typeError(key, "an integer", other);
        };
    }

    /** The integer, or {@code absent} when the member is absent; either way it must lie in {@code [min, max]}. */
    long optionalLong(String key, long absent, long min, long max) {
        long value = has(key) ? integer(key) : absent;
        if (value < min || value > max) {
            throw new ConfigException(path(key), value + " is out of range: give " + min + " to " + max);
        }
        return value;
    }

    boolean bool(String key) {
        return switch (required(key)) {
            case Boolean b -> b;
            case Object other -> throw typeError(key, "true or false", other);
        };
    }

    boolean optionalBool(String key, boolean absent) {
        return has(key) ? bool(key) : absent;
    }

    /** The members of the array {@code key}, or none when it is absent or null. */
    List<Object> optionalArray(String key) {
        if (!has(key)) {
            return List.of();
        }
        if (!(members.get(key) instanceof List<?> list)) {
            throw typeError(key, "an array", members.get(key));
        }
        return new ArrayList<>(list);
    }

    /**
     * For a key that Firecracker has and Panamax does not implement: accepted only absent, null or
     * equal to {@code inert} (the value that asks for nothing), so that clients sending Firecracker's
     * defaults work unchanged.
     */
    void onlyInert(String key, Object inert, String why) {
        Object value = members.get(key);
        if (value != null && !Objects.equals(value, inert)) {
            throw new ConfigException(path(key), why + (inert == null ? "; leave it out" : "; leave it out or " + Json.write(inert)));
        }
    }

    private Object required(String key) {
        Object value = members.get(key);
        if (value == null) {
            throw new ConfigException(path(key), members.containsKey(key) ? "must not be null" : "is required");
        }
        return value;
    }

    private ConfigException typeError(String key, String expected, Object actual) {
        return new ConfigException(path(key), "expected " + expected + ", not " + Json.describe(actual));
    }
}
