package dev.panamax.demo;

import dev.panamax.kvm.KvmUnavailableException;
import dev.panamax.vm.VmExit;
import java.time.Duration;

/**
 * Whether this host's KVM runs guest code at hardware speed. Some hosts' /dev/kvm only emulates
 * guest instructions (about 1.5 us each), which runs small integer programs but cannot boot Linux.
 * Decided by timing {@link DemoProgram#SPIN}, a loop with no exits: hardware (or nested hardware
 * virtualization) does an iteration in nanoseconds. Measured once per process.
 *
 * @param kind the verdict
 * @param nanosPerIteration the measured cost of one loop iteration, or NaN when KVM is unavailable
 * @param detail a sentence explaining the verdict
 */
public record KvmAcceleration(Kind kind, double nanosPerIteration, String detail) {

    public enum Kind { HARDWARE, EMULATION_ONLY, UNAVAILABLE }

    private static final int ITERATIONS = 50_000;
    private static final int SHORT_RUN = 1_000;
    /** Hardware: under 1 ns; nested under QEMU's software CPU: about 7 ns; emulation: about 1500 ns. */
    private static final double HARDWARE_LIMIT_NANOS = 200;
    private static final System.Logger LOG = System.getLogger(KvmAcceleration.class.getName());
    private static volatile KvmAcceleration verdict;

    /** The verdict for this host, measured on first use. */
    public static KvmAcceleration detect() {
        KvmAcceleration v = verdict;
        if (v == null) {
            synchronized (KvmAcceleration.class) {
                v = verdict;
                if (v == null) {
                    v = measure();
                    LOG.log(System.Logger.Level.INFO, "KVM acceleration: " + v.detail());
                    verdict = v;
                }
            }
        }
        return v;
    }

    public boolean hardware() {
        return kind == Kind.HARDWARE;
    }

    private static KvmAcceleration measure() {
        try {
            time(SHORT_RUN); // warm up: class loading, thread creation, the first KVM_RUN
            // The difference of a long and a short run cancels VM creation and thread start, which
            // are slow where this JVM itself runs under emulation (inside the nested rig).
            long shortRun = Math.min(time(SHORT_RUN), time(SHORT_RUN));
            long longRun = Math.min(time(ITERATIONS), time(ITERATIONS));
            double perIteration = Math.max(0, (double) (longRun - shortRun) / (ITERATIONS - SHORT_RUN));
            if (perIteration < HARDWARE_LIMIT_NANOS) {
                return new KvmAcceleration(Kind.HARDWARE, perIteration,
                        String.format("hardware-accelerated (%.1f ns per loop iteration)", perIteration));
            }
            return new KvmAcceleration(Kind.EMULATION_ONLY, perIteration, String.format(
                    "emulation only (%.0f ns per loop iteration): /dev/kvm runs small programs but cannot boot Linux here", perIteration));
        } catch (KvmUnavailableException e) {
            return new KvmAcceleration(Kind.UNAVAILABLE, Double.NaN, e.getMessage());
        }
    }

    private static long time(int iterations) {
        try (DemoGuest guest = DemoGuest.create(null, DemoProgram.SPIN, 1, iterations, null)) {
            long start = System.nanoTime();
            VmExit exit = guest.run(Duration.ofSeconds(30)).orElseThrow(
                    () -> new IllegalStateException("the KVM calibration loop did not finish in 30 s"));
            long elapsed = System.nanoTime() - start;
            if (exit.reason() != VmExit.Reason.HALTED) {
                throw new IllegalStateException("the KVM calibration loop failed: " + exit);
            }
            return elapsed;
        }
    }
}
