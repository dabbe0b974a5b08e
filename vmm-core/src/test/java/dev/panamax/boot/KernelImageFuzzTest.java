package dev.panamax.boot;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.TmpfsTempDir;
import dev.panamax.vm.GuestMemory;
import dev.panamax.x86.E820Entry;
import dev.panamax.x86.PhysicalLayout;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;

/**
 * A kernel file made of a fuzzer's bytes, taken through what {@link LinuxBoot#prepare} does with it
 * before it needs a VM: {@link KernelImage#open} (ELF vmlinux with its PVH note, or bzImage), loading
 * it into guest RAM, and the zero page built from its setup header. A file that is not a kernel
 * Panamax can boot may only give {@link BootException}.
 */
class KernelImageFuzzTest {
    private static final long MEMORY_BYTES = PhysicalLayout.MINIMUM_MEMORY;
    private static final long LOW_END = PhysicalLayout.lowMemoryEnd(MEMORY_BYTES);
    private static final List<E820Entry> MAP = PhysicalLayout.e820(MEMORY_BYTES);
    /** Guest RAM below the MMIO hole, as a guest of the smallest size has it; pages are touched only where a kernel lands. */
    private static final GuestMemory MEMORY = new GuestMemory();
    @TempDir(factory = TmpfsTempDir.class) // a write per input: on a disk's file system, that write is most of each input's cost
    static Path dir;

    static {
        MEMORY.addRegion(0, MappedMemory.anonymous(LOW_END));
    }

    @FuzzTest
    void kernelFile(byte[] file) throws IOException {
        Path path = dir.resolve("kernel");
        Files.write(path, file);
        KernelImage kernel;
        try {
            kernel = KernelImage.open(path);
            kernel.load(MEMORY, LOW_END);
        } catch (BootException refused) {
            return;
        }
        assertThat(kernel.loadEnd()).isGreaterThan(PhysicalLayout.KERNEL_LOAD).isLessThanOrEqualTo(LOW_END);
        assertThat(kernel.commandLineLimit()).isNotNegative();
        BootParams params = kernel.newBootParams();
        params.setCommandLine(PhysicalLayout.COMMAND_LINE);
        params.setInitrd(0, 0);
        params.setMemoryMap(MAP);
        assertThat(params.bytes()).hasSize(BootParams.SIZE);
    }
}
