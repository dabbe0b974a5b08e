package dev.panamax.devices;

import static dev.panamax.devices.CmosRtc.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.devices.CmosRtcTest.ManualClock;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/** Saving and restoring the RTC: CMOS RAM, the index, and the guest's clock. */
class CmosRtcStateTest {
    private final ManualClock clock = new ManualClock("2024-02-29T13:45:56.500Z");

    private static int read(CmosRtc rtc, int register) {
        rtc.out(0, 1, register);
        return rtc.in(1, 1);
    }

    private static void write(CmosRtc rtc, int register, int value) {
        rtc.out(0, 1, register);
        rtc.out(1, 1, value);
    }

    private static byte[] save(CmosRtc rtc) {
        StateWriter out = new StateWriter();
        rtc.saveState(out);
        return out.toByteArray();
    }

    private static void restore(CmosRtc rtc, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        rtc.restoreState(in);
        in.end();
    }

    /** Every register as the guest reads it, then the data port with the index left as it was. */
    private static List<Integer> guestReads(CmosRtc rtc) {
        List<Integer> reads = new ArrayList<>();
        reads.add(rtc.in(1, 1)); // whatever the index the guest left selects
        for (int register = 0; register < 128; register++) {
            reads.add(read(rtc, register));
        }
        return reads;
    }

    /** An RTC the guest set to binary, 12-hour mode and to 1999-12-31 23:59:50, with NVRAM bytes and an alarm. */
    private CmosRtc setRtc() {
        CmosRtc rtc = new CmosRtc(clock);
        write(rtc, STATUS_B, B_SET | B_BINARY);
        write(rtc, CENTURY, 19);
        write(rtc, YEAR, 99);
        write(rtc, MONTH, 12);
        write(rtc, DAY_OF_MONTH, 31);
        write(rtc, HOURS, 11 | HOUR_PM);
        write(rtc, MINUTES, 59);
        write(rtc, SECONDS, 50);
        write(rtc, STATUS_B, B_BINARY);
        write(rtc, 0x01, 0x30); // alarm seconds
        write(rtc, 0x40, 0xa5); // NVRAM
        write(rtc, 0x7f, 0x5a);
        rtc.out(0, 1, 0x40);
        return rtc;
    }

    @Test
    void aRestoredRtcReadsAsSavedAndRunsOnFromTheHostClock() {
        CmosRtc saved = setRtc();
        byte[] state = save(saved);
        clock.advance(Duration.ofSeconds(15)); // the snapshot is restored a while later
        CmosRtc fresh = new CmosRtc(clock);

        restore(fresh, state);

        assertThat(guestReads(fresh)).isEqualTo(guestReads(saved));
        assertThat(read(fresh, CENTURY)).isEqualTo(20);
        assertThat(read(fresh, YEAR)).isZero();
        assertThat(read(fresh, SECONDS)).isEqualTo(5);
        assertThat(fresh.guestClockOffset()).isEqualTo(saved.guestClockOffset());
    }

    @Test
    void aGuestEditingTheTimeWithSetHeldKeepsItsEditsAcrossARestore() {
        CmosRtc saved = new CmosRtc(clock);
        write(saved, STATUS_B, B_SET | B_24_HOUR);
        write(saved, HOURS, 0x07);
        CmosRtc fresh = new CmosRtc(clock);

        restore(fresh, save(saved));

        assertThat(guestReads(fresh)).isEqualTo(guestReads(saved));
        write(fresh, STATUS_B, B_24_HOUR);
        assertThat(read(fresh, HOURS)).isEqualTo(0x07);
        assertThat(read(fresh, MINUTES)).isEqualTo(0x45);
    }

    /** A well-formed state: index, 128 bytes (status A and B as firmware leaves them, then {@code cmos}), an offset, no latch. */
    private static byte[] state(int index, Consumer<byte[]> cmos, long seconds, int nanos, Consumer<StateWriter> latch) {
        byte[] bytes = new byte[128];
        bytes[STATUS_A] = A_DIVIDER_32KHZ | 0x06;
        bytes[STATUS_B] = B_24_HOUR;
        cmos.accept(bytes);
        StateWriter out = new StateWriter().u8(index).bytes(bytes).i64(seconds).i32(nanos);
        latch.accept(out);
        return out.toByteArray();
    }

