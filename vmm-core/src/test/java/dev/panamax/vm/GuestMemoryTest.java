package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.MappedMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class GuestMemoryTest {

    @Test
    void valuesAreLittleEndianAndVisibleThroughSlices() {
        try (GuestMemory memory = new GuestMemory()) {
            memory.addRegion(0x1000, MappedMemory.anonymous(0x2000));
            memory.writeLong(0x1ff8, 0x0102030405060708L);
            assertThat(memory.readByte(0x1ff8)).isEqualTo((byte) 0x08);
            assertThat(memory.readInt(0x1ffc)).isEqualTo(0x01020304);
            MemorySegment slice = memory.slice(0x1ff8, 8);
            slice.set(ValueLayout.JAVA_BYTE, 7, (byte) 0x7f);
            assertThat(memory.readLong(0x1ff8)).isEqualTo(0x7f02030405060708L);
        }
    }

    @Test
    void accessesOutsideEveryRegionThrowWithoutTouchingHostMemory() {
        try (GuestMemory memory = new GuestMemory()) {
            memory.addRegion(0, MappedMemory.anonymous(0x1000));
            memory.addRegion(0x2000, MappedMemory.anonymous(0x1000));
            assertThatThrownBy(() -> memory.readInt(0xffe)).isInstanceOf(GuestMemoryException.class); // straddles the end
            assertThatThrownBy(() -> memory.readByte(0x1000)).isInstanceOf(GuestMemoryException.class); // the hole
            assertThatThrownBy(() -> memory.slice(0xf00, 0x1200)).isInstanceOf(GuestMemoryException.class); // spans two regions
            assertThatThrownBy(() -> memory.readByte(-1)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> memory.slice(0x2000, Long.MAX_VALUE)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> memory.slice(Long.MAX_VALUE - 4, 16)).isInstanceOf(GuestMemoryException.class); // would overflow
            assertThatThrownBy(() -> memory.slice(0x2000, -1)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> memory.write(0x2ff0, new byte[32]))
                    .isInstanceOf(GuestMemoryException.class)
                    .hasMessageContaining("0x2ff0");
            assertThat(memory.contains(0x2000, 0x1000)).isTrue();
            assertThat(memory.contains(0x2000, 0x1001)).isFalse();
        }
    }

    @Test
    void overlappingRegionsAreRejected() {
        try (GuestMemory memory = new GuestMemory()) {
            memory.addRegion(0x10000, MappedMemory.anonymous(0x10000));
            try (MappedMemory overlapping = MappedMemory.anonymous(0x2000)) {
                assertThatThrownBy(() -> memory.addRegion(0x1f000, overlapping))
                        .isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("overlaps");
            }
            assertThat(memory.regions()).hasSize(1);
        }
    }

    @Test
    void slicesStopWorkingOnceTheMemoryIsClosed() {
        GuestMemory memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.memfd("test", 0x1000));
        MemorySegment slice = memory.slice(0, 16);
        memory.close();
        assertThatThrownBy(() -> slice.get(ValueLayout.JAVA_BYTE, 0)).isInstanceOf(IllegalStateException.class);
    }
}
