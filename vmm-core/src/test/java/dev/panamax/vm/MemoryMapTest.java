package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A memory map read from a snapshot: every field checked before anything is mapped. */
class MemoryMapTest {
    private static final long MIB = 1L << 20;
    /** Like a Linux guest's: 64 MiB low, the reset vector page in the MMIO hole. */
    private static final List<MemoryMap.RamRange> LAYOUT = List.of(new MemoryMap.RamRange(0, 64 * MIB),
            new MemoryMap.RamRange(0xffff_f000L, 0x1000));
    private static final long FILE = 64 * MIB + 0x1000;

    /** A map state of regions given as {guest address, size, file offset}. */
    private static StateReader state(long[]... regions) {
        StateWriter out = new StateWriter();
        out.i32(regions.length);
        for (long[] r : regions) {
            out.i64(r[0]).i64(r[1]).i64(r[2]);
        }
        return new StateReader(out.toByteArray(), "the snapshot");
    }

    private static MemoryMap read(long[]... regions) {
        return MemoryMap.readState(state(regions), LAYOUT, FILE);
    }

    @Test
    void aMapRoundTripsThroughItsState() {
        MemoryMap map = new MemoryMap(List.of(new MemoryMap.Entry(0, 64 * MIB, 0), new MemoryMap.Entry(0xffff_f000L, 0x1000, 64 * MIB)));
        StateWriter out = new StateWriter();
        map.saveState(out);
        StateReader in = new StateReader(out.toByteArray(), "the snapshot");

        assertThat(MemoryMap.readState(in, LAYOUT, FILE)).isEqualTo(map);
        in.end();
        assertThat(map.fileSize()).isEqualTo(FILE);
        assertThat(map.memorySize()).isEqualTo(FILE);
    }

    @Test
    void theRegionsMayLieAnywhereInTheFileWithoutOverlapping() {
        MemoryMap map = read(new long[] {0, 64 * MIB, 0x1000}, new long[] {0xffff_f000L, 0x1000, 0});
        assertThat(map.entries()).extracting(MemoryMap.Entry::fileOffset).containsExactly(0x1000L, 0L);
    }

    private static void refused(String message, long[]... regions) {
        assertThatThrownBy(() -> read(regions)).isInstanceOf(StateFormatException.class).hasMessageStartingWith("the snapshot: ")
                .hasMessageContaining(message);
    }

    @Test
    void tooManyRegionsAreRefusedBeforeAnyIsRead() {
        StateWriter out = new StateWriter().i32(65);
        assertThatThrownBy(() -> MemoryMap.readState(new StateReader(out.toByteArray(), "the snapshot"), LAYOUT, FILE))
                .hasMessageContaining("memory region count is 65, more than the 64 allowed");
        refused("the memory map has no regions");
    }

    @Test
    void unalignedAddressesSizesAndOffsetsAreRefused() {
        refused("memory region 0 starts at guest address 0x800, not on a page boundary", new long[] {0x800, 64 * MIB, 0});
        refused("memory region 0 is 0x3fff800 bytes, not a positive number of whole pages", new long[] {0, 64 * MIB - 0x800, 0});
        refused("memory region 0 is 0x0 bytes", new long[] {0, 0, 0});
        refused("memory region 0 is 0xfffffffffffff000 bytes", new long[] {0, -0x1000, 0});
        refused("memory region 1 is at memory file offset 0x4000010, not on a page boundary", new long[] {0, 64 * MIB, 0},
                new long[] {0xffff_f000L, 0x1000, 64 * MIB + 0x10});
    }

    @Test
    void aRegionPastTheEndOfTheMemoryFileIsRefused() {
        refused("memory region 1 lies at [0x4001000, 0x4002000) of the memory file, which is only 0x4001000 bytes",
                new long[] {0, 64 * MIB, 0}, new long[] {0xffff_f000L, 0x1000, 64 * MIB + 0x1000});
        refused("memory region 0 lies at [0x7ffffffffffff000, 0x8000000003fff000)", new long[] {0, 64 * MIB, Long.MAX_VALUE - 0xfff});
    }

    @Test
    void overlappingRegionsAreRefused() {
        refused("memory region 1 [0x3fff000, 0x4000000) at file offset 0x4000000 starts before region 0 [0x0, 0x4000000) at file offset 0x0 ends",
                new long[] {0, 64 * MIB, 0}, new long[] {64 * MIB - 0x1000, 0x1000, 64 * MIB});
        refused("memory regions 0 [0x0, 0x4000000) at file offset 0x0 and 1 [0xfffff000, 0x100000000) at file offset 0x3fff000 overlap in the memory file",
                new long[] {0, 64 * MIB, 0}, new long[] {0xffff_f000L, 0x1000, 64 * MIB - 0x1000});
    }

    @Test
    void aRegionOutsideTheLayoutsRamIsRefused() {
        refused("memory region 1 [0xc0000000, 0xc0001000) at file offset 0x4000000 is not inside this VM's guest RAM "
                + "[0x0, 0x4000000), [0xfffff000, 0x100000000)", new long[] {0, 64 * MIB, 0}, new long[] {0xc000_0000L, 0x1000, 64 * MIB});
        refused("memory region 0 [0x0, 0x4001000) at file offset 0x0 is not inside", new long[] {0, 64 * MIB + 0x1000, 0});
    }

    @Test
    void sizesThatDoNotSumToTheVmsMemoryAreRefused() {
        refused("the memory map's regions hold 67108864 bytes of guest memory; this VM has 67112960", new long[] {0, 64 * MIB, 0});
        refused("the memory map's regions hold 33558528 bytes", new long[] {0, 32 * MIB, 0}, new long[] {0xffff_f000L, 0x1000, 32 * MIB});
    }

    @Test
    void aTruncatedMapIsRefused() {
        byte[] whole = new StateWriter().i32(1).i64(0).i64(64 * MIB).toByteArray();
        assertThatThrownBy(() -> MemoryMap.readState(new StateReader(whole, "the snapshot"), LAYOUT, FILE))
                .hasMessageContaining("memory region 0 file offset is cut off");
    }
}
