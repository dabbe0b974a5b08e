package dev.panamax.devices;

import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.time.Clock;
import java.time.DateTimeException;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.Objects;

/**
 * The MC146818-style CMOS RTC at ports 0x70 (index; bit 7, NMI disable, is ignored) and 0x71
 * (data), as Linux's {@code mc146818_get_time}/{@code rtc-cmos} read it.
 *
 * <p>The time registers show the host clock in UTC plus an offset, in the format status register
 * B selects (BCD or binary, 24- or 12-hour). A guest that sets the time moves that offset: with
 * the SET bit of register B raised, writes are latched and applied together when SET drops (so
 * the order in which the fields are written cannot make an invalid intermediate date); without
 * SET, each field write applies at once. Writes of invalid values (bad BCD, February 30) are
 * ignored and counted. UIP in status register A is set during the last 244 µs of each second,
 * as on hardware. Status D reports a good battery (VRT).
 *
 * <p>No interrupts: the periodic, alarm and update-ended interrupts are never raised and
 * register C always reads 0. Every other one of the 128 bytes is plain storage.
 *
 * <p>Saved state keeps the guest's offset from the host clock, not the time it showed: after a
 * restore the RTC runs on from the restoring host's clock, as a real RTC keeps time while the
 * machine is off, so a snapshot restored a day later reads a day later.
 */
public final class CmosRtc implements PortIoDevice, Stateful {

    public static final int PORT = 0x70;
    public static final int PORT_COUNT = 2;

    static final int SECONDS = 0x00;
    static final int MINUTES = 0x02;
    static final int HOURS = 0x04;
    static final int WEEKDAY = 0x06;
    static final int DAY_OF_MONTH = 0x07;
    static final int MONTH = 0x08;
    static final int YEAR = 0x09;
    static final int STATUS_A = 0x0A;
    static final int STATUS_B = 0x0B;
    static final int STATUS_C = 0x0C;
    static final int STATUS_D = 0x0D;
    static final int CENTURY = 0x32;

    static final int A_UIP = 0x80;
    static final int A_DIVIDER_32KHZ = 0x20;
    static final int A_DIVIDER_MASK = 0x70;
    static final int B_SET = 0x80;
    static final int B_BINARY = 0x04;
    static final int B_24_HOUR = 0x02;
    static final int HOUR_PM = 0x80;
    static final int D_VRT = 0x80;

    /** UIP rises this long before each second's update. */
    static final long UIP_NANOS = 244_000;

    /** The registers the clock computes: their bytes in {@link #cmos} are never written, and stay 0. */
    private static final int[] COMPUTED = {SECONDS, MINUTES, HOURS, WEEKDAY, DAY_OF_MONTH, MONTH, YEAR, CENTURY, STATUS_C, STATUS_D};
    /** Far beyond any date the guest can set (century 255 in binary mode is year 25599), short of overflowing an Instant. */
    private static final long MAX_OFFSET_SECONDS = 100_000L * 366 * 86_400;
    private static final int MAX_YEAR = 99_999;
    private static final String[] FIELD_NAMES = {"seconds", "minutes", "hours", "day of month", "month", "year", "weekday"};

    // Indices into a time field array.
    private static final int F_SECOND = 0;
    private static final int F_MINUTE = 1;
    private static final int F_HOUR = 2;
    private static final int F_DAY = 3;
    private static final int F_MONTH = 4;
    private static final int F_YEAR = 5;
    private static final int F_WEEKDAY = 6;

    private final Clock clock;
    // Guarded by `this`.
    private final byte[] cmos = new byte[128];
    private int index;
    private Duration offset = Duration.ZERO; // guest time minus host time
    private int[] latched; // the fields while SET is raised, else null
    private long rejectedWrites;

    /** An RTC on the host's UTC clock. */
    public CmosRtc() {
        this(Clock.systemUTC());
    }

    public CmosRtc(Clock clock) {
        this.clock = Objects.requireNonNull(clock, "clock");
        cmos[STATUS_A] = A_DIVIDER_32KHZ | 0x06; // 32.768 kHz time base, 1024 Hz periodic rate
        cmos[STATUS_B] = B_24_HOUR; // BCD, 24-hour: what firmware leaves
    }

    @Override
    public synchronized int in(int offset, int size) {
        if (offset != 1) {
            return 0xFF; // the index register is write-only
        }
        return switch (index) {
            case SECONDS, MINUTES, HOURS, WEEKDAY, DAY_OF_MONTH, MONTH, YEAR, CENTURY -> readTime(index);
            case STATUS_A -> (cmos[STATUS_A] & ~A_UIP & 0xFF) | (updateInProgress() ? A_UIP : 0);
            case STATUS_C -> 0; // no interrupt flags: nothing ever raises them
            case STATUS_D -> D_VRT;
            default -> cmos[index] & 0xFF;
        };
    }

