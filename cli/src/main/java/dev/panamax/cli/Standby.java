package dev.panamax.cli;

import dev.panamax.demo.KvmAcceleration;
import dev.panamax.devices.BootTimer;
import dev.panamax.rig.WarmRig;
import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;

/**
 * A Panamax JVM started in the warm rig ahead of the next {@code run} (see {@code RigDaemon}): it loads and
 * links what a run needs, says {@link WarmRig#STANDBY_READY}, then reads the run's arguments as its first line
 * of input and runs them as {@link Panamax#main} would, its start counted from then ({@link BootTimer#processStart}).
 * The JVM's start and warm-up are paid before the user asks, not after. At the end of its input before a line,
 * it exits with 0.
 */
public final class Standby {
    private Standby() {}

    public static void main(String[] unused) throws IOException {
        warmUp();
        System.out.print(WarmRig.STANDBY_READY);
        System.out.flush();
        // Unbuffered: what follows the line is the run's keyboard, read by the console from fd 0.
        String line = readLine(new FileInputStream(FileDescriptor.in));
        if (line == null) System.exit(0);
        System.setProperty(BootTimer.PROCESS_START_PROPERTY, String.valueOf(System.currentTimeMillis()));
        Panamax.main(WarmRig.decodeArgs(line).toArray(String[]::new));
    }

    /**
     * Loads and links the command line's classes and a run's: its usage, printed to nowhere; and KVM's
     * calls, by the acceleration check (a VM with a vCPU running a short loop, then closed).
     */
    private static void warmUp() {
        PrintStream out = System.out;
        PrintStream err = System.err;
        try (PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream())) {
            System.setOut(nowhere);
            System.setErr(nowhere);
            Panamax.execute("run", "--help");
            KvmAcceleration.detect();
        } finally {
            System.setOut(out);
            System.setErr(err);
        }
    }

    /** One line, byte by byte (nothing after it is taken); null at the end of the input before a newline. */
    static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        for (int b; (b = in.read()) != '\n'; ) {
            if (b < 0) return null;
            line.write(b);
        }
        return line.toString(java.nio.charset.StandardCharsets.US_ASCII);
    }
}
