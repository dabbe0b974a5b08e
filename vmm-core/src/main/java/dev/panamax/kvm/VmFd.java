package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_CLOCK_DATA;
import static dev.panamax.kvm.KvmAbi.KVM_DIRTY_LOG;
import static dev.panamax.kvm.KvmAbi.KVM_IOEVENTFD_STRUCT;
import static dev.panamax.kvm.KvmAbi.KVM_IRQCHIP;
import static dev.panamax.kvm.KvmAbi.KVM_IRQFD_STRUCT;
import static dev.panamax.kvm.KvmAbi.KVM_IRQ_LEVEL;
import static dev.panamax.kvm.KvmAbi.KVM_IRQ_ROUTING;
import static dev.panamax.kvm.KvmAbi.KVM_IRQ_ROUTING_ENTRY;
import static dev.panamax.kvm.KvmAbi.KVM_PIT_CONFIG;
import static dev.panamax.kvm.KvmAbi.KVM_PIT_STATE2;
import static dev.panamax.kvm.KvmAbi.KVM_USERSPACE_MEMORY_REGION;
import static dev.panamax.kvm.KvmAbi.offset;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.panamax.sys.EventFd;
import dev.panamax.sys.Fd;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.OptionalLong;

/** A VM fd: memory slots, vCPUs, the in-kernel interrupt controllers, and interrupt/event plumbing. */
public final class VmFd extends Fd {
    private static final long IRQCHIP_CHIP = offset(KVM_IRQCHIP, "chip");

    private final Kvm kvm;

    VmFd(Kvm kvm, int fd) {
        super(fd, "kvm-vm");
        this.kvm = kvm;
    }

