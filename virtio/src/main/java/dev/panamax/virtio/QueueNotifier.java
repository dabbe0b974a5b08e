package dev.panamax.virtio;

import dev.panamax.vm.Vm;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * Binds a queue's notify address to the queue's eventfd inside KVM (ioeventfd), so the guest's kick
 * wakes the device's I/O thread without a vCPU exit. A transport still forwards notify writes that
 * reach it as exits, so binding is an optimisation, and {@link #NONE} is a correct choice for tests.
 */
public interface QueueNotifier {
    /**
     * Binds guest writes of {@code length} bytes at {@code address} (of {@code datamatch} only, when
     * present) to {@code device}'s notify event for {@code queue}.
     */
    void bind(VirtioDevice device, int queue, long address, int length, OptionalLong datamatch);

    /** Removes every binding of {@code device}. */
    void unbindAll(VirtioDevice device);

    /** Binds nothing: every notify write reaches the transport. */
    QueueNotifier NONE = new QueueNotifier() {
        @Override
        public void bind(VirtioDevice device, int queue, long address, int length, OptionalLong datamatch) {}

        @Override
        public void unbindAll(VirtioDevice device) {}
    };

    /** KVM ioeventfds on {@code vm}. */
    static QueueNotifier of(Vm vm) {
        record Binding(int queue, long address, int length, OptionalLong datamatch) {}
        Map<VirtioDevice, List<Binding>> bindings = new HashMap<>();
        return new QueueNotifier() {
            @Override
            public void bind(VirtioDevice device, int queue, long address, int length, OptionalLong datamatch) {
                synchronized (bindings) {
                    vm.fd().registerIoEventFd(device.notifyEvent(queue), address, length, false, datamatch);
                    bindings.computeIfAbsent(device, d -> new ArrayList<>()).add(new Binding(queue, address, length, datamatch));
                }
            }

            @Override
            public void unbindAll(VirtioDevice device) {
                synchronized (bindings) {
                    List<Binding> bound = bindings.remove(device);
                    if (bound != null) {
                        for (Binding b : bound) {
                            vm.fd().unregisterIoEventFd(device.notifyEvent(b.queue()), b.address(), b.length(), false, b.datamatch());
                        }
                    }
                }
            }
        };
    }
}
