package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.sys.MappedMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;

/** The pages Panamax's own devices write, which KVM's dirty log cannot see. */
class GuestMemoryTrackingTest {
    private static final long BASE = 0x10000;
    private static final long PAGES = 70; // more than one bitmap word

    private static GuestMemory memory() {
        GuestMemory memory = new GuestMemory();
        memory.addRegion(BASE, MappedMemory.anonymous(PAGES * 4096));
        memory.addRegion(0x100000, MappedMemory.anonymous(4096));
        return memory;
    }

    /** The guest addresses of the pages {@code pages} marks. */
    private static List<Long> dirtyPages(DirtyPages pages) {
        return pages.ranges().stream().flatMap(r -> LongStream.range(0, r.pages()).filter(r::isDirty)
                .mapToObj(p -> r.guestAddress() + p * 4096)).toList();
    }

    private static List<Long> pagesWrittenBy(Consumer<GuestMemory> write) {
        try (GuestMemory memory = memory()) {
            memory.startTracking();
            write.accept(memory);
            return dirtyPages(memory.takeWrittenPages());
        }
    }

    @Test
    void everyWriteMarksThePagesItTouches() {
        assertThat(pagesWrittenBy(m -> m.writeByte(BASE + 0x41fff, (byte) 1))).containsExactly(BASE + 0x41000);
        assertThat(pagesWrittenBy(m -> m.writeShort(BASE + 0x1fff, (short) 1))).containsExactly(BASE + 0x1000, BASE + 0x2000);
        assertThat(pagesWrittenBy(m -> m.writeInt(0x100000, 1))).containsExactly(0x100000L);
        assertThat(pagesWrittenBy(m -> m.writeLong(BASE + 0x3fffc, 1))).containsExactly(BASE + 0x3f000, BASE + 0x40000);
        assertThat(pagesWrittenBy(m -> m.write(BASE + 0x3000, new byte[0x2001]))).containsExactly(BASE + 0x3000, BASE + 0x4000,
                BASE + 0x5000);
        assertThat(pagesWrittenBy(m -> m.write(BASE + 0x3000, new byte[8], 0, 0))).isEmpty();
    }

    @Test
    void releasedPagesReadAsZerosAndAreMarkedAsWritten() {
        try (GuestMemory memory = memory()) {
            memory.writeLong(BASE + 0x5000, -1);
            memory.writeLong(BASE + 0x7000, -1);
            memory.startTracking();

            memory.release(BASE + 0x5000, 0x2000);

            assertThat(dirtyPages(memory.takeWrittenPages())).containsExactly(BASE + 0x5000, BASE + 0x6000);
            assertThat(memory.readLong(BASE + 0x5000)).isZero();
            assertThat(memory.readLong(BASE + 0x7000)).isEqualTo(-1);
            assertThatThrownBy(() -> memory.release(BASE + PAGES * 4096 - 0x1000, 0x2000)).isInstanceOf(GuestMemoryException.class);
            assertThatThrownBy(() -> memory.release(BASE + 0x10, 0x1000)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void aWritableSliceIsMarkedWhenHandedOutAndAReadOnlyOneIsNot() {
        assertThat(pagesWrittenBy(m -> m.slice(BASE + 0x7ff0, 0x20))).containsExactly(BASE + 0x7000, BASE + 0x8000);
        assertThat(pagesWrittenBy(m -> {
            MemorySegment view = m.readOnlySlice(BASE, 0x3000);
            assertThat(view.isReadOnly()).isTrue();
            m.read(BASE + 0x9000, new byte[16], 0, 16);
            m.readLong(BASE + 0xa000);
        })).isEmpty();
    }

    @Test
    void aTakeStartsOverAndNothingIsMarkedWhileTrackingIsOff() {
        try (GuestMemory memory = memory()) {
            memory.writeByte(BASE, (byte) 1);
            memory.startTracking();
            assertThat(dirtyPages(memory.takeWrittenPages())).as("a write before tracking started").isEmpty();
            memory.writeByte(BASE + 0x5000, (byte) 1);
            assertThat(dirtyPages(memory.takeWrittenPages())).containsExactly(BASE + 0x5000);
            assertThat(dirtyPages(memory.takeWrittenPages())).as("the second take").isEmpty();
            memory.writeByte(BASE + 0x7000, (byte) 1); // marked, and never taken
            memory.stopTracking();
            memory.writeByte(BASE + 0x6000, (byte) 1);
            assertThatThrownBy(memory::takeWrittenPages).isInstanceOf(IllegalStateException.class).hasMessageContaining("not being tracked");
            memory.startTracking();
            assertThat(dirtyPages(memory.takeWrittenPages())).as("writes before tracking started again").isEmpty();
        }
    }

    @Test
    void aRetainedSliceIsMarkedAtEveryTakeWhileItsHolderKeepsIt() {
        try (GuestMemory memory = memory()) {
            MemorySegment usedRing = memory.retainedSlice(BASE + 0x2000, 0x100); // before tracking, as a queue set up at boot
            memory.startTracking();
            usedRing.set(ValueLayout.JAVA_SHORT, 2, (short) 7); // a device's write, not through GuestMemory
            assertThat(dirtyPages(memory.takeWrittenPages())).containsExactly(BASE + 0x2000);
            assertThat(dirtyPages(memory.takeWrittenPages())).as("the next take").containsExactly(BASE + 0x2000);
            assertThat(usedRing.byteSize()).isEqualTo(0x100);
        }
    }

    @Test
    void retainedSlicesTheirHoldersDroppedAreForgotten() throws InterruptedException {
        try (GuestMemory memory = memory()) {
            for (int i = 0; i < 10_000; i++) {
                memory.retainedSlice(BASE + 0x2000, 0x100); // a driver that resets its device in a loop: new rings each time
            }
            MemorySegment kept = memory.retainedSlice(BASE + 0x3000, 0x100);
            // The collector clears the dropped ones and queues them in its own time: ask until it has.
            for (int i = 0; i < 100 && memory.retainedSliceCount() > 2; i++) {
                System.gc();
                Thread.sleep(20);
                memory.retainedSlice(BASE + 0x4000, 0x100);
            }
            assertThat(memory.retainedSliceCount()).as("retained slices still listed").isLessThanOrEqualTo(2);
            memory.startTracking();
            assertThat(dirtyPages(memory.takeWrittenPages())).as("the kept one is still marked").contains(BASE + 0x3000);
            assertThat(kept.byteSize()).isEqualTo(0x100);
        }
    }

    @Test
    void theBitmapCoversEveryRegionWithItsOwnSize() {
        try (GuestMemory memory = memory()) {
            memory.startTracking();
            DirtyPages pages = memory.takeWrittenPages();
            assertThat(pages.ranges()).extracting(DirtyPages.Range::guestAddress).containsExactly(BASE, 0x100000L);
            assertThat(pages.ranges()).extracting(DirtyPages.Range::pages).containsExactly(PAGES, 1L);
            assertThat(pages.ranges().getFirst().bitmap()).hasSize(2);
            assertThat(pages.count()).isZero();
        }
    }
}