    /**
     * {@code int ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, struct kvm_userspace_memory_region *)}: maps
     * host memory at {@code hostAddress} into guest-physical space; a size of 0 deletes the slot.
     */
    public void setUserMemoryRegion(int slot, boolean logDirtyPages, long guestPhysicalAddress, long size, long hostAddress) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = arena.allocate(KVM_USERSPACE_MEMORY_REGION);
            r.set(JAVA_INT, offset(KVM_USERSPACE_MEMORY_REGION, "slot"), slot);
            r.set(JAVA_INT, offset(KVM_USERSPACE_MEMORY_REGION, "flags"), logDirtyPages ? KvmAbi.KVM_MEM_LOG_DIRTY_PAGES : 0);
            r.set(JAVA_LONG, offset(KVM_USERSPACE_MEMORY_REGION, "guest_phys_addr"), guestPhysicalAddress);
            r.set(JAVA_LONG, offset(KVM_USERSPACE_MEMORY_REGION, "memory_size"), size);
            r.set(JAVA_LONG, offset(KVM_USERSPACE_MEMORY_REGION, "userspace_addr"), hostAddress);
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_USER_MEMORY_REGION, r);
        }
    }

    /** {@code int ioctl(vm_fd, KVM_CREATE_VCPU, unsigned long vcpu_id)}, with its kvm_run page mapped. */
    public VcpuFd createVcpu(int id) {
        return new VcpuFd(KvmIoctl.call(fd(), KvmAbi.KVM_CREATE_VCPU, id), id, kvm.vcpuMmapSize());
    }

    /** {@code int ioctl(vm_fd, KVM_SET_TSS_ADDR, unsigned long addr)}: three pages Intel VMX needs below 4 GiB. */
    public void setTssAddress(long address) {
        KvmIoctl.call(fd(), KvmAbi.KVM_SET_TSS_ADDR, address);
    }

    /** {@code int ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0)}: in-kernel PIC, IOAPIC and local APICs. */
    public void createIrqchip() {
        KvmIoctl.call(fd(), KvmAbi.KVM_CREATE_IRQCHIP);
    }

    /** {@code int ioctl(vm_fd, KVM_CREATE_PIT2, struct kvm_pit_config *)}: in-kernel i8254 timer. */
    public void createPit2() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment config = arena.allocate(KVM_PIT_CONFIG);
            config.set(JAVA_INT, offset(KVM_PIT_CONFIG, "flags"), KvmAbi.KVM_PIT_SPEAKER_DUMMY);
            KvmIoctl.call(fd(), KvmAbi.KVM_CREATE_PIT2, config);
        }
    }

    /** {@code KVM_IRQCHIP_PIC_MASTER}: the chip id of the master i8259 for {@link #getIrqchip}. */
    public static final int IRQCHIP_PIC_MASTER = KvmAbi.KVM_IRQCHIP_PIC_MASTER;
    /** {@code KVM_IRQCHIP_PIC_SLAVE} */
    public static final int IRQCHIP_PIC_SLAVE = KvmAbi.KVM_IRQCHIP_PIC_SLAVE;
    /** {@code KVM_IRQCHIP_IOAPIC} */
    public static final int IRQCHIP_IOAPIC = KvmAbi.KVM_IRQCHIP_IOAPIC;
    /** The size of the {@code chip} union of {@code struct kvm_irqchip}: one chip's state. */
    public static final int IRQCHIP_STATE_SIZE = (int) KVM_IRQCHIP.byteSize() - (int) IRQCHIP_CHIP;
    /** The size of {@code struct kvm_pit_state2}. */
    public static final int PIT_STATE_SIZE = (int) KVM_PIT_STATE2.byteSize();

    /**
     * {@code int ioctl(vm_fd, KVM_GET_IRQCHIP, struct kvm_irqchip *)}: the state of one in-kernel
     * interrupt controller ({@link #IRQCHIP_PIC_MASTER}, {@link #IRQCHIP_PIC_SLAVE} or {@link
     * #IRQCHIP_IOAPIC}), {@link #IRQCHIP_STATE_SIZE} bytes.
     */
    public byte[] getIrqchip(int chipId) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment chip = arena.allocate(KVM_IRQCHIP);
            chip.set(JAVA_INT, offset(KVM_IRQCHIP, "chip_id"), chipId);
            KvmIoctl.call(fd(), KvmAbi.KVM_GET_IRQCHIP, chip);
            return chip.asSlice(IRQCHIP_CHIP).toArray(JAVA_BYTE);
        }
    }

    /** {@code int ioctl(vm_fd, KVM_SET_IRQCHIP, struct kvm_irqchip *)}: {@code state} is {@link #IRQCHIP_STATE_SIZE} bytes. */
    public void setIrqchip(int chipId, byte[] state) {
        if (state.length != IRQCHIP_STATE_SIZE) {
            throw new IllegalArgumentException("an irqchip state is " + IRQCHIP_STATE_SIZE + " bytes, not " + state.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment chip = arena.allocate(KVM_IRQCHIP);
            chip.set(JAVA_INT, offset(KVM_IRQCHIP, "chip_id"), chipId);
            MemorySegment.copy(state, 0, chip, JAVA_BYTE, IRQCHIP_CHIP, state.length);
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_IRQCHIP, chip);
        }
    }

    /** {@code int ioctl(vm_fd, KVM_GET_PIT2, struct kvm_pit_state2 *)}: the in-kernel i8254's state. */
    public byte[] getPit2() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pit = arena.allocate(KVM_PIT_STATE2);
            KvmIoctl.call(fd(), KvmAbi.KVM_GET_PIT2, pit);
            return pit.toArray(JAVA_BYTE);
        }
    }

    /**
     * {@code int ioctl(vm_fd, KVM_SET_PIT2, struct kvm_pit_state2 *)}; {@code state} is {@link
     * #PIT_STATE_SIZE} bytes. KVM restarts each channel's count at the time of the call.
     */
    public void setPit2(byte[] state) {
        if (state.length != PIT_STATE_SIZE) {
            throw new IllegalArgumentException("a PIT state is " + PIT_STATE_SIZE + " bytes, not " + state.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pit = arena.allocate(KVM_PIT_STATE2);
            MemorySegment.copy(state, 0, pit, JAVA_BYTE, 0, state.length);
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_PIT2, pit);
        }
    }

    /**
     * {@code int ioctl(vm_fd, KVM_CHECK_EXTENSION, int cap)} on this VM: 0 when absent, else a
     * cap-specific value, which can differ from the system fd's answer.
     */
    public int checkExtension(Kvm.Capability capability) {
        return KvmIoctl.call(fd(), KvmAbi.KVM_CHECK_EXTENSION, capability.number);
    }

    /**
     * The size of this VM's XSAVE areas: {@code KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)} where KVM
     * reports it, else the legacy 4096 bytes of {@code KVM_GET_XSAVE}.
     */
    public int xsaveSize() {
        int size = checkExtension(Kvm.Capability.XSAVE2);
        return size > 0 ? Math.max(size, VcpuFd.XSAVE_LEGACY_SIZE) : VcpuFd.XSAVE_LEGACY_SIZE;
    }

    /** {@code int ioctl(vm_fd, KVM_IRQ_LINE, struct kvm_irq_level *)}: raises or lowers a GSI. */
    public void setIrqLine(int gsi, boolean high) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment level = arena.allocate(KVM_IRQ_LEVEL);
            level.set(JAVA_INT, offset(KVM_IRQ_LEVEL, "irq"), gsi);
            level.set(JAVA_INT, offset(KVM_IRQ_LEVEL, "level"), high ? 1 : 0);
            KvmIoctl.call(fd(), KvmAbi.KVM_IRQ_LINE, level);
        }
    }

    /** {@code int ioctl(vm_fd, KVM_SET_GSI_ROUTING, struct kvm_irq_routing *)}: replaces the whole table. */
    public void setGsiRouting(List<GsiRoute> routes) {
        long entrySize = KVM_IRQ_ROUTING_ENTRY.byteSize();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment table = arena.allocate(KVM_IRQ_ROUTING.byteSize() + routes.size() * entrySize, 8);
            table.set(JAVA_INT, offset(KVM_IRQ_ROUTING, "nr"), routes.size());
            for (int i = 0; i < routes.size(); i++) {
                long at = KVM_IRQ_ROUTING.byteSize() + i * entrySize;
                GsiRoute route = routes.get(i);
                table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "gsi"), route.gsi());
                switch (route) {
                    case GsiRoute.Irqchip chip -> {
                        table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "type"), KvmAbi.KVM_IRQ_ROUTING_IRQCHIP);
                        table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "u", "irqchip", "irqchip"), chip.chip());
                        table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "u", "irqchip", "pin"), chip.pin());
                    }
                    case GsiRoute.Msi msi -> {
                        table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "type"), KvmAbi.KVM_IRQ_ROUTING_MSI);
                        table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "u", "msi", "address_lo"), (int) msi.address());
                        table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "u", "msi", "address_hi"), (int) (msi.address() >>> 32));
                        table.set(JAVA_INT, at + offset(KVM_IRQ_ROUTING_ENTRY, "u", "msi", "data"), msi.data());
                    }
                }
            }
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_GSI_ROUTING, table);
        }
    }

    /** {@code int ioctl(vm_fd, KVM_IRQFD, struct kvm_irqfd *)}: signalling {@code event} raises {@code gsi}. */
    public void registerIrqFd(EventFd event, int gsi) {
        irqfd(event, gsi, 0);
    }

    public void unregisterIrqFd(EventFd event, int gsi) {
        irqfd(event, gsi, KvmAbi.KVM_IRQFD_FLAG_DEASSIGN);
    }

    private void irqfd(EventFd event, int gsi, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment irqfd = arena.allocate(KVM_IRQFD_STRUCT);
            irqfd.set(JAVA_INT, offset(KVM_IRQFD_STRUCT, "fd"), event.fd());
            irqfd.set(JAVA_INT, offset(KVM_IRQFD_STRUCT, "gsi"), gsi);
            irqfd.set(JAVA_INT, offset(KVM_IRQFD_STRUCT, "flags"), flags);
            KvmIoctl.call(fd(), KvmAbi.KVM_IRQFD, irqfd);
        }
    }

    /**
     * {@code int ioctl(vm_fd, KVM_IOEVENTFD, struct kvm_ioeventfd *)}: a guest write of {@code length}
     * bytes to {@code address} (a port when {@code portIo}) signals {@code event} inside the kernel,
     * without a vCPU exit; with {@code datamatch}, only writes of that value do.
     */
    public void registerIoEventFd(EventFd event, long address, int length, boolean portIo, OptionalLong datamatch) {
        ioeventfd(event, address, length, portIo, datamatch, 0);
    }

    public void unregisterIoEventFd(EventFd event, long address, int length, boolean portIo, OptionalLong datamatch) {
        ioeventfd(event, address, length, portIo, datamatch, KvmAbi.KVM_IOEVENTFD_FLAG_DEASSIGN);
    }

    private void ioeventfd(EventFd event, long address, int length, boolean portIo, OptionalLong datamatch, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment e = arena.allocate(KVM_IOEVENTFD_STRUCT);
            e.set(JAVA_LONG, offset(KVM_IOEVENTFD_STRUCT, "datamatch"), datamatch.orElse(0));
            e.set(JAVA_LONG, offset(KVM_IOEVENTFD_STRUCT, "addr"), address);
            e.set(JAVA_INT, offset(KVM_IOEVENTFD_STRUCT, "len"), length);
            e.set(JAVA_INT, offset(KVM_IOEVENTFD_STRUCT, "fd"), event.fd());
            int all = flags
                    | (portIo ? KvmAbi.KVM_IOEVENTFD_FLAG_PIO : 0)
                    | (datamatch.isPresent() ? KvmAbi.KVM_IOEVENTFD_FLAG_DATAMATCH : 0);
            e.set(JAVA_INT, offset(KVM_IOEVENTFD_STRUCT, "flags"), all);
            KvmIoctl.call(fd(), KvmAbi.KVM_IOEVENTFD, e);
        }
    }

    /**
     * {@code int ioctl(vm_fd, KVM_GET_DIRTY_LOG, struct kvm_dirty_log *)}: one bit per 4 KiB page of
     * the slot written since the last call (the slot must log dirty pages).
     */
    public long[] dirtyLog(int slot, long slotSize) {
        long pages = (slotSize + 4095) / 4096;
        int words = Math.toIntExact((pages + 63) / 64);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment bitmap = arena.allocate(8L * words, 8);
            MemorySegment log = arena.allocate(KVM_DIRTY_LOG);
            log.set(JAVA_INT, offset(KVM_DIRTY_LOG, "slot"), slot);
            log.set(JAVA_LONG, offset(KVM_DIRTY_LOG, "dirty_bitmap"), bitmap.address());
            KvmIoctl.call(fd(), KvmAbi.KVM_GET_DIRTY_LOG, log);
            return bitmap.toArray(JAVA_LONG);
        }
    }

    /**
     * {@code int ioctl(vm_fd, KVM_GET_CLOCK, struct kvm_clock_data *)}: the guest's kvmclock, in
     * nanoseconds.
     */
    public long getClock() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(KVM_CLOCK_DATA);
            KvmIoctl.call(fd(), KvmAbi.KVM_GET_CLOCK, data);
            return data.get(JAVA_LONG, offset(KVM_CLOCK_DATA, "clock"));
        }
    }

    /**
     * {@code int ioctl(vm_fd, KVM_SET_CLOCK, struct kvm_clock_data *)}: sets the guest's kvmclock to
     * {@code nanos} (no flags: the value is taken as is, not advanced by real time).
     */
    public void setClock(long nanos) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(KVM_CLOCK_DATA);
            data.set(JAVA_LONG, offset(KVM_CLOCK_DATA, "clock"), nanos);
            KvmIoctl.call(fd(), KvmAbi.KVM_SET_CLOCK, data);
        }
    }
}
