package dev.panamax.rig;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;

/** What the {@link RigDaemon} needs of the rig it keeps warm: a {@link Rig}, or a stand-in in its tests. */
interface DaemonRig extends AutoCloseable {
    /** Runs a script of {@link Rig#script}'s making; one at a time. */
    RunResult runScript(String script, String label, Duration timeout, OutputStream echo, InputStream input);

    /** Kills the command running now, if any; its {@link #runScript} returns. */
    void killRun();

    Path scratch();

    boolean isStopped();

    /** Why a rig {@link #isStopped} that nobody closed ended, for the daemon's log. */
    default String whyStopped() {
        return "it stopped";
    }

    Rig.Options options();

    @Override
    void close();
}
