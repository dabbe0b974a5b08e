package dev.panamax.vm;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.boot.LinuxBoot;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * The sections of a snapshot's state file that are read before KVM is asked for anything, from a
 * fuzzer's bytes: the memory section (map of the memory file, and a diff's dirty page bitmaps) as a
 * restore reads it, and a vCPU's section. A malformed section may only give {@link StateFormatException}.
 */
class SnapshotSectionsFuzzTest {
    /** The XSAVE area KVM uses without AMX: 4 KiB. */
    private static final int XSAVE_SIZE = 4096;
    /** A few MSRs a host's KVM saves: TSC, SYSENTER, EFER, STAR, LSTAR, KERNEL_GS_BASE. */
    private static final Set<Integer> KNOWN_MSRS = Set.of(0x10, 0x174, 0x175, 0x176, 0xc0000080, 0xc0000081, 0xc0000082, 0xc0000102);

    /**
     * A 5-byte header, then the memory section as VmSnapshot writes it:
     * <pre>
     *   u8     guest memory: 32 MiB &lt;&lt; (b &amp; 7), up to 4 GiB (RAM on both sides of the MMIO hole)
     *   be32   the memory file's length in pages
     * </pre>
     */
    @FuzzTest
    void memorySection(byte[] input) {
        if (input.length < 5) {
            return;
        }
        long memoryBytes = (32L << 20) << (input[0] & 7);
        long memoryFileLength = Integer.toUnsignedLong(ByteBuffer.wrap(input, 1, 4).getInt()) * 4096;
        List<MemoryMap.RamRange> layout = LinuxBoot.memoryRegions(memoryBytes).stream()
                .map(r -> new MemoryMap.RamRange(r.address(), r.size())).toList();
        StateReader section = new StateReader(Arrays.copyOfRange(input, 5, input.length), "memory section");
        try {
            boolean diff = section.bool("diff memory");
            MemoryMap map = MemoryMap.readState(section, layout, memoryFileLength);
            if (diff) {
                DirtyPages.readState(section, map);
            }
            section.end();
        } catch (StateFormatException refused) {
            // the documented answer to a malformed section
        }
    }

    @FuzzTest
    void vcpuSection(byte[] input) {
        StateReader section = new StateReader(input, "vcpu section");
        try {
            Vcpu.readState(section, XSAVE_SIZE, KNOWN_MSRS);
            section.end();
        } catch (StateFormatException refused) {
            // the documented answer to a malformed section
        }
    }
}
