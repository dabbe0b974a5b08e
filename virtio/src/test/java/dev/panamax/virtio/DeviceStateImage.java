package dev.panamax.virtio;

import dev.panamax.vm.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * A {@link VirtioDevice}'s saved state written field by field, as {@link VirtioDevice#saveState}
 * lays it out, for tests that change one field and see the restore refuse it.
 */
public final class DeviceStateImage {
    public int type;
    public Consumer<StateWriter> identity = w -> {};
    public long offered;
    public long accepted;
    public int status;
    public int generation;
    public String failure = "";
    public final List<Queue> queues = new ArrayList<>();

    /** One queue: the driver's settings and, when {@code running}, the rings and position. */
    public static final class Queue {
        public int size;
        public boolean ready;
        public long desc;
        public long avail;
        public long used;
        public boolean running;
        public int ringSize;
        public long ringDesc;
        public long ringAvail;
        public long ringUsed;
        public int lastAvail;
        public int usedIdx;
        public int signalledUsed;
    }

    /**
     * The state of {@code device} started by {@code driver} with every offered feature and queues of
     * {@code size} entries, each running at used index {@code position}, nothing in flight.
     */
    public static DeviceStateImage running(VirtioDevice device, VirtioTestDriver driver, int size, int position) {
        DeviceStateImage image = new DeviceStateImage();
        image.type = device.deviceType();
        image.offered = device.deviceFeatures();
        image.accepted = device.deviceFeatures();
        image.status = VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK;
        for (int i = 0; i < device.queueCount(); i++) {
            Queue q = new Queue();
            q.size = q.ringSize = size;
            q.ready = q.running = true;
            q.desc = q.ringDesc = driver.descTable(i);
            q.avail = q.ringAvail = driver.availRing(i);
            q.used = q.ringUsed = driver.usedRing(i);
            q.lastAvail = q.usedIdx = q.signalledUsed = position;
            image.queues.add(q);
        }
        return image;
    }

    public void write(StateWriter out) {
        out.i32(type);
        out.section("identity", identity);
        out.i64(offered).i64(accepted).u8(status).i32(generation).string(failure);
        out.i32(queues.size());
        for (Queue q : queues) {
            out.i32(q.size).bool(q.ready).i64(q.desc).i64(q.avail).i64(q.used).bool(q.running);
            if (q.running) {
                out.i32(q.ringSize).i64(q.ringDesc).i64(q.ringAvail).i64(q.ringUsed);
                out.u16(q.lastAvail).u16(q.usedIdx).u16(q.signalledUsed);
            }
        }
    }
}
