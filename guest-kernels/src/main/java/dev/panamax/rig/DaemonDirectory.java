package dev.panamax.rig;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.EnumSet;
import java.util.Map;

/**
 * Where a user's warm rig daemon lives: {@code $XDG_RUNTIME_DIR/panamax} when that variable names a
 * directory, else {@code /tmp/panamax-<uid>}. The directory must be this user's own, mode 0700, and
 * no symbolic link: anyone who can reach the daemon's socket can run commands with this user's rights,
 * so a directory planted by someone else is refused, never used.
 */
record DaemonDirectory(Path path) {
    static final EnumSet<PosixFilePermission> OWNER_ONLY = EnumSet.of(
            PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_EXECUTE);

    /** The daemon's socket. */
    Path socket() {
        return path.resolve("rig.sock");
    }

    /** The file the living daemon holds a lock on: the lock, never a pid, says whether a daemon lives. */
    Path lock() {
        return path.resolve("daemon.lock");
    }

    /** The daemon's stdout and stderr. */
    Path log() {
        return path.resolve("daemon.log");
    }

    /** This user's directory, created if missing and checked. */
    static DaemonDirectory forThisUser() throws IOException {
        return of(System.getenv(), uid());
    }

    static DaemonDirectory of(Map<String, String> env, int uid) throws IOException {
        String runtime = env.get("XDG_RUNTIME_DIR");
        Path dir = runtime != null && !runtime.isEmpty() && Path.of(runtime).isAbsolute() && Files.isDirectory(Path.of(runtime))
                ? Path.of(runtime, "panamax") : Path.of("/tmp", "panamax-" + uid);
        try {
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
        } catch (FileAlreadyExistsException e) {
            // checked below like a new one
        }
        check(dir, uid);
        return new DaemonDirectory(dir);
    }

    /** Refuses {@code dir} unless it is a directory (not a link to one) that {@code uid} owns with mode 0700. */
    static void check(Path dir, int uid) throws IOException {
        if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(dir + " is not a directory (a symbolic link, or a file), so the warm rig does not use it");
        }
        int owner = (Integer) Files.getAttribute(dir, "unix:uid", LinkOption.NOFOLLOW_LINKS);
        if (owner != uid) {
            throw new IOException(dir + " belongs to uid " + owner + ", not to this user (" + uid + "), so the warm rig does not use it");
        }
        var mode = Files.getPosixFilePermissions(dir, LinkOption.NOFOLLOW_LINKS);
        if (!mode.equals(OWNER_ONLY)) {
            throw new IOException(dir + " has mode " + PosixFilePermissions.toString(mode) + ", not rwx------, so the warm rig does not use it");
        }
    }

    /** This process's user id (the owner of {@code /proc/self}). */
    static int uid() throws IOException {
        return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    }
}
