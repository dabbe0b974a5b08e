package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.sys.Credentials;
import dev.panamax.sys.NativeCallException;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;

/**
 * {@code run --uid UID --gid GID}: once the VM's host resources are open ({@code /dev/kvm}, images
 * and their locks, taps, passt, the console, the API socket, the log), the process becomes that
 * user and group for good, with no supplementary groups, no capabilities and {@code no_new_privs},
 * before the guest runs, as Firecracker's jailer does before it execs Firecracker. What the VM does
 * later only uses descriptors it holds, or files the user may reach (snapshots it writes, a log
 * file given later).
 *
 * <p>A drop that fails, or that this process may not make, ends {@code run} before the guest runs,
 * with {@link #EXIT_NO_PERMISSION}: a VM never runs with more privileges than it was told.
 */
final class PrivilegeDrop {
    /** sysexits' EX_NOPERM: the status of a {@code run} that could not give up its privileges. */
    static final int EXIT_NO_PERMISSION = 77;

    /** Why {@code run} refuses to go on: it could not become the user it was told to; status {@link #EXIT_NO_PERMISSION}. */
    static final class Refused extends UserError {
        Refused(String message) {
            super(message);
        }
    }

    private final long uid;
    private final long gid;

    private PrivilegeDrop(long uid, long gid) {
        this.uid = uid;
        this.gid = gid;
    }

    long uid() {
        return uid;
    }

    long gid() {
        return gid;
    }

    /** The drop {@code --uid} and {@code --gid} ask for (both or neither), or null for neither. */
    static PrivilegeDrop parse(String uidText, String gidText) {
        if (uidText == null && gidText == null) {
            return null;
        }
        if (uidText == null || gidText == null) {
            throw new UserError((uidText == null ? "--gid" : "--uid") + " needs " + (uidText == null ? "--uid" : "--gid")
                    + ": give the user and the group the VM runs as once its files are open, both as numbers");
        }
        long uid = id(uidText, "--uid", "id -u USER");
        long gid = id(gidText, "--gid", "id -g USER");
        if (uid == 0) {
            throw new UserError("--uid 0 is root, which gives nothing up; give the id of an unprivileged user, e.g. 65534 (nobody)");
        }
        return new PrivilegeDrop(uid, gid);
    }

    private static long id(String text, String option, String lookUp) {
        if (!text.matches("[0-9]{1,10}") || Long.parseLong(text) > Credentials.MAX_ID) {
            throw new UserError(option + " " + text + ": not a number from 0 to " + Credentials.MAX_ID + "; a name is looked up with "
                    + lookUp);
        }
        return Long.parseLong(text);
    }

    /** Whether this process is root, which may become any user; otherwise it may only stay itself (and gain no_new_privs). */
    private static boolean isRoot() {
        return Credentials.effectiveUserId() == 0;
    }

    /**
     * Before anything is opened: refuses a drop this process cannot make (a process that is not
     * root can become no other user or group than its own), then forbids new privileges on every
     * thread. Now, not at the switch: the kernel copies {@code no_new_privs} to the other threads
     * only through a filter with TSYNC, which fails once a thread has a seccomp filter of its own,
     * as vCPU and device threads do (Panamax's per-thread filters) once a VM is built or restored;
     * theirs then stack on this one. {@code no_new_privs} takes nothing from root meanwhile: it only
     * stops programs run later from gaining privileges.
     */
    void prepare() {
        if (!isRoot()) {
            checkOwnIds();
        }
        try {
            Credentials.forbidNewPrivileges();
        } catch (NativeCallException e) {
            throw new Refused("--uid " + uid + " --gid " + gid + ": cannot forbid new privileges: " + e.getMessage() + "; the VM does not run");
        }
    }

    private void checkOwnIds() {
        long ruid = Credentials.realUserId();
        long euid = Credentials.effectiveUserId();
        long rgid = Credentials.realGroupId();
        long egid = Credentials.effectiveGroupId();
        if (uid != ruid || uid != euid || gid != rgid || gid != egid) {
            throw new Refused("--uid " + uid + " --gid " + gid + ": only root may become another user or group, and this process runs as"
                    + " uid " + euid + ", gid " + egid + "; start run as root (it gives root up once the VM's files are open), or leave"
                    + " --uid and --gid out");
        }
    }

