package dev.panamax.vmm;

/**
 * A VM resource or request that cannot be accepted: the message names the value the way the user
 * wrote it (a JSON path such as {@code machine-config.vcpu_count}, an option such as {@code --cpus},
 * a Java parameter) and says what is wrong and what to do.
 */
public final class ConfigException extends IllegalArgumentException {
    /**
     * @param name what the user called the value
     * @param problem a sentence about it
     */
    public ConfigException(String name, String problem) {
        super(name.isEmpty() ? problem : name + ": " + problem);
    }
}
