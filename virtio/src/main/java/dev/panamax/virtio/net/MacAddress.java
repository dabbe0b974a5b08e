package dev.panamax.virtio.net;

import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.random.RandomGenerator;

/**
 * A NIC's Ethernet address: unicast and not all zeros. Written as six pairs of hex digits separated
 * by colons, {@code 52:54:00:12:34:56}.
 */
public record MacAddress(long bits) {
    private static final long MASK = (1L << 48) - 1;
    private static final long MULTICAST = 1L << 40; // the least significant bit of the first byte
    private static final long LOCALLY_ADMINISTERED = 1L << 41;
    private static final RandomGenerator RANDOM = new SecureRandom();

    public MacAddress {
        if ((bits & ~MASK) != 0) {
            throw new IllegalArgumentException("an Ethernet address has 48 bits, not 0x" + Long.toHexString(bits));
        }
        if ((bits & MULTICAST) != 0) {
            throw new IllegalArgumentException("MAC address " + format(bits) + " is a multicast address (its first byte is odd);"
                    + " a NIC needs a unicast one, such as 52:54:00:12:34:56");
        }
        if (bits == 0) {
            throw new IllegalArgumentException("MAC address 00:00:00:00:00:00 is not a usable address;"
                    + " leave mac= out for a random one");
        }
    }

    /**
     * Reads {@code 52:54:00:12:34:56} (either case).
     *
     * @throws IllegalArgumentException with a sentence saying what is wrong
     */
    public static MacAddress parse(String text) {
        String[] parts = text.split(":", -1);
        long bits = 0;
        for (String part : parts) {
            if (parts.length != 6 || part.length() != 2 || !HexFormat.isHexDigit(part.charAt(0)) || !HexFormat.isHexDigit(part.charAt(1))) {
                throw new IllegalArgumentException("MAC address '" + text + "' is not six pairs of hex digits separated by colons,"
                        + " such as 52:54:00:12:34:56");
            }
            bits = bits << 8 | HexFormat.fromHexDigits(part);
        }
        return new MacAddress(bits);
    }

    /** A random unicast address with the locally administered bit set, so that it can clash with no vendor's. */
    public static MacAddress random() {
        return new MacAddress((RANDOM.nextLong() & MASK & ~MULTICAST) | LOCALLY_ADMINISTERED);
    }

    /** Whether the address is locally administered rather than a vendor's. */
    public boolean locallyAdministered() {
        return (bits & LOCALLY_ADMINISTERED) != 0;
    }

    /** The six bytes, first byte first, as they stand in a frame and in virtio-net's config space. */
    public byte[] bytes() {
        byte[] bytes = new byte[6];
        for (int i = 0; i < 6; i++) bytes[i] = (byte) (bits >>> (40 - 8 * i));
        return bytes;
    }

    @Override
    public String toString() {
        return format(bits);
    }

    private static String format(long bits) {
        StringBuilder s = new StringBuilder(17);
        for (int shift = 40; shift >= 0; shift -= 8) {
            if (shift != 40) s.append(':');
            s.append(HexFormat.of().toHexDigits((byte) (bits >>> shift)));
        }
        return s.toString();
    }
}
