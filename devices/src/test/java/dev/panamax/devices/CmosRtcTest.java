package dev.panamax.devices;

import static dev.panamax.devices.CmosRtc.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import org.junit.jupiter.api.Test;

class CmosRtcTest {

    /** A clock the test moves by hand. */
    static final class ManualClock extends Clock {
        Instant now;

        ManualClock(String instant) {
            now = Instant.parse(instant);
        }

        void advance(Duration d) {
            now = now.plus(d);
        }

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Instant instant() {
            return now;
        }
    }

    private final ManualClock clock = new ManualClock("2024-02-29T13:45:56.500Z"); // a Thursday
    private final CmosRtc rtc = new CmosRtc(clock);

    private int read(int register) {
        rtc.out(0, 1, register);
        return rtc.in(1, 1);
    }

    private void write(int register, int value) {
        rtc.out(0, 1, register);
        rtc.out(1, 1, value);
    }

    @Test
    void timeReadsAsBcdIn24HourModeByDefault() {
        assertThat(read(STATUS_B) & (B_BINARY | B_24_HOUR)).isEqualTo(B_24_HOUR);
        assertThat(read(SECONDS)).isEqualTo(0x56);
        assertThat(read(MINUTES)).isEqualTo(0x45);
        assertThat(read(HOURS)).isEqualTo(0x13);
        assertThat(read(WEEKDAY)).as("Sunday = 1, so Thursday = 5").isEqualTo(5);
        assertThat(read(DAY_OF_MONTH)).isEqualTo(0x29);
        assertThat(read(MONTH)).isEqualTo(0x02);
        assertThat(read(YEAR)).isEqualTo(0x24);
        assertThat(read(CENTURY)).isEqualTo(0x20);
    }

    @Test
    void binaryModeAndTwelveHourModeChangeTheEncoding() {
        write(STATUS_B, B_BINARY | B_24_HOUR);
        assertThat(read(SECONDS)).isEqualTo(56);
        assertThat(read(HOURS)).isEqualTo(13);
        assertThat(read(YEAR)).isEqualTo(24);
        assertThat(read(CENTURY)).isEqualTo(20);

        write(STATUS_B, 0); // BCD, 12-hour
        assertThat(read(HOURS)).isEqualTo(HOUR_PM | 0x01);
        clock.now = Instant.parse("2024-02-29T00:10:00Z");
        assertThat(read(HOURS)).as("midnight is 12 AM").isEqualTo(0x12);
        clock.now = Instant.parse("2024-02-29T12:10:00Z");
        assertThat(read(HOURS)).as("noon is 12 PM").isEqualTo(HOUR_PM | 0x12);
        write(STATUS_B, B_BINARY);
        assertThat(read(HOURS)).isEqualTo(HOUR_PM | 12);
    }

    @Test
    void theTimeFollowsTheHostClock() {
        clock.advance(Duration.ofSeconds(3));
        assertThat(read(SECONDS)).isEqualTo(0x59);
        clock.advance(Duration.ofSeconds(1));
        assertThat(read(SECONDS)).isZero();
        assertThat(read(MINUTES)).isEqualTo(0x46);
    }

    @Test
    void uipIsSetJustBeforeEachUpdate() {
        assertThat(read(STATUS_A)).isEqualTo(0x26);
        clock.now = Instant.parse("2024-02-29T13:45:56.999900Z");
        assertThat(read(STATUS_A) & A_UIP).isNotZero();
        clock.now = Instant.parse("2024-02-29T13:45:57.000100Z");
        assertThat(read(STATUS_A) & A_UIP).isZero();
        write(STATUS_A, 0xFF);
        assertThat(read(STATUS_A)).as("UIP is read-only").isEqualTo(0x7F);
    }

    @Test
    void statusRegistersCAndDReportNoInterruptsAndAGoodBattery() {
        assertThat(read(STATUS_C)).isZero();
        assertThat(read(STATUS_D)).isEqualTo(D_VRT);
        write(STATUS_D, 0);
        write(STATUS_C, 0xFF);
        assertThat(read(STATUS_D)).isEqualTo(D_VRT);
        assertThat(read(STATUS_C)).isZero();
    }

