package dev.panamax.kvm;

import static dev.panamax.kvm.KvmAbi.KVM_CPUID2;
import static dev.panamax.kvm.KvmAbi.KVM_CPUID_ENTRY2;
import static dev.panamax.kvm.KvmAbi.KVM_MSR_LIST;
import static dev.panamax.kvm.KvmAbi.offset;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.panamax.sys.Fd;
import dev.panamax.sys.Libc;
import dev.panamax.sys.NativeCallException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The {@code /dev/kvm} system fd: capability queries, supported CPUID, and VM creation. */
public final class Kvm extends Fd {
    public static final Path DEVICE = Path.of("/dev/kvm");

    private final int vcpuMmapSize;

    private Kvm(int fd) {
        super(fd, "/dev/kvm");
        try {
            int version = KvmIoctl.call(fd, KvmAbi.KVM_GET_API_VERSION);
            if (version != KvmAbi.KVM_API_VERSION) {
                throw new KvmUnavailableException("/dev/kvm speaks KVM API version " + version
                        + ", Panamax needs " + KvmAbi.KVM_API_VERSION);
            }
            this.vcpuMmapSize = KvmIoctl.call(fd, KvmAbi.KVM_GET_VCPU_MMAP_SIZE);
            for (Capability required : new Capability[] {Capability.USER_MEMORY, Capability.IMMEDIATE_EXIT}) {
                if (checkExtension(required) <= 0) {
                    throw new KvmUnavailableException("this KVM lacks " + required + ", which Panamax needs");
                }
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * Opens {@code /dev/kvm}.
     *
     * @throws KvmUnavailableException with a sentence saying what is wrong and what to do
     */
    public static Kvm open() {
        if (!Files.exists(DEVICE)) {
            throw new KvmUnavailableException("/dev/kvm does not exist: this host has no KVM (load the kvm_intel or kvm_amd module, or enable nested virtualization)");
        }
        try {
            return new Kvm(Libc.open(DEVICE.toString(), Libc.O_RDWR | Libc.O_CLOEXEC));
        } catch (NativeCallException e) {
            if (e.errno() == Libc.EACCES || e.errno() == Libc.EPERM) {
                throw new KvmUnavailableException("no permission to open /dev/kvm: add your user to the 'kvm' group or run as root");
            }
            throw e;
        }
    }

    /** KVM capabilities Panamax asks about ({@code KVM_CAP_*}). */
    public enum Capability {
        IRQCHIP(KvmAbi.KVM_CAP_IRQCHIP),
        HLT(KvmAbi.KVM_CAP_HLT),
        USER_MEMORY(KvmAbi.KVM_CAP_USER_MEMORY),
        SET_TSS_ADDR(KvmAbi.KVM_CAP_SET_TSS_ADDR),
        EXT_CPUID(KvmAbi.KVM_CAP_EXT_CPUID),
        NR_VCPUS(KvmAbi.KVM_CAP_NR_VCPUS),
        MAX_VCPUS(KvmAbi.KVM_CAP_MAX_VCPUS),
        NR_MEMSLOTS(KvmAbi.KVM_CAP_NR_MEMSLOTS),
        IRQ_ROUTING(KvmAbi.KVM_CAP_IRQ_ROUTING),
        IRQFD(KvmAbi.KVM_CAP_IRQFD),
        PIT2(KvmAbi.KVM_CAP_PIT2),
        IOEVENTFD(KvmAbi.KVM_CAP_IOEVENTFD),
        SIGNAL_MSI(KvmAbi.KVM_CAP_SIGNAL_MSI),
        TSC_DEADLINE_TIMER(KvmAbi.KVM_CAP_TSC_DEADLINE_TIMER),
        IMMEDIATE_EXIT(KvmAbi.KVM_CAP_IMMEDIATE_EXIT),
        MP_STATE(KvmAbi.KVM_CAP_MP_STATE),
        VCPU_EVENTS(KvmAbi.KVM_CAP_VCPU_EVENTS),
        DEBUGREGS(KvmAbi.KVM_CAP_DEBUGREGS),
        XSAVE(KvmAbi.KVM_CAP_XSAVE),
        XCRS(KvmAbi.KVM_CAP_XCRS),
        TSC_CONTROL(KvmAbi.KVM_CAP_TSC_CONTROL),
        GET_TSC_KHZ(KvmAbi.KVM_CAP_GET_TSC_KHZ),
        /** Its value is the size of the XSAVE area, on a VM fd. */
        XSAVE2(KvmAbi.KVM_CAP_XSAVE2);

        final int number;

        Capability(int number) {
            this.number = number;
        }
    }

    /** {@code int ioctl(kvm_fd, KVM_GET_API_VERSION, 0)} */
    public int apiVersion() {
        return KvmIoctl.call(fd(), KvmAbi.KVM_GET_API_VERSION);
    }

    /** {@code int ioctl(kvm_fd, KVM_CHECK_EXTENSION, int cap)}: 0 when absent, else a cap-specific value. */
    public int checkExtension(Capability capability) {
        return KvmIoctl.call(fd(), KvmAbi.KVM_CHECK_EXTENSION, capability.number);
    }

    /** {@code int ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0)}: size of each vCPU's kvm_run mapping. */
    public int vcpuMmapSize() {
        return vcpuMmapSize;
    }

    /** {@code int ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, struct kvm_cpuid2 *)}: what KVM can virtualize here. */
    public List<CpuidEntry> supportedCpuid() {
        for (int capacity = 128; ; capacity *= 2) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment table = arena.allocate(KVM_CPUID2.byteSize() + capacity * KVM_CPUID_ENTRY2.byteSize(), 8);
                table.set(JAVA_INT, offset(KVM_CPUID2, "nent"), capacity);
                try {
                    KvmIoctl.call(fd(), KvmAbi.KVM_GET_SUPPORTED_CPUID, table);
                } catch (NativeCallException e) {
                    if (e.errno() == Libc.E2BIG && capacity < 4096) {
                        continue;
                    }
                    throw e;
                }
                return CpuidTable.read(table);
            }
        }
    }

    /**
     * {@code int ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, struct kvm_msr_list *)}: the MSRs KVM saves and
     * restores for a vCPU (asked once with room for none, to learn how many there are).
     */
    public int[] msrIndexList() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment header = arena.allocate(KVM_MSR_LIST);
            int count;
            try {
                KvmIoctl.call(fd(), KvmAbi.KVM_GET_MSR_INDEX_LIST, header);
                return new int[0];
            } catch (NativeCallException e) {
                if (e.errno() != Libc.E2BIG) {
                    throw e;
                }
                count = header.get(JAVA_INT, offset(KVM_MSR_LIST, "nmsrs"));
            }
            MemorySegment list = arena.allocate(KVM_MSR_LIST.byteSize() + 4L * count, 4);
            list.set(JAVA_INT, offset(KVM_MSR_LIST, "nmsrs"), count);
            KvmIoctl.call(fd(), KvmAbi.KVM_GET_MSR_INDEX_LIST, list);
            int got = list.get(JAVA_INT, offset(KVM_MSR_LIST, "nmsrs"));
            return list.asSlice(KVM_MSR_LIST.byteSize(), 4L * Math.min(got, count)).toArray(JAVA_INT);
        }
    }

    /** {@code int ioctl(kvm_fd, KVM_CREATE_VM, 0)}: a new, empty VM. */
    public VmFd createVm() {
        return new VmFd(this, KvmIoctl.call(fd(), KvmAbi.KVM_CREATE_VM, 0L));
    }

    /** Reads and writes {@code struct kvm_cpuid2} tables; shared by the system and vCPU ioctls. */
    static final class CpuidTable {
        private static final long NENT = offset(KVM_CPUID2, "nent");
        private static final long[] FIELDS = {
            offset(KVM_CPUID_ENTRY2, "function"), offset(KVM_CPUID_ENTRY2, "index"), offset(KVM_CPUID_ENTRY2, "flags"),
            offset(KVM_CPUID_ENTRY2, "eax"), offset(KVM_CPUID_ENTRY2, "ebx"), offset(KVM_CPUID_ENTRY2, "ecx"),
            offset(KVM_CPUID_ENTRY2, "edx")};

        static List<CpuidEntry> read(MemorySegment table) {
            int count = table.get(JAVA_INT, NENT);
            List<CpuidEntry> entries = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                long at = KVM_CPUID2.byteSize() + i * KVM_CPUID_ENTRY2.byteSize();
                int[] v = new int[FIELDS.length];
                for (int f = 0; f < v.length; f++) {
                    v[f] = table.get(JAVA_INT, at + FIELDS[f]);
                }
                entries.add(new CpuidEntry(v[0], v[1], v[2], v[3], v[4], v[5], v[6]));
            }
            return List.copyOf(entries);
        }

        static MemorySegment write(Arena arena, List<CpuidEntry> entries) {
            MemorySegment table = arena.allocate(KVM_CPUID2.byteSize() + entries.size() * KVM_CPUID_ENTRY2.byteSize(), 8);
            table.set(JAVA_INT, NENT, entries.size());
            for (int i = 0; i < entries.size(); i++) {
                CpuidEntry e = entries.get(i);
                long at = KVM_CPUID2.byteSize() + i * KVM_CPUID_ENTRY2.byteSize();
                int[] v = {e.function(), e.index(), e.flags(), e.eax(), e.ebx(), e.ecx(), e.edx()};
                for (int f = 0; f < v.length; f++) {
                    table.set(JAVA_INT, at + FIELDS[f], v[f]);
                }
            }
            return table;
        }
    }
}
