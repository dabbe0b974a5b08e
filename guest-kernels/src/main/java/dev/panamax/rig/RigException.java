package dev.panamax.rig;

/** The rig failed as a machine (did not boot, QEMU died, the agent stopped answering); the message quotes its console. */
public class RigException extends RuntimeException {
    public RigException(String message) {
        super(message);
    }

    public RigException(String message, Throwable cause) {
        super(message, cause);
    }
}
