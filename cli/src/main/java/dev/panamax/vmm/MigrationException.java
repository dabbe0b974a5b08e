package dev.panamax.vmm;

import java.io.IOException;

/** A live migration that failed, with a sentence saying in which step and why, and where the guest runs now. */
public final class MigrationException extends IOException {
    public MigrationException(String message) {
        super(message);
    }

    public MigrationException(String message, Throwable cause) {
        super(message, cause);
    }
}