    @Override
    public synchronized void out(int offset, int size, int value) {
        int b = value & 0xFF;
        if (offset == 0) {
            index = b & 0x7F;
            return;
        }
        if (offset != 1) {
            return;
        }
        switch (index) {
            case SECONDS, MINUTES, HOURS, WEEKDAY, DAY_OF_MONTH, MONTH, YEAR, CENTURY -> writeTime(index, b);
            case STATUS_A -> cmos[STATUS_A] = (byte) (b & ~A_UIP); // UIP is read-only
            case STATUS_B -> writeStatusB(b);
            case STATUS_C, STATUS_D -> { } // read-only
            default -> cmos[index] = (byte) b;
        }
    }

    /**
     * Writes the index register, the 128 bytes of CMOS RAM (status A and B, the alarm and the
     * NVRAM; the computed registers' bytes are 0), the guest's offset from the host clock (seconds,
     * then nanoseconds), and, while status B's SET bit holds updates, the fields the guest is
     * editing (second, minute, hour, day, month, year, weekday).
     */
    @Override
    public synchronized void saveState(StateWriter out) {
        out.u8(index).bytes(cmos).i64(offset.getSeconds()).i32(offset.getNano()).bool(latched != null);
        if (latched != null) {
            for (int field : latched) {
                out.i32(field);
            }
        }
    }

    /**
     * Takes the RTC's state after checking it: the index inside the 128 bytes, the computed
     * registers' bytes 0 and UIP clear, the offset such that the guest's clock reads a year from 0
     * to {@value #MAX_YEAR} now, and the latched fields there exactly when SET is, each in the
     * range a guest write can give it.
     */
    @Override
    public void restoreState(StateReader in) {
        int savedIndex = in.u8("the index register");
        byte[] savedCmos = in.bytesOfSize(cmos.length, "the CMOS RAM");
        long seconds = in.i64("the clock offset's seconds");
        int nanos = in.i32In(0, 999_999_999, "the clock offset's nanoseconds");
        boolean editing = in.bool("the latched-time flag");
        int[] savedLatched = null;
        if (editing) {
            savedLatched = new int[FIELD_NAMES.length];
            for (int f = 0; f < savedLatched.length; f++) {
                savedLatched[f] = in.i32("the latched " + FIELD_NAMES[f]);
            }
        }
        if (savedIndex > 0x7F) {
            throw in.fail(String.format("the index register is 0x%02x, past the 128 bytes of CMOS RAM", savedIndex));
        }
        for (int register : COMPUTED) {
            if (savedCmos[register] != 0) {
                throw in.fail(String.format("CMOS byte 0x%02x is 0x%02x; the clock computes that register, and its byte is always 0",
                        register, savedCmos[register] & 0xFF));
            }
        }
        if ((savedCmos[STATUS_A] & A_UIP) != 0) {
            throw in.fail(String.format("status register A is 0x%02x; its UIP bit is the clock's, never stored",
                    savedCmos[STATUS_A] & 0xFF));
        }
        if (seconds < -MAX_OFFSET_SECONDS || seconds > MAX_OFFSET_SECONDS) {
            throw in.fail("the guest's clock is " + seconds + " seconds from the host's, more than any date the guest can set");
        }
        Duration savedOffset = Duration.ofSeconds(seconds, nanos);
        int year = LocalDateTime.ofInstant(clock.instant().plus(savedOffset), ZoneOffset.UTC).getYear();
        if (year < 0 || year > MAX_YEAR) {
            throw in.fail("the guest's clock offset of " + seconds + " seconds puts it in the year " + year + ", outside 0 to " + MAX_YEAR);
        }
        boolean set = (savedCmos[STATUS_B] & B_SET) != 0;
        if (editing != set) {
            throw in.fail(set ? "status register B holds updates (SET) and no latched time was saved"
                    : "a latched time was saved and status register B does not hold updates (SET)");
        }
        if (savedLatched != null) {
            for (int f = 0; f < savedLatched.length; f++) {
                int max = f == F_HOUR ? 23 : f == F_YEAR ? MAX_YEAR : 255;
                if (savedLatched[f] < 0 || savedLatched[f] > max) {
                    throw in.fail("the latched " + FIELD_NAMES[f] + " is " + savedLatched[f] + ", outside 0 to " + max);
                }
            }
        }
        synchronized (this) {
            index = savedIndex;
            System.arraycopy(savedCmos, 0, cmos, 0, cmos.length);
            offset = savedOffset;
            latched = savedLatched;
        }
    }

    /** Guest writes of time values that were invalid and ignored. */
    public synchronized long rejectedWrites() {
        return rejectedWrites;
    }

    /** How far the guest has set its clock from the host's. */
    public synchronized Duration guestClockOffset() {
        return offset;
    }