    private static byte[] state(int index, Consumer<byte[]> cmos, long seconds, int nanos) {
        return state(index, cmos, seconds, nanos, out -> out.bool(false));
    }

    private void refused(byte[] state, String message) {
        CmosRtc target = setRtc();
        List<Integer> before = guestReads(setRtc());
        assertThatThrownBy(() -> restore(target, state)).isInstanceOf(StateFormatException.class).hasMessage(message);
        assertThat(guestReads(target)).as("nothing taken").isEqualTo(before);
    }

    @Test
    void aWellFormedStateIsAccepted() {
        CmosRtc rtc = new CmosRtc(clock);
        restore(rtc, state(0x0b, b -> b[0x20] = 7, -3600, 0));
        assertThat(rtc.in(1, 1)).isEqualTo(B_24_HOUR);
        assertThat(read(rtc, HOURS)).isEqualTo(0x12);
        assertThat(read(rtc, 0x20)).isEqualTo(7);
    }

    @Test
    void anIndexPastTheRamIsRefused() {
        refused(state(0x80, b -> { }, 0, 0), "the snapshot: the index register is 0x80, past the 128 bytes of CMOS RAM");
    }

    @Test
    void ramOfAnotherSizeIsRefused() {
        byte[] state = new StateWriter().u8(0).bytes(new byte[64]).toByteArray();
        refused(state, "the snapshot: the CMOS RAM is 64 bytes, not 128");
    }

    @Test
    void bytesOfComputedRegistersAreRefused() {
        refused(state(0, b -> b[HOURS] = 0x12, 0, 0),
                "the snapshot: CMOS byte 0x04 is 0x12; the clock computes that register, and its byte is always 0");
        refused(state(0, b -> b[STATUS_C] = (byte) 0x80, 0, 0),
                "the snapshot: CMOS byte 0x0c is 0x80; the clock computes that register, and its byte is always 0");
        refused(state(0, b -> b[STATUS_A] = (byte) 0xa6, 0, 0),
                "the snapshot: status register A is 0xa6; its UIP bit is the clock's, never stored");
    }

    @Test
    void anOffsetNoGuestCanSetIsRefused() {
        refused(state(0, b -> { }, Long.MIN_VALUE, 0),
                "the snapshot: the guest's clock is -9223372036854775808 seconds from the host's, more than any date the guest can set");
        refused(state(0, b -> { }, -2025L * 366 * 86_400, 0),
                "the snapshot: the guest's clock offset of -64035360000 seconds puts it in the year -6, outside 0 to 99999");
        refused(state(0, b -> { }, 0, 1_000_000_000),
                "the snapshot: the clock offset's nanoseconds is 1000000000, outside 0 to 999999999");
    }

    @Test
    void aLatchedTimeMustGoWithTheSetBitAndBeInRange() {
        refused(state(0, b -> b[STATUS_B] = (byte) (B_SET | B_24_HOUR), 0, 0),
                "the snapshot: status register B holds updates (SET) and no latched time was saved");
        Consumer<StateWriter> latch = out -> out.bool(true).i32(0).i32(0).i32(24).i32(1).i32(1).i32(2000).i32(1);
        refused(state(0, b -> { }, 0, 0, latch),
                "the snapshot: a latched time was saved and status register B does not hold updates (SET)");
        refused(state(0, b -> b[STATUS_B] = (byte) (B_SET | B_24_HOUR), 0, 0, latch),
                "the snapshot: the latched hours is 24, outside 0 to 23");
        refused(state(0, b -> b[STATUS_B] = (byte) B_SET, 0, 0,
                out -> out.bool(true).i32(0).i32(-1).i32(0).i32(1).i32(1).i32(2000).i32(1)),
                "the snapshot: the latched minutes is -1, outside 0 to 255");
        refused(state(0, b -> b[STATUS_B] = (byte) B_SET, 0, 0, out -> out.bool(true).i32(0)),
                "the snapshot: the latched minutes is cut off (4 bytes needed, 0 left)");
        refused(state(0, b -> { }, 0, 0, out -> out.u8(2)), "the snapshot: the latched-time flag is 2, not 0 or 1");
    }

    @Test
    void aTruncatedStateIsRefused() {
        byte[] whole = state(0, b -> { }, 0, 0);
        refused(Arrays.copyOf(whole, whole.length - 3), "the snapshot: the clock offset's nanoseconds is cut off (4 bytes needed, 2 left)");
    }
}
