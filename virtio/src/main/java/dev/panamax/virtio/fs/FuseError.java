package dev.panamax.virtio.fs;

/**
 * A request the server answers with an errno: {@code malformed} when the request itself broke the
 * protocol (a short header, a length past the buffer, a name without its NUL), else a refusal the
 * protocol allows (a read-only share, an unknown node). No stack trace: these are answers, not bugs.
 */
final class FuseError extends Exception {
    private static final long serialVersionUID = 1L;
    private final int errno;
    private final boolean malformed;

    FuseError(int errno, boolean malformed, String why) {
        super(why, null, false, false);
        this.errno = errno;
        this.malformed = malformed;
    }

    /** A request that breaks the protocol. */
    static FuseError malformed(int errno, String why) {
        return new FuseError(errno, true, why);
    }

    /** A well-formed request refused with {@code errno}. */
    static FuseError refused(int errno, String why) {
        return new FuseError(errno, false, why);
    }

    int errno() {
        return errno;
    }

    boolean isMalformed() {
        return malformed;
    }
}