    private LocalDateTime guestNow() {
        return LocalDateTime.ofInstant(clock.instant().plus(offset), ZoneOffset.UTC);
    }

    private boolean updateInProgress() {
        boolean running = (cmos[STATUS_A] & A_DIVIDER_MASK) == A_DIVIDER_32KHZ && latched == null;
        return running && guestNow().getNano() >= 1_000_000_000 - UIP_NANOS;
    }

    private static int[] fieldsOf(LocalDateTime t) {
        return new int[] {t.getSecond(), t.getMinute(), t.getHour(), t.getDayOfMonth(), t.getMonthValue(), t.getYear(),
                t.getDayOfWeek().getValue() % 7 + 1}; // RTC weekdays count from Sunday = 1
    }

    private int readTime(int register) {
        int[] f = latched != null ? latched : fieldsOf(guestNow());
        return switch (register) {
            case SECONDS -> encode(f[F_SECOND]);
            case MINUTES -> encode(f[F_MINUTE]);
            case HOURS -> encodeHour(f[F_HOUR]);
            case WEEKDAY -> encode(f[F_WEEKDAY]);
            case DAY_OF_MONTH -> encode(f[F_DAY]);
            case MONTH -> encode(f[F_MONTH]);
            case YEAR -> encode(Math.floorMod(f[F_YEAR], 100));
            default -> encode(Math.floorDiv(f[F_YEAR], 100) % 100); // CENTURY
        };
    }

    private boolean binary() {
        return (cmos[STATUS_B] & B_BINARY) != 0;
    }

    private int encode(int value) {
        return binary() ? value : (value / 10) << 4 | value % 10;
    }

    /** The register value in the current format, or -1 when it is not a valid number. */
    private int decode(int raw) {
        if (binary()) {
            return raw;
        }
        int high = raw >> 4;
        int low = raw & 0x0F;
        return high > 9 || low > 9 ? -1 : high * 10 + low;
    }

    private int encodeHour(int hour) {
        if ((cmos[STATUS_B] & B_24_HOUR) != 0) {
            return encode(hour);
        }
        int h12 = hour % 12 == 0 ? 12 : hour % 12;
        return encode(h12) | (hour >= 12 ? HOUR_PM : 0);
    }

    private int decodeHour(int raw) {
        if ((cmos[STATUS_B] & B_24_HOUR) != 0) {
            int h = decode(raw);
            return h <= 23 ? h : -1;
        }
        int h12 = decode(raw & ~HOUR_PM);
        if (h12 < 1 || h12 > 12) {
            return -1;
        }
        return h12 % 12 + ((raw & HOUR_PM) != 0 ? 12 : 0);
    }

    private void writeTime(int register, int raw) {
        int value = register == HOURS ? decodeHour(raw) : decode(raw);
        if (value < 0) {
            rejectedWrites++;
            return;
        }
        LocalDateTime now = guestNow();
        int[] f = latched != null ? latched : fieldsOf(now);
        switch (register) {
            case SECONDS -> f[F_SECOND] = value;
            case MINUTES -> f[F_MINUTE] = value;
            case HOURS -> f[F_HOUR] = value;
            case WEEKDAY -> f[F_WEEKDAY] = value; // kept for reads while SET; the date decides it
            case DAY_OF_MONTH -> f[F_DAY] = value;
            case MONTH -> f[F_MONTH] = value;
            case YEAR -> f[F_YEAR] = Math.floorDiv(f[F_YEAR], 100) * 100 + value % 100;
            default -> f[F_YEAR] = value * 100 + Math.floorMod(f[F_YEAR], 100); // CENTURY
        }
        if (latched == null) {
            // Setting the seconds starts a fresh second; other fields keep the running fraction.
            int nanos = register == SECONDS ? 0 : now.getNano();
            apply(f, nanos);
        }
    }

    private void writeStatusB(int value) {
        boolean wasSet = latched != null;
        boolean set = (value & B_SET) != 0;
        if (set && !wasSet) {
            latched = fieldsOf(guestNow()); // updates stop: the guest edits a frozen copy
        }
        cmos[STATUS_B] = (byte) value;
        if (!set && wasSet) {
            int[] f = latched;
            latched = null;
            apply(f, 0);
        }
    }

    /** Makes {@code f} the guest's current time, if it is a real date. */
    private void apply(int[] f, int nanos) {
        try {
            LocalDateTime t = LocalDateTime.of(f[F_YEAR], f[F_MONTH], f[F_DAY], f[F_HOUR], f[F_MINUTE], f[F_SECOND], nanos);
            offset = Duration.between(clock.instant(), t.toInstant(ZoneOffset.UTC));
        } catch (DateTimeException e) {
            rejectedWrites++;
        }
    }
}
