package dev.panamax.sys;

import java.util.Arrays;

/**
 * One component of a path, as a file server may pass it to an {@code *at()} call relative to a
 * directory handle: 1 to {@value FsAbi#NAME_MAX} bytes, no {@code '/'}, no NUL, and neither
 * {@code "."} nor {@code ".."}. So an {@code *at()} call with it can only name an entry of that
 * directory. The bytes are the name as the kernel sees it, in no particular encoding.
 */
public final class FileName {
    private final byte[] bytes;

    private FileName(byte[] bytes) {
        this.bytes = bytes;
    }

    /** The name {@code bytes} make, or throws {@link IllegalArgumentException} when {@link #problem} finds one. */
    public static FileName of(byte[] bytes) {
        int problem = problem(bytes);
        if (problem != 0) {
            throw new IllegalArgumentException("not a single file name component (errno " + problem + "): " + Arrays.toString(bytes));
        }
        return new FileName(bytes.clone());
    }

    /** {@link #of} of a Java string's UTF-8 bytes. */
    public static FileName of(String name) {
        return of(name.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    /**
     * 0 when {@code bytes} are a valid name; else the errno to answer: {@link FsAbi#ENAMETOOLONG}
     * for more than {@value FsAbi#NAME_MAX} bytes, {@link FsAbi#EINVAL} for an empty name, a
     * {@code '/'} or NUL in it, or {@code "."} or {@code ".."}.
     */
    public static int problem(byte[] bytes) {
        if (bytes.length == 0) {
            return FsAbi.EINVAL;
        }
        if (bytes.length > FsAbi.NAME_MAX) {
            return FsAbi.ENAMETOOLONG;
        }
        for (byte b : bytes) {
            if (b == '/' || b == 0) {
                return FsAbi.EINVAL;
            }
        }
        boolean dots = bytes[0] == '.' && (bytes.length == 1 || (bytes.length == 2 && bytes[1] == '.'));
        return dots ? FsAbi.EINVAL : 0;
    }

    byte[] bytes() {
        return bytes;
    }

    /** A copy of the name's bytes. */
    public byte[] toBytes() {
        return bytes.clone();
    }

    public int length() {
        return bytes.length;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof FileName other && Arrays.equals(bytes, other.bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        return new String(bytes, java.nio.charset.StandardCharsets.UTF_8);
    }
}
