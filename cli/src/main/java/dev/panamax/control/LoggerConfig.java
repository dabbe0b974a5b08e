package dev.panamax.control;

import dev.panamax.vmm.ConfigException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Firecracker's {@code Logger} ({@code PUT /logger}, the config file's {@code logger}, and the
 * {@code firecracker} command's {@code --log-path}, {@code --level}, {@code --show-level},
 * {@code --show-log-origin} and {@code --module}): where the VMM's log lines go and which.
 *
 * @param logPath a regular file (appended to, created if missing) or a named pipe; null for standard error
 * @param level the least severe level written
 * @param showLevel whether a line names its level
 * @param showLogOrigin whether a line names the class and method that logged it
 * @param module only lines from loggers whose name starts with this (Panamax's are Java class
 *     names, such as {@code dev.panamax.control}); null for all
 */
public record LoggerConfig(Path logPath, Level level, boolean showLevel, boolean showLogOrigin, String module) {

    /** Firecracker's default: the level {@code Info}, neither level nor origin shown, standard error. */
    public static final LoggerConfig DEFAULT = new LoggerConfig(null, Level.INFO, false, false, null);

    private static final Set<String> KEYS = Set.of("log_path", "level", "show_level", "show_log_origin", "module");

    public LoggerConfig {
        Objects.requireNonNull(level, "level");
    }

    /** Firecracker's levels, most severe first; their names are read case-insensitively. */
    public enum Level {
        OFF("Off"), ERROR("Error"), WARNING("Warning"), INFO("Info"), DEBUG("Debug"), TRACE("Trace");

        private final String firecrackerName;

        Level(String firecrackerName) {
            this.firecrackerName = firecrackerName;
        }

        /** The name as Firecracker writes it. */
        public String firecrackerName() {
            return firecrackerName;
        }

        /**
         * The level named {@code name} (any case; {@code Warn} is {@code Warning}, as in Firecracker).
         *
         * @throws ConfigException naming {@code where} and the levels
         */
        public static Level parse(String name, String where) {
            String wanted = name.toLowerCase(Locale.ROOT);
            if (wanted.equals("warn")) {
                return WARNING;
            }
            for (Level l : values()) {
                if (l.firecrackerName.toLowerCase(Locale.ROOT).equals(wanted)) {
                    return l;
                }
            }
            throw new ConfigException(where, Json.quote(name) + " is not a log level; the levels are "
                    + String.join(", ", Arrays.stream(values()).map(Level::firecrackerName).toList()) + " (in any case)");
        }
    }

    /** Parses Firecracker's {@code Logger} object found at {@code where}. */
    public static LoggerConfig parse(Object json, String where) {
        JsonObject o = JsonObject.of(json, where).allowOnly(KEYS);
        Path path = null;
        String pathText = o.optionalString("log_path");
        if (pathText != null) {
            if (pathText.isEmpty() || pathText.indexOf('\0') >= 0) {
                throw new ConfigException(o.path("log_path"), Json.quote(pathText) + " is not a file path");
            }
            try {
                path = Path.of(pathText);
            } catch (InvalidPathException e) {
                throw new ConfigException(o.path("log_path"), Json.quote(pathText) + " is not a file path: " + e.getReason());
            }
        }
        Level level = o.has("level") ? Level.parse(o.string("level"), o.path("level")) : DEFAULT.level;
        String module = o.optionalString("module");
        if (module != null && module.isEmpty()) {
            throw new ConfigException(o.path("module"), "must not be empty; leave it out to log from every module");
        }
        return new LoggerConfig(path, level, o.optionalBool("show_level", false), o.optionalBool("show_log_origin", false), module);
    }

    /** As Firecracker's {@code Logger} object. */
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        if (logPath != null) {
            m.put("log_path", logPath.toString());
        }
        m.put("level", level.firecrackerName());
        m.put("show_level", showLevel);
        m.put("show_log_origin", showLogOrigin);
        if (module != null) {
            m.put("module", module);
        }
        return m;
    }
}
