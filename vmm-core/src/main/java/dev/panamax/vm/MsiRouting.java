package dev.panamax.vm;

import dev.panamax.kvm.GsiRoute;
import dev.panamax.kvm.VmFd;
import dev.panamax.sys.EventFd;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * The VM's GSI routing table: KVM's default routes for the in-kernel PIC and IOAPIC, plus one MSI
 * route per allocated {@link MsiVector}. Each vector is an eventfd bound to its GSI with irqfd, so a
 * device signals it with one write and KVM injects the message without a vCPU exit.
 */
final class MsiRouting {
    /** GSIs 0-23 are the IOAPIC's pins; MSI routes take the numbers above. */
    private static final int FIRST_MSI_GSI = 24;
    /** KVM_MAX_IRQ_ROUTES is 4096; stay well inside it. */
    static final int MAX_MSI_VECTORS = 2048;

    private final VmFd fd;
    private final TreeMap<Integer, GsiRoute.Msi> routes = new TreeMap<>(); // guarded by this

    MsiRouting(VmFd fd) {
        this.fd = fd;
    }

    synchronized MsiVector allocate() {
        int gsi = FIRST_MSI_GSI;
        while (routes.containsKey(gsi)) {
            gsi++;
        }
        if (gsi >= FIRST_MSI_GSI + MAX_MSI_VECTORS) {
            throw new IllegalStateException("no free MSI vector: all " + MAX_MSI_VECTORS + " are in use");
        }
        // An unprogrammed vector targets no CPU; the device signals it only after the guest programs it.
        routes.put(gsi, new GsiRoute.Msi(gsi, 0, 0));
        commit();
        EventFd event = EventFd.create(false);
        try {
            fd.registerIrqFd(event, gsi);
        } catch (RuntimeException e) {
            event.close();
            release(gsi);
            throw e;
        }
        return new Vector(gsi, event);
    }

    private synchronized void program(int gsi, long address, int data) {
        GsiRoute.Msi old = routes.get(gsi);
        if (old != null && (old.address() != address || old.data() != data)) {
            routes.put(gsi, new GsiRoute.Msi(gsi, address, data));
            commit();
        }
    }

    private synchronized void release(int gsi) {
        if (routes.remove(gsi) != null) {
            commit();
        }
    }

    /** KVM_SET_GSI_ROUTING replaces the whole table, so the irqchip's default routes go in every time. */
    private void commit() {
        List<GsiRoute> table = new ArrayList<>(40 + routes.size());
        for (int gsi = 0; gsi < 24; gsi++) {
            if (gsi < 16) {
                table.add(new GsiRoute.Irqchip(gsi, gsi < 8 ? 0 : 1, gsi % 8));
            }
            table.add(new GsiRoute.Irqchip(gsi, 2, gsi));
        }
        table.addAll(routes.values());
        fd.setGsiRouting(table);
    }

    private final class Vector implements MsiVector {
        private final int gsi;
        private final EventFd event;
        private boolean closed; // guarded by this

        Vector(int gsi, EventFd event) {
            this.gsi = gsi;
            this.event = event;
        }

        @Override
        public void program(long address, int data) {
            MsiRouting.this.program(gsi, address, data);
        }

        @Override
        public void signal() {
            event.signal();
        }

        @Override
        public synchronized void close() {
            if (closed) {
                return;
            }
            closed = true;
            try {
                fd.unregisterIrqFd(event, gsi);
            } finally {
                event.close();
                release(gsi);
            }
        }
    }
}
