package dev.panamax.virtio.bench;

import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioInterrupts;
import dev.panamax.vm.GuestMemory;
import java.util.concurrent.locks.LockSupport;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * What the benchmarks do alike: a device connected so that its interrupts wake the driver, then its features
 * taken; and a run under both compiler settings.
 */
final class BenchDevices {
    private BenchDevices() {}

    /** Connects {@code device} to {@code memory}, every interrupt unparking {@code driver}, and accepts all its features. */
    static void connectWaking(VirtioDevice device, GuestMemory memory, Thread driver) {
        device.connect(memory, new VirtioInterrupts() {
            @Override
            public void queue(int queueIndex) {
                LockSupport.unpark(driver);
            }

            @Override
            public void config() {
                LockSupport.unpark(driver);
            }
        });
        device.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        device.setDriverFeatures(device.deviceFeatures());
        device.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
    }

    /**
     * Runs {@code benchmark}'s benchmarks with C1 only, as the rig's JVMs run, then tiered, as on a host with
     * hardware KVM. {@code BENCH_JIT} in the environment runs one JVM setting instead ({@code BENCH_JIT=-Xint}:
     * what a cold JVM pays before its compiler catches up, for seconds under the rig's software CPU), {@code
     * BENCH_ONLY} only the benchmarks its pattern matches ({@code BENCH_ONLY='(virtioRead1m|readvRead1m)'}).
     */
    static void runUnderEachCompiler(Class<?> benchmark) throws RunnerException {
        String one = System.getenv("BENCH_JIT");
        String[] jits = one != null ? new String[] {one} : new String[] {"-XX:TieredStopAtLevel=1", "-XX:+TieredCompilation"};
        String only = System.getenv().getOrDefault("BENCH_ONLY", "");
        for (String jit : jits) {
            new Runner(new OptionsBuilder().include(benchmark.getName() + "." + only).jvmArgsAppend(jit).build()).run();
        }
    }
}
