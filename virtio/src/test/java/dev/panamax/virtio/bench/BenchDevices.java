package dev.panamax.virtio.bench;

import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioInterrupts;
import dev.panamax.vm.GuestMemory;
import java.util.concurrent.locks.LockSupport;

/** What the benchmarks' drivers do alike: a device connected so that its interrupts wake the driver, then its features taken. */
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
}