    /**
     * Becomes the user and group, on every thread ({@link #prepare} forbade new privileges); then
     * checks each thread's credentials and that Panamax's class path stays readable.
     *
     * @throws Refused when a step fails or a thread is left with other credentials: the caller must not run the guest
     */
    void apply() {
        boolean root = isRoot();
        // Classes load lazily: open every jar of the class path now, while they are readable (the
        // JVM keeps them open); directories on it are checked below, as the user.
        openClassPathJars();
        try {
            if (root) {
                Credentials.switchTo(uid, gid);
            }
        } catch (NativeCallException e) {
            throw new Refused("--uid " + uid + " --gid " + gid + ": cannot give up privileges: " + e.getMessage() + "; the VM does not run");
        }
        List<String> wrong = misfits(Credentials.threads(), uid, gid, root);
        if (!wrong.isEmpty()) {
            String shown = String.join("; ", wrong.subList(0, Math.min(3, wrong.size()))) + (wrong.size() > 3 ? "; and "
                    + (wrong.size() - 3) + " more threads" : "");
            throw new Refused("--uid " + uid + " --gid " + gid + ": after the switch " + shown + "; the VM does not run");
        }
        for (String entry : System.getProperty("java.class.path", "").split(File.pathSeparator)) {
            Path p = Path.of(entry);
            if (!entry.isEmpty() && Files.isDirectory(p) && !(Files.isReadable(p) && Files.isExecutable(p))) {
                throw new Refused("--uid " + uid + " --gid " + gid + ": the user cannot read " + p + " on Panamax's class path, from"
                        + " which classes load as the VM runs; install Panamax where that user may read it");
            }
        }
        System.err.println("panamax: running as uid " + uid + ", gid " + gid + " from here on, with no supplementary groups,"
                + " no capabilities and no_new_privs");
    }

    /**
     * What is wrong with each thread that does not show the drop: all four user ids {@code uid}
     * and group ids {@code gid}, {@code no_new_privs}, and where root switched, no supplementary
     * group and no capability.
     */
    static List<String> misfits(List<Credentials.ThreadCredentials> threads, long uid, long gid, boolean switched) {
        List<String> wrong = new ArrayList<>();
        if (threads.isEmpty()) {
            wrong.add("/proc/self/task lists no thread");
        }
        for (Credentials.ThreadCredentials t : threads) {
            boolean fits = t.isOnly(uid, gid) && t.noNewPrivs()
                    && (!switched || (t.groups().isEmpty() && t.capabilitiesEffective() == 0 && t.capabilitiesPermitted() == 0));
            if (!fits) {
                wrong.add(t.toString());
            }
        }
        return wrong;
    }

    /** Makes the application class loader open every jar on the class path (it opens one only for its first lookup). */
    static void openClassPathJars() {
        try {
            Enumeration<java.net.URL> manifests = ClassLoader.getSystemClassLoader().getResources("META-INF/MANIFEST.MF");
            while (manifests.hasMoreElements()) {
                manifests.nextElement();
            }
        } catch (IOException e) {
            throw new Refused("cannot read Panamax's class path before giving up privileges: " + e.getMessage());
        }
    }

    /**
     * Whether the user and group may create files in {@code dir}, by its mode bits alone (ACLs are
     * not read): for what is made there after the drop.
     */
    boolean mayWriteIn(Path dir) throws IOException {
        int mode = (Integer) Files.getAttribute(dir, "unix:mode");
        long owner = Integer.toUnsignedLong((Integer) Files.getAttribute(dir, "unix:uid"));
        long group = Integer.toUnsignedLong((Integer) Files.getAttribute(dir, "unix:gid"));
        int bits = owner == uid ? mode >> 6 : group == gid ? mode >> 3 : mode;
        return (bits & 3) == 3; // write and search
    }
}
