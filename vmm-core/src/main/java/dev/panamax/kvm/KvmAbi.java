package dev.panamax.kvm;

import static java.lang.foreign.MemoryLayout.paddingLayout;
import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;
import static java.lang.foreign.MemoryLayout.unionLayout;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The KVM userspace ABI for x86-64, declared once: struct layouts (named as in {@code
 * <linux/kvm.h>}, members with their C names, padding explicit), ioctl numbers and constants. A
 * test compiles a C program against the system's headers and compares every size, offset and
 * number listed in {@link #STRUCTS} and {@link #CONSTANTS}.
 */
final class KvmAbi {
    private KvmAbi() {}

    private static final Map<String, Long> constants = new LinkedHashMap<>();
    private static final Map<Long, String> ioctlNames = new LinkedHashMap<>();
    private static final List<StructLayout> structs = new ArrayList<>();

    // ---- struct layouts ----

    static final StructLayout KVM_USERSPACE_MEMORY_REGION = struct("kvm_userspace_memory_region",
            u32("slot"), u32("flags"), u64("guest_phys_addr"), u64("memory_size"), u64("userspace_addr"));

    static final StructLayout KVM_REGS = struct("kvm_regs",
            u64("rax"), u64("rbx"), u64("rcx"), u64("rdx"), u64("rsi"), u64("rdi"), u64("rsp"), u64("rbp"),
            u64("r8"), u64("r9"), u64("r10"), u64("r11"), u64("r12"), u64("r13"), u64("r14"), u64("r15"),
            u64("rip"), u64("rflags"));

    static final StructLayout KVM_SEGMENT = struct("kvm_segment",
            u64("base"), u32("limit"), u16("selector"), u8("type"), u8("present"), u8("dpl"), u8("db"),
            u8("s"), u8("l"), u8("g"), u8("avl"), u8("unusable"), u8("padding"));

    static final StructLayout KVM_DTABLE = struct("kvm_dtable",
            u64("base"), u16("limit"), sequenceLayout(3, ValueLayout.JAVA_SHORT).withName("padding"));

    static final StructLayout KVM_SREGS = struct("kvm_sregs",
            member(KVM_SEGMENT, "cs"), member(KVM_SEGMENT, "ds"), member(KVM_SEGMENT, "es"),
            member(KVM_SEGMENT, "fs"), member(KVM_SEGMENT, "gs"), member(KVM_SEGMENT, "ss"),
            member(KVM_SEGMENT, "tr"), member(KVM_SEGMENT, "ldt"),
            member(KVM_DTABLE, "gdt"), member(KVM_DTABLE, "idt"),
            u64("cr0"), u64("cr2"), u64("cr3"), u64("cr4"), u64("cr8"), u64("efer"), u64("apic_base"),
            sequenceLayout(4, ValueLayout.JAVA_LONG).withName("interrupt_bitmap"));

    static final StructLayout KVM_FPU = struct("kvm_fpu",
            sequenceLayout(8 * 16, ValueLayout.JAVA_BYTE).withName("fpr"), u16("fcw"), u16("fsw"), u8("ftwx"),
            u8("pad1"), u16("last_opcode"), u64("last_ip"), u64("last_dp"),
            sequenceLayout(16 * 16, ValueLayout.JAVA_BYTE).withName("xmm"), u32("mxcsr"), u32("pad2"));

    static final StructLayout KVM_MSR_ENTRY = struct("kvm_msr_entry", u32("index"), u32("reserved"), u64("data"));
    /** Header only: {@code entries[]} is a flexible array of {@link #KVM_MSR_ENTRY} after it. */
    static final StructLayout KVM_MSRS = struct("kvm_msrs", u32("nmsrs"), u32("pad"));

    static final StructLayout KVM_CPUID_ENTRY2 = struct("kvm_cpuid_entry2",
            u32("function"), u32("index"), u32("flags"), u32("eax"), u32("ebx"), u32("ecx"), u32("edx"),
            sequenceLayout(3, ValueLayout.JAVA_INT).withName("padding"));
    /** Header only: {@code entries[]} of {@link #KVM_CPUID_ENTRY2} follow. */
    static final StructLayout KVM_CPUID2 = struct("kvm_cpuid2", u32("nent"), u32("padding"));

    static final StructLayout KVM_IRQ_LEVEL = struct("kvm_irq_level", u32("irq"), u32("level"));

    static final StructLayout KVM_PIT_CONFIG = struct("kvm_pit_config",
            u32("flags"), sequenceLayout(15, ValueLayout.JAVA_INT).withName("pad"));

    static final StructLayout KVM_IRQFD_STRUCT = struct("kvm_irqfd",
            u32("fd"), u32("gsi"), u32("flags"), u32("resamplefd"), sequenceLayout(16, ValueLayout.JAVA_BYTE).withName("pad"));

    static final StructLayout KVM_IOEVENTFD_STRUCT = struct("kvm_ioeventfd",
            u64("datamatch"), u64("addr"), u32("len"), u32("fd"), u32("flags"),
            sequenceLayout(36, ValueLayout.JAVA_BYTE).withName("pad"));

    static final StructLayout KVM_IRQ_ROUTING_ENTRY = struct("kvm_irq_routing_entry",
            u32("gsi"), u32("type"), u32("flags"), u32("pad"),
            unionLayout(
                    structLayout(u32("irqchip"), u32("pin")).withName("irqchip"),
                    structLayout(u32("address_lo"), u32("address_hi"), u32("data"), u32("devid")).withName("msi"),
                    paddingLayout(32)).withName("u"));
    /** Header only: {@code entries[]} of {@link #KVM_IRQ_ROUTING_ENTRY} follow. */
    static final StructLayout KVM_IRQ_ROUTING = struct("kvm_irq_routing", u32("nr"), u32("flags"));

    static final StructLayout KVM_LAPIC_STATE = struct("kvm_lapic_state",
            sequenceLayout(1024, ValueLayout.JAVA_BYTE).withName("regs"));

    static final StructLayout KVM_CLOCK_DATA = struct("kvm_clock_data",
            u64("clock"), u32("flags"), u32("pad0"), u64("realtime"), u64("host_tsc"),
            sequenceLayout(4, ValueLayout.JAVA_INT).withName("pad"));

    static final StructLayout KVM_DIRTY_LOG = struct("kvm_dirty_log", u32("slot"), u32("padding1"), u64("dirty_bitmap"));

    /** Header only: {@code sigset[]} (the kernel's 8-byte sigset) follows. */
    static final StructLayout KVM_SIGNAL_MASK = struct("kvm_signal_mask", u32("len"));

    /** Header only: {@code indices[]} (u32 MSR numbers) follow. */
    static final StructLayout KVM_MSR_LIST = struct("kvm_msr_list", u32("nmsrs"));

    /** At least these 4096 bytes; KVM_GET_XSAVE2 and KVM_SET_XSAVE use KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) bytes. */
    static final StructLayout KVM_XSAVE = struct("kvm_xsave", sequenceLayout(1024, ValueLayout.JAVA_INT).withName("region"));

    static final StructLayout KVM_XCR = struct("kvm_xcr", u32("xcr"), u32("reserved"), u64("value"));
    static final StructLayout KVM_XCRS = struct("kvm_xcrs",
            u32("nr_xcrs"), u32("flags"), sequenceLayout(16, KVM_XCR).withName("xcrs"),
            sequenceLayout(16, ValueLayout.JAVA_LONG).withName("padding"));

    static final StructLayout KVM_VCPU_EVENTS = struct("kvm_vcpu_events",
            structLayout(u8("injected"), u8("nr"), u8("has_error_code"), u8("pending"), u32("error_code")).withName("exception"),
            structLayout(u8("injected"), u8("nr"), u8("soft"), u8("shadow")).withName("interrupt"),
            structLayout(u8("injected"), u8("pending"), u8("masked"), u8("pad")).withName("nmi"),
            u32("sipi_vector"), u32("flags"),
            structLayout(u8("smm"), u8("pending"), u8("smm_inside_nmi"), u8("latched_init")).withName("smi"),
            structLayout(u8("pending")).withName("triple_fault"),
            sequenceLayout(26, ValueLayout.JAVA_BYTE).withName("reserved"), u8("exception_has_payload"),
            u64("exception_payload"));

    static final StructLayout KVM_MP_STATE = struct("kvm_mp_state", u32("mp_state"));

    static final StructLayout KVM_DEBUGREGS = struct("kvm_debugregs",
            sequenceLayout(4, ValueLayout.JAVA_LONG).withName("db"), u64("dr6"), u64("dr7"), u64("flags"),
            sequenceLayout(9, ValueLayout.JAVA_LONG).withName("reserved"));

    /** {@code chip} is a union of the PIC and IOAPIC states, kept as its 512 raw bytes. */
    static final StructLayout KVM_IRQCHIP = struct("kvm_irqchip",
            u32("chip_id"), u32("pad"), unionLayout(sequenceLayout(512, ValueLayout.JAVA_BYTE).withName("dummy")).withName("chip"));

    static final StructLayout KVM_PIT_CHANNEL_STATE = struct("kvm_pit_channel_state",
            u32("count"), u16("latched_count"), u8("count_latched"), u8("status_latched"), u8("status"), u8("read_state"),
            u8("write_state"), u8("write_latch"), u8("rw_mode"), u8("mode"), u8("bcd"), u8("gate"), u64("count_load_time"));
    static final StructLayout KVM_PIT_STATE2 = struct("kvm_pit_state2",
            sequenceLayout(3, KVM_PIT_CHANNEL_STATE).withName("channels"), u32("flags"),
            sequenceLayout(9, ValueLayout.JAVA_INT).withName("reserved"));

    /** The shared page KVM_RUN reports exits in; the exit details are an anonymous union at offset 32. */
    static final StructLayout KVM_RUN_STRUCT = struct("kvm_run",
            u8("request_interrupt_window"), u8("immediate_exit"), sequenceLayout(6, ValueLayout.JAVA_BYTE).withName("padding1"),
            u32("exit_reason"), u8("ready_for_interrupt_injection"), u8("if_flag"), u16("flags"),
            u64("cr8"), u64("apic_base"),
            unionLayout(
                    structLayout(u64("hardware_exit_reason")).withName("hw"),
                    structLayout(u64("hardware_entry_failure_reason"), u32("cpu"), paddingLayout(4)).withName("fail_entry"),
                    structLayout(u32("exception"), u32("error_code")).withName("ex"),
                    structLayout(u8("direction"), u8("size"), u16("port"), u32("count"), u64("data_offset")).withName("io"),
                    structLayout(u64("phys_addr"), sequenceLayout(8, ValueLayout.JAVA_BYTE).withName("data"), u32("len"),
                            u8("is_write"), paddingLayout(3)).withName("mmio"),
                    structLayout(u32("suberror"), u32("ndata"), sequenceLayout(16, ValueLayout.JAVA_LONG).withName("data"))
                            .withName("internal"),
                    structLayout(u32("type"), u32("ndata"), sequenceLayout(16, ValueLayout.JAVA_LONG).withName("data"))
                            .withName("system_event"),
                    paddingLayout(256)),
            u64("kvm_valid_regs"), u64("kvm_dirty_regs"),
            sequenceLayout(2048, ValueLayout.JAVA_BYTE).withName("s"));

    // ---- ioctl numbers (asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr) ----

    private static final int KVMIO = 0xAE;

    static final long KVM_GET_API_VERSION = ioctl("KVM_GET_API_VERSION", 0, 0x00, null);
    static final long KVM_CREATE_VM = ioctl("KVM_CREATE_VM", 0, 0x01, null);
    static final long KVM_CHECK_EXTENSION = ioctl("KVM_CHECK_EXTENSION", 0, 0x03, null);
    static final long KVM_GET_VCPU_MMAP_SIZE = ioctl("KVM_GET_VCPU_MMAP_SIZE", 0, 0x04, null);
    static final long KVM_GET_SUPPORTED_CPUID = ioctl("KVM_GET_SUPPORTED_CPUID", 3, 0x05, KVM_CPUID2);
    static final long KVM_GET_MSR_INDEX_LIST = ioctl("KVM_GET_MSR_INDEX_LIST", 3, 0x02, KVM_MSR_LIST);
    static final long KVM_CREATE_VCPU = ioctl("KVM_CREATE_VCPU", 0, 0x41, null);
    static final long KVM_GET_DIRTY_LOG = ioctl("KVM_GET_DIRTY_LOG", 1, 0x42, KVM_DIRTY_LOG);
    static final long KVM_SET_USER_MEMORY_REGION = ioctl("KVM_SET_USER_MEMORY_REGION", 1, 0x46, KVM_USERSPACE_MEMORY_REGION);
    static final long KVM_SET_TSS_ADDR = ioctl("KVM_SET_TSS_ADDR", 0, 0x47, null);
    static final long KVM_CREATE_IRQCHIP = ioctl("KVM_CREATE_IRQCHIP", 0, 0x60, null);
    static final long KVM_IRQ_LINE = ioctl("KVM_IRQ_LINE", 1, 0x61, KVM_IRQ_LEVEL);
    static final long KVM_SET_GSI_ROUTING = ioctl("KVM_SET_GSI_ROUTING", 1, 0x6a, KVM_IRQ_ROUTING);
    static final long KVM_IRQFD = ioctl("KVM_IRQFD", 1, 0x76, KVM_IRQFD_STRUCT);
    static final long KVM_CREATE_PIT2 = ioctl("KVM_CREATE_PIT2", 1, 0x77, KVM_PIT_CONFIG);
    static final long KVM_IOEVENTFD = ioctl("KVM_IOEVENTFD", 1, 0x79, KVM_IOEVENTFD_STRUCT);
    static final long KVM_SET_CLOCK = ioctl("KVM_SET_CLOCK", 1, 0x7b, KVM_CLOCK_DATA);
    static final long KVM_GET_CLOCK = ioctl("KVM_GET_CLOCK", 2, 0x7c, KVM_CLOCK_DATA);
    static final long KVM_RUN = ioctl("KVM_RUN", 0, 0x80, null);
    static final long KVM_GET_REGS = ioctl("KVM_GET_REGS", 2, 0x81, KVM_REGS);
    static final long KVM_SET_REGS = ioctl("KVM_SET_REGS", 1, 0x82, KVM_REGS);
    static final long KVM_GET_SREGS = ioctl("KVM_GET_SREGS", 2, 0x83, KVM_SREGS);
    static final long KVM_SET_SREGS = ioctl("KVM_SET_SREGS", 1, 0x84, KVM_SREGS);
    static final long KVM_SET_MSRS = ioctl("KVM_SET_MSRS", 1, 0x89, KVM_MSRS);
    static final long KVM_SET_SIGNAL_MASK = ioctl("KVM_SET_SIGNAL_MASK", 1, 0x8b, KVM_SIGNAL_MASK);
    static final long KVM_SET_FPU = ioctl("KVM_SET_FPU", 1, 0x8d, KVM_FPU);
    static final long KVM_GET_LAPIC = ioctl("KVM_GET_LAPIC", 2, 0x8e, KVM_LAPIC_STATE);
    static final long KVM_SET_LAPIC = ioctl("KVM_SET_LAPIC", 1, 0x8f, KVM_LAPIC_STATE);
    static final long KVM_SET_CPUID2 = ioctl("KVM_SET_CPUID2", 1, 0x90, KVM_CPUID2);
    static final long KVM_GET_CPUID2 = ioctl("KVM_GET_CPUID2", 3, 0x91, KVM_CPUID2);
    static final long KVM_GET_MSRS = ioctl("KVM_GET_MSRS", 3, 0x88, KVM_MSRS);
    static final long KVM_GET_FPU = ioctl("KVM_GET_FPU", 2, 0x8c, KVM_FPU);
    static final long KVM_GET_IRQCHIP = ioctl("KVM_GET_IRQCHIP", 3, 0x62, KVM_IRQCHIP);
    /** Declared _IOR in the header although userspace writes it; the number is what counts. */
    static final long KVM_SET_IRQCHIP = ioctl("KVM_SET_IRQCHIP", 2, 0x63, KVM_IRQCHIP);
    static final long KVM_GET_MP_STATE = ioctl("KVM_GET_MP_STATE", 2, 0x98, KVM_MP_STATE);
    static final long KVM_SET_MP_STATE = ioctl("KVM_SET_MP_STATE", 1, 0x99, KVM_MP_STATE);
    static final long KVM_GET_PIT2 = ioctl("KVM_GET_PIT2", 2, 0x9f, KVM_PIT_STATE2);
    static final long KVM_SET_PIT2 = ioctl("KVM_SET_PIT2", 1, 0xa0, KVM_PIT_STATE2);
    static final long KVM_GET_VCPU_EVENTS = ioctl("KVM_GET_VCPU_EVENTS", 2, 0x9f, KVM_VCPU_EVENTS);
    static final long KVM_SET_VCPU_EVENTS = ioctl("KVM_SET_VCPU_EVENTS", 1, 0xa0, KVM_VCPU_EVENTS);
    static final long KVM_GET_DEBUGREGS = ioctl("KVM_GET_DEBUGREGS", 2, 0xa1, KVM_DEBUGREGS);
    static final long KVM_SET_DEBUGREGS = ioctl("KVM_SET_DEBUGREGS", 1, 0xa2, KVM_DEBUGREGS);
    static final long KVM_SET_TSC_KHZ = ioctl("KVM_SET_TSC_KHZ", 0, 0xa2, null);
    static final long KVM_GET_TSC_KHZ = ioctl("KVM_GET_TSC_KHZ", 0, 0xa3, null);
    static final long KVM_GET_XSAVE = ioctl("KVM_GET_XSAVE", 2, 0xa4, KVM_XSAVE);
    static final long KVM_SET_XSAVE = ioctl("KVM_SET_XSAVE", 1, 0xa5, KVM_XSAVE);
    static final long KVM_GET_XCRS = ioctl("KVM_GET_XCRS", 2, 0xa6, KVM_XCRS);
    static final long KVM_SET_XCRS = ioctl("KVM_SET_XCRS", 1, 0xa7, KVM_XCRS);
    static final long KVM_GET_XSAVE2 = ioctl("KVM_GET_XSAVE2", 2, 0xcf, KVM_XSAVE);

    // ---- constants ----

    static final int KVM_API_VERSION = 12;

    static final int KVM_EXIT_UNKNOWN = 0;
    static final int KVM_EXIT_EXCEPTION = 1;
    static final int KVM_EXIT_IO = 2;
    static final int KVM_EXIT_HYPERCALL = 3;
    static final int KVM_EXIT_DEBUG = 4;
    static final int KVM_EXIT_HLT = 5;
    static final int KVM_EXIT_MMIO = 6;
    static final int KVM_EXIT_IRQ_WINDOW_OPEN = 7;
    static final int KVM_EXIT_SHUTDOWN = 8;
    static final int KVM_EXIT_FAIL_ENTRY = 9;
    static final int KVM_EXIT_INTR = 10;
    static final int KVM_EXIT_NMI = 16;
    static final int KVM_EXIT_INTERNAL_ERROR = 17;
    static final int KVM_EXIT_SYSTEM_EVENT = 24;
    static final int KVM_EXIT_IO_IN = 0;
    static final int KVM_EXIT_IO_OUT = 1;
    static final int KVM_SYSTEM_EVENT_SHUTDOWN = 1;
    static final int KVM_SYSTEM_EVENT_RESET = 2;
    static final int KVM_SYSTEM_EVENT_CRASH = 3;

    static final int KVM_CAP_IRQCHIP = 0;
    static final int KVM_CAP_HLT = 1;
    static final int KVM_CAP_USER_MEMORY = 3;
    static final int KVM_CAP_SET_TSS_ADDR = 4;
    static final int KVM_CAP_EXT_CPUID = 7;
    static final int KVM_CAP_NR_VCPUS = 9;
    static final int KVM_CAP_NR_MEMSLOTS = 10;
    static final int KVM_CAP_IRQ_ROUTING = 25;
    static final int KVM_CAP_IRQFD = 32;
    static final int KVM_CAP_PIT2 = 33;
    static final int KVM_CAP_IOEVENTFD = 36;
    static final int KVM_CAP_MAX_VCPUS = 66;
    static final int KVM_CAP_TSC_DEADLINE_TIMER = 72;
    static final int KVM_CAP_SIGNAL_MSI = 77;
    static final int KVM_CAP_IMMEDIATE_EXIT = 136;
    static final int KVM_CAP_MP_STATE = 14;
    static final int KVM_CAP_VCPU_EVENTS = 41;
    static final int KVM_CAP_DEBUGREGS = 50;
    static final int KVM_CAP_XSAVE = 55;
    static final int KVM_CAP_XCRS = 56;
    static final int KVM_CAP_TSC_CONTROL = 60;
    static final int KVM_CAP_GET_TSC_KHZ = 61;
    static final int KVM_CAP_XSAVE2 = 208;

    static final int KVM_MAX_XCRS = 16;
    static final int KVM_NR_IRQCHIPS = 3;
    static final int KVM_MP_STATE_RUNNABLE = 0;
    static final int KVM_MP_STATE_SUSPENDED = 10;
    /** The kernel's KVM_MAX_CPUID_ENTRIES (asm/kvm_host.h, not in the uapi headers). */
    static final int MAX_CPUID_ENTRIES = 256;

    static final int KVM_MEM_LOG_DIRTY_PAGES = 1;
    static final int KVM_IRQ_ROUTING_IRQCHIP = 1;
    static final int KVM_IRQ_ROUTING_MSI = 2;
    static final int KVM_IRQCHIP_PIC_MASTER = 0;
    static final int KVM_IRQCHIP_PIC_SLAVE = 1;
    static final int KVM_IRQCHIP_IOAPIC = 2;
    static final int KVM_IRQFD_FLAG_DEASSIGN = 1;
    static final int KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
    static final int KVM_IOEVENTFD_FLAG_PIO = 2;
    static final int KVM_IOEVENTFD_FLAG_DEASSIGN = 4;
    static final int KVM_PIT_SPEAKER_DUMMY = 1;
    static final int KVM_INTERNAL_ERROR_EMULATION = 1;

    /** Every struct declared here, for the ABI test. */
    static final List<StructLayout> STRUCTS = Collections.unmodifiableList(structs);
    /** Every ioctl number and {@code KVM_*} constant declared here, by C name, for the ABI test. */
    static Map<String, Long> constants() {
        Map<String, Long> all = new LinkedHashMap<>(constants);
        for (java.lang.reflect.Field field : KvmAbi.class.getDeclaredFields()) {
            if (field.getType() == int.class && field.getName().startsWith("KVM_")) {
                try {
                    all.put(field.getName(), (long) field.getInt(null));
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        return all;
    }

    /** The name of an ioctl request number, for error messages. */
    static String ioctlName(long request) {
        String name = ioctlNames.get(request);
        return name != null ? name : "0x" + Long.toHexString(request);
    }

    /**
     * Byte offset of a (possibly nested) member, e.g. {@code offset(KVM_RUN_STRUCT, "io", "port")}.
     * Unnamed groups are C's anonymous unions: their members are found as if they were the parent's.
     */
    static long offset(GroupLayout layout, String... path) {
        long offset = 0;
        MemoryLayout current = layout;
        for (String name : path) {
            if (!(current instanceof GroupLayout group)) {
                throw new IllegalArgumentException("'" + name + "' is not inside a struct or union");
            }
            long[] found = find(group, name);
            if (found == null) {
                throw new IllegalArgumentException("no member '" + name + "' in " + group);
            }
            offset += found[0];
            current = member(group, found);
        }
        return offset;
    }

    /** {offset of the member within group, index path...} or null. */
    private static long[] find(GroupLayout group, String name) {
        long offset = 0;
        List<MemoryLayout> members = group.memberLayouts();
        for (int i = 0; i < members.size(); i++) {
            MemoryLayout m = members.get(i);
            if (name.equals(m.name().orElse(null))) {
                return new long[] {offset, i};
            }
            if (m.name().isEmpty() && m instanceof GroupLayout anonymous) {
                long[] inner = find(anonymous, name);
                if (inner != null) {
                    long[] result = new long[inner.length + 1];
                    result[0] = offset + inner[0];
                    result[1] = i;
                    System.arraycopy(inner, 1, result, 2, inner.length - 1);
                    return result;
                }
            }
            if (group instanceof StructLayout) {
                offset += m.byteSize();
            }
        }
        return null;
    }

    private static MemoryLayout member(GroupLayout group, long[] found) {
        MemoryLayout m = group;
        for (int i = 1; i < found.length; i++) {
            m = ((GroupLayout) m).memberLayouts().get((int) found[i]);
        }
        return m;
    }

    // ---- declaration helpers ----

    private static StructLayout struct(String cName, MemoryLayout... members) {
        StructLayout layout = structLayout(members).withName(cName);
        structs.add(layout);
        return layout;
    }

    private static MemoryLayout member(MemoryLayout type, String name) {
        return type.withName(name);
    }

    private static ValueLayout u8(String name) {
        return ValueLayout.JAVA_BYTE.withName(name);
    }

    private static ValueLayout u16(String name) {
        return ValueLayout.JAVA_SHORT.withName(name);
    }

    private static ValueLayout u32(String name) {
        return ValueLayout.JAVA_INT.withName(name);
    }

    private static ValueLayout u64(String name) {
        return ValueLayout.JAVA_LONG.withName(name);
    }

    /** _IOC(dir, KVMIO, nr, sizeof(arg)) with dir 0 none, 1 write, 2 read, 3 both. */
    private static long ioctl(String name, int direction, int nr, StructLayout argument) {
        long size = argument == null ? 0 : argument.byteSize();
        long value = ((long) direction << 30) | (size << 16) | ((long) KVMIO << 8) | nr;
        constants.put(name, value);
        ioctlNames.put(value, name);
        return value;
    }
}
