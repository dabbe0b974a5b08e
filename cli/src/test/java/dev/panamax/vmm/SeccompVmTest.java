package dev.panamax.vmm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.boot.SyntheticKernels;
import dev.panamax.rig.UsesKvm;
import dev.panamax.sys.Seccomp;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A VM with its seccomp filters on (the default): a device thread's forbidden call ends the VM, not the VMM. */
@UsesKvm
class SeccompVmTest {
    private static final long COUNTER = 0x2000000;

    @TempDir Path dir;
    private final ByteArrayOutputStream console = new ByteArrayOutputStream();
    private VmBuilder.Machine machine;

    @AfterEach
    void tearDown() {
        VirtioDevice.setIoThreadTestHook(null);
        if (machine != null) {
            machine.vm().close();
        }
    }

    private VmBuilder.Machine running(boolean seccomp) throws IOException {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImageRunning(SyntheticKernels.pageSweep(0x3000000)));
        MachineConfig config = new MachineConfig(kernel, null, "quiet", 1, 64, LinuxBoot.Protocol.AUTO, List.of(), List.of(), null,
                List.of(), CpuPinning.NONE, null, new EntropyConfig(RateLimit.NONE), null).withSeccomp(seccomp);
        machine = VmBuilder.build(config, console);
        machine.vm().start();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (machine.vm().memory().readLong(COUNTER) <= 10) { // the vCPU runs the guest under its filter
            assertThat(System.nanoTime()).as("the guest's counter").isLessThan(deadline);
            Thread.onSpinWait();
        }
        return machine;
    }

    /** Activates the entropy device as its driver would, which starts its queue's I/O thread. */
    private static void activateEntropyDevice(VmBuilder.Machine m) {
        VirtioDevice rng = m.devices().virtioDevices().stream().filter(d -> d.deviceType() == 4).findFirst().orElseThrow();
        rng.setDriverFeatureWord(1, 1); // VIRTIO_F_VERSION_1
        rng.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
        rng.queue(0).setSize(16);
        rng.queue(0).setDescTable(0x100000);
        rng.queue(0).setAvailRing(0x101000);
        rng.queue(0).setUsedRing(0x102000);
        rng.queue(0).setReady(true);
        rng.setStatus(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK);
    }

    @Test
    void aDeviceThreadsForbiddenCallEndsTheVmWithTheThreadAndTheCallNamed() throws Exception {
        AtomicLong result = new AtomicLong(1);
        VirtioDevice.setIoThreadTestHook(() -> result.set(Seccomp.probe("socket")));
        Vm vm = running(true).vm();

        activateEntropyDevice(machine);

        VmExit exit = vm.awaitExit(Duration.ofSeconds(30)).orElseThrow();
        assertThat(exit.reason()).isEqualTo(VmExit.Reason.SECCOMP_VIOLATION);
        assertThat(exit.detail()).isEqualTo("thread virtio-rng-entropy-q0 called the forbidden system call socket");
        // The supervisor answers the call before it ends the VM: the thread may see the answer after awaitExit returned.
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (result.get() == 1) {
            assertThat(System.nanoTime()).as("the device thread seeing the answer").isLessThan(deadline);
            Thread.onSpinWait();
        }
        assertThat(result.get()).as("socket's result on the device thread").isEqualTo(-1L /* -EPERM */);
        assertThat(exit.reason().clean()).isFalse();
        // The VMM goes on: this thread may still call it, and another VM runs.
        assertThat(Seccomp.probe("getppid")).isPositive();
        vm.close();
        VirtioDevice.setIoThreadTestHook(null);
        Vm next = running(true).vm();
        assertThat(next.state()).isEqualTo(Vm.State.RUNNING);
    }

    @Test
    void withSeccompOffTheSameCallIsNotStopped() throws Exception {
        AtomicLong result = new AtomicLong(1);
        VirtioDevice.setIoThreadTestHook(() -> result.set(Seccomp.probe("socket")));
        Vm vm = running(false).vm();

        activateEntropyDevice(machine);

        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (result.get() == 1) {
            assertThat(System.nanoTime()).as("the hook running").isLessThan(deadline);
            Thread.onSpinWait();
        }
        assertThat(result.get()).as("socket(0, 0, 0) fails for its arguments, not for a filter").isEqualTo(-97L /* -EAFNOSUPPORT */);
        assertThat(vm.state()).isEqualTo(Vm.State.RUNNING);
    }
}
