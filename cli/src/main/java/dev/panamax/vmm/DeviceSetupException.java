package dev.panamax.vmm;

/**
 * A device of the VM could not be set up: a drive's image would not open, a network interface's
 * tap or passt would not. The message names the device as the user did and says what to do.
 */
public final class DeviceSetupException extends RuntimeException {
    public DeviceSetupException(String message, Throwable cause) {
        super(message, cause);
    }
}
