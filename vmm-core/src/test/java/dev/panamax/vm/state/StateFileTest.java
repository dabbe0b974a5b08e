package dev.panamax.vm.state;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StateFileTest {
    @TempDir
    Path dir;

    private static byte[] sample() {
        return new StateWriter().u8(7).bool(true).u16(0xbeef).i32(-5).i64(1L << 40).bytes(new byte[] {1, 2, 3})
                .string("serial0 ✓").i32s(new int[] {4, 5}).i64s(new long[] {6})
                .section("dev", w -> w.i32(42)).toByteArray();
    }

    @Test
    void whatIsWrittenReadsBackFieldByField() throws IOException {
        Path file = dir.resolve("state");
        StateFile.write(file, sample());
        StateReader in = StateFile.read(file);
        assertThat(in.u8("a")).isEqualTo(7);
        assertThat(in.bool("b")).isTrue();
        assertThat(in.u16("c")).isEqualTo(0xbeef);
        assertThat(in.i32("d")).isEqualTo(-5);
        assertThat(in.i64("e")).isEqualTo(1L << 40);
        assertThat(in.bytesOfSize(3, "f")).containsExactly(1, 2, 3);
        assertThat(in.string(64, "g")).isEqualTo("serial0 ✓");
        assertThat(in.i32s(2, "h")).containsExactly(4, 5);
        assertThat(in.i64s(1, "i")).containsExactly(6);
        in.section("dev", r -> assertThat(r.i32("j")).isEqualTo(42));
        in.end();
    }

    @Test
    void aHostileFileIsRefusedWithItsOwnReason() throws IOException {
        Path file = dir.resolve("state");
        StateFile.write(file, sample());
        byte[] good = Files.readAllBytes(file);

        assertThatThrownBy(() -> StateFile.parse(Arrays.copyOf(good, good.length - 3), "s"))
                .isInstanceOf(StateFormatException.class).hasMessageContaining("s is truncated");
        byte[] magic = good.clone();
        magic[0] = 'X';
        assertThatThrownBy(() -> StateFile.parse(magic, "s")).hasMessageContaining("not a Panamax snapshot state file");
        byte[] version = good.clone();
        ByteBuffer.wrap(version).putInt(8, 9);
        assertThatThrownBy(() -> StateFile.parse(version, "s")).hasMessage("s is in snapshot format version 9; this Panamax reads version " + StateFile.VERSION + " only");
        byte[] flipped = good.clone();
        flipped[good.length / 2] ^= 1;
        assertThatThrownBy(() -> StateFile.parse(flipped, "s")).hasMessageContaining("s is corrupt: its checksum");
        byte[] longer = good.clone();
        ByteBuffer.wrap(longer).putLong(12, Long.MAX_VALUE);
        assertThatThrownBy(() -> StateFile.parse(longer, "s")).hasMessageContaining("s is truncated: its header gives");
        assertThatThrownBy(() -> StateFile.parse(new byte[0], "s")).hasMessageContaining("not a Panamax snapshot state file");
    }

    @Test
    void readsCheckLengthsAndCountsBeforeAllocating() {
        byte[] hugeCount = new StateWriter().i32(Integer.MAX_VALUE).toByteArray();
        assertThatThrownBy(() -> new StateReader(hugeCount, "x").bytes(1 << 20, "blob"))
                .hasMessage("x: blob count is 2147483647, more than the 1048576 allowed");
        byte[] shortBlob = new StateWriter().i32(10).u8(1).toByteArray();
        assertThatThrownBy(() -> new StateReader(shortBlob, "x").bytes(100, "blob")).hasMessageContaining("blob is cut off");
        assertThatThrownBy(() -> new StateReader(new byte[] {2}, "x").bool("flag")).hasMessage("x: flag is 2, not 0 or 1");
        byte[] wrongSize = new StateWriter().bytes(new byte[4]).toByteArray();
        assertThatThrownBy(() -> new StateReader(wrongSize, "x").bytesOfSize(8, "regs")).hasMessage("x: regs is 4 bytes, not 8");
        byte[] section = new StateWriter().section("a", w -> w.i32(1).i32(2)).toByteArray();
        assertThatThrownBy(() -> new StateReader(section, "x").section("b", r -> { }))
                .hasMessageContaining("found section 'a' where 'b' belongs");
        assertThatThrownBy(() -> new StateReader(section, "x").section("a", r -> r.i32("one")))
                .hasMessage("section a of x: 4 bytes left over after the last field");
        assertThatThrownBy(() -> new StateReader(section, "x").section("a", r -> {
            r.i64("both");
            r.i32("past the end");
        })).hasMessageContaining("section a of x: past the end is cut off");
        byte[] notUtf8 = new StateWriter().bytes(new byte[] {(byte) 0xff}).toByteArray();
        assertThatThrownBy(() -> new StateReader(notUtf8, "x").string(10, "name")).hasMessage("x: name is not UTF-8 text");
    }
}
