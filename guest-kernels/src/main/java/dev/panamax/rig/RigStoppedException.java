package dev.panamax.rig;

/**
 * The rig's machine stopped answering while it ran a command (QEMU's software CPU hung or died):
 * a failure of the test bed, not of the command, which never finished.
 */
public final class RigStoppedException extends RigException {
    public RigStoppedException(String message, Throwable cause) {
        super(message, cause);
    }
}
