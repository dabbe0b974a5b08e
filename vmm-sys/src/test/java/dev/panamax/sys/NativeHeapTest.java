package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class NativeHeapTest {
    private static final int CHUNKS = 40_000;
    private static final int CHUNK_BYTES = 1024;

    /**
     * Native chunks freed between chunks still held stay resident in their arena (free() returns
     * only an arena's top to the kernel); a trim gives their pages back.
     */
    @Test
    void aTrimReturnsThePagesOfChunksFreedBetweenHeldOnes() throws Exception {
        List<Arena> chunks = new ArrayList<>(CHUNKS);
        long address = 0;
        for (int i = 0; i < CHUNKS; i++) {
            Arena a = Arena.ofConfined();
            long at = a.allocate(CHUNK_BYTES).fill((byte) 1).address(); // touched: resident
            if (i == CHUNKS / 2) address = at;
            chunks.add(a);
        }
        List<Arena> held = new ArrayList<>();
        for (int i = 0; i < CHUNKS; i++) {
            if (i % 16 == 0 || i == CHUNKS / 2) held.add(chunks.get(i));
            else chunks.get(i).close();
        }
        long before = ProcSelf.residentKib(address);

        assertThat(NativeHeap.trim()).as("glibc has malloc_trim").isTrue();

        long after = ProcSelf.residentKib(address);
        assertThat(after).as("resident KiB of the arena's mapping, %d before the trim", before)
                .isLessThan(before - CHUNKS * (long) CHUNK_BYTES / 1024 / 2);
        held.forEach(Arena::close);
    }
}