    /** Linux's mc146818_set_time: SET, then year, month, day, hours, minutes, seconds, then clear SET. */
    @Test
    void settingTheTimeUnderSetMovesTheGuestClockAndKeepsItRunning() {
        clock.now = Instant.parse("2025-03-31T10:00:00Z");
        int b = read(STATUS_B);
        write(STATUS_B, b | B_SET);
        write(YEAR, 0x25);
        write(MONTH, 0x02); // 31 February for a moment: must not be rejected yet
        write(DAY_OF_MONTH, 0x28);
        write(HOURS, 0x23);
        write(MINUTES, 0x59);
        write(SECONDS, 0x30);
        assertThat(read(MONTH)).as("reads show the latched values").isEqualTo(0x02);
        clock.advance(Duration.ofSeconds(5));
        assertThat(read(SECONDS)).as("frozen while SET").isEqualTo(0x30);
        write(STATUS_B, b);
        assertThat(rtc.rejectedWrites()).isZero();
        clock.advance(Duration.ofSeconds(31));
        assertThat(read(SECONDS)).isEqualTo(0x01);
        assertThat(read(MINUTES)).isZero();
        assertThat(read(HOURS)).isZero();
        assertThat(read(DAY_OF_MONTH)).isEqualTo(0x01);
        assertThat(read(MONTH)).isEqualTo(0x03);
        assertThat(read(YEAR)).isEqualTo(0x25);
        // Set 2025-02-28T23:59:30 when the host read 2025-03-31T10:00:05.
        assertThat(rtc.guestClockOffset()).isEqualTo(Duration.ofDays(30).plusHours(10).plusSeconds(35).negated());
    }

    @Test
    void aSingleFieldWriteWithoutSetAppliesAtOnce() {
        write(MINUTES, 0x10);
        assertThat(read(MINUTES)).isEqualTo(0x10);
        assertThat(read(HOURS)).isEqualTo(0x13);
        assertThat(read(SECONDS)).isEqualTo(0x56);
        assertThat(rtc.guestClockOffset()).isEqualTo(Duration.ofMinutes(-35));
        write(CENTURY, 0x21);
        assertThat(read(YEAR)).isEqualTo(0x24);
        assertThat(read(CENTURY)).isEqualTo(0x21);
    }

    @Test
    void invalidTimeWritesAreIgnoredAndCounted() {
        write(SECONDS, 0x7A); // not BCD
        write(HOURS, 0x24); // no hour 24
        write(DAY_OF_MONTH, 0x30); // 30 February
        write(STATUS_B, B_SET | B_24_HOUR);
        write(MONTH, 0x13);
        write(STATUS_B, B_24_HOUR);
        assertThat(rtc.rejectedWrites()).isEqualTo(4);
        assertThat(rtc.guestClockOffset()).isEqualTo(Duration.ZERO);
        assertThat(read(SECONDS)).isEqualTo(0x56);
    }

    @Test
    void twelveHourWritesAreDecoded() {
        write(STATUS_B, 0);
        write(HOURS, HOUR_PM | 0x12);
        write(STATUS_B, B_24_HOUR);
        assertThat(read(HOURS)).isEqualTo(0x12);
        write(STATUS_B, 0);
        write(HOURS, 0x00); // 12-hour clocks have no hour 0
        assertThat(rtc.rejectedWrites()).isEqualTo(1);
    }

    @Test
    void otherBytesAreStorageAndTheNmiBitIsIgnored() {
        for (int i = 0x0E; i < 0x80; i++) {
            if (i != CENTURY) {
                write(i | 0x80, i ^ 0x5A);
            }
        }
        for (int i = 0x0E; i < 0x80; i++) {
            if (i != CENTURY) {
                assertThat(read(i)).isEqualTo(i ^ 0x5A);
            }
        }
        assertThat(rtc.in(0, 1)).as("index port is write-only").isEqualTo(0xFF);
        rtc.out(2, 4, 0x12345678); // outside the device: ignored
        assertThat(rtc.in(5, 1)).isEqualTo(0xFF);
    }
}
