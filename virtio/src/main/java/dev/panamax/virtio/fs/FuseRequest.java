package dev.panamax.virtio.fs;

import static dev.panamax.sys.FsAbi.EINVAL;

import dev.panamax.sys.FileName;
import dev.panamax.sys.FsAbi;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One FUSE request, decoded and checked in this one place before the server uses any of it: the
 * {@code fuse_in_header}'s length against the buffer, then, as the server reads the body, each
 * fixed part against what is left, each name (NUL-terminated, bounded, one component), and each
 * size and offset against its limit. A check that fails throws a {@link FuseError}; the buffer is
 * never read outside the request's length.
 */
final class FuseRequest {
    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final int HEADER_BYTES = (int) Fuse.IN_HEADER.byteSize();

    final int opcode;
    final long unique;
    final long nodeId;
    final int uid;
    final int gid;
    final int pid;
    private final MemorySegment body;
    private long position;

    private FuseRequest(int opcode, long unique, long nodeId, int uid, int gid, int pid, MemorySegment body) {
        this.opcode = opcode;
        this.unique = unique;
        this.nodeId = nodeId;
        this.uid = uid;
        this.gid = gid;
        this.pid = pid;
        this.body = body;
    }

    /** The unique id of whatever {@code buffer} holds, or 0 when it is too short to have one; for error replies. */
    static long uniqueOf(MemorySegment buffer) {
        return buffer.byteSize() >= HEADER_BYTES ? buffer.get(U64, 8) : 0;
    }

    /** Checks the header of the request in {@code buffer} (its length against the buffer) and returns the request. */
    static FuseRequest decode(MemorySegment buffer) throws FuseError {
        if (buffer.byteSize() < HEADER_BYTES) {
            throw FuseError.malformed(EINVAL, "a request of " + buffer.byteSize() + " bytes is shorter than fuse_in_header");
        }
        // The header in one bulk copy, as 8-byte words (fields read each through the segment cost several calls apiece
        // in C1's code, which is all the JVMs in the rig compile): len | opcode << 32, unique, nodeid, uid | gid << 32,
        // pid | total_extlen << 32 | padding << 48.
        long[] w = new long[HEADER_BYTES / 8];
        MemorySegment.copy(buffer, U64, 0, w, 0, w.length);
        long length = w[0] & 0xffff_ffffL;
        if (length < HEADER_BYTES || length > buffer.byteSize()) {
            throw FuseError.malformed(EINVAL, "fuse_in_header.len " + length + " outside [" + HEADER_BYTES + ", " + buffer.byteSize() + "]");
        }
        if ((w[4] >>> 32 & 0xffff) != 0) {
            throw FuseError.malformed(EINVAL, "request extensions were not negotiated");
        }
        return new FuseRequest((int) (w[0] >>> 32), w[1], w[2], (int) w[3], (int) (w[3] >>> 32), (int) w[4],
                buffer.asSlice(HEADER_BYTES, length - HEADER_BYTES));
    }

    long remaining() {
        return body.byteSize() - position;
    }

    /**
     * The next {@code bytes} of the body as {@code struct}'s fields (fewer bytes than the struct for
     * an older client's shorter form, whose missing fields read as zeros).
     */
    Fields fixed(StructLayout struct, long bytes) throws FuseError {
        if (remaining() < bytes) {
            throw FuseError.malformed(EINVAL, struct.name().orElse("the fixed part") + " needs " + bytes + " bytes, "
                    + remaining() + " are left");
        }
        MemorySegment part = body.asSlice(position, Math.min(bytes, struct.byteSize()));
        position += bytes;
        return new Fields(part);
    }

    /** {@link #fixed(StructLayout, long)} of the whole struct. */
    Fields fixed(StructLayout struct) throws FuseError {
        return fixed(struct, struct.byteSize());
    }

    /** The next NUL-terminated string's bytes (the NUL consumed, not returned), at most {@code maxBytes} long. */
    byte[] string(int maxBytes, String what) throws FuseError {
        long limit = Math.min(remaining(), maxBytes + 1L);
        byte[] candidate = body.asSlice(position, limit).toArray(ValueLayout.JAVA_BYTE); // one copy, then a plain scan
        for (int i = 0; i < candidate.length; i++) {
            if (candidate[i] == 0) {
                position += i + 1;
                return Arrays.copyOf(candidate, i);
            }
        }
        if (limit == remaining()) {
            throw FuseError.malformed(EINVAL, what + " has no NUL before the end of the request");
        }
        throw FuseError.refused(FsAbi.ENAMETOOLONG, what + " is longer than " + maxBytes + " bytes");
    }

    /** The next name, one path component: not empty, no {@code '/'}, not {@code "."} or {@code ".."}. */
    FileName name() throws FuseError {
        byte[] bytes = string(FsAbi.NAME_MAX, "a name");
        int problem = FileName.problem(bytes);
        if (problem != 0) {
            throw FuseError.refused(problem, "not a single file name component");
        }
        return FileName.of(bytes);
    }

    /** The next name as LOOKUP takes it: {@code "."} and {@code ".."} allowed, to be resolved by the server. */
    byte[] lookupName() throws FuseError {
        byte[] bytes = string(FsAbi.NAME_MAX, "a name");
        boolean dots = bytes.length > 0 && bytes.length <= 2 && bytes[0] == '.' && (bytes.length == 1 || bytes[1] == '.');
        if (!dots) {
            int problem = FileName.problem(bytes);
            if (problem != 0) {
                throw FuseError.refused(problem, "not a single file name component");
            }
        }
        return bytes;
    }

    /** An extended attribute's name: 1 to {@value FsAbi#XATTR_NAME_MAX} bytes. */
    byte[] xattrName() throws FuseError {
        byte[] bytes = string(FsAbi.XATTR_NAME_MAX, "an xattr name");
        if (bytes.length == 0) {
            throw FuseError.refused(EINVAL, "an empty xattr name");
        }
        return bytes;
    }

    /** The rest of the body, which must be exactly {@code expected} bytes (WRITE's data, SETXATTR's value). */
    MemorySegment rest(long expected) throws FuseError {
        if (remaining() != expected) {
            throw FuseError.malformed(EINVAL, "the request says " + expected + " bytes follow, " + remaining() + " do");
        }
        MemorySegment data = body.asSlice(position, expected);
        position += expected;
        return data;
    }

    /** A file offset: not negative. */
    static long offset(long value) throws FuseError {
        if (value < 0) {
            throw FuseError.refused(EINVAL, "negative offset " + value);
        }
        return value;
    }

    /** A size (an unsigned 32-bit field) of at most {@code max}. */
    static int size(int value, int max, String what) throws FuseError {
        if (Integer.toUnsignedLong(value) > max) {
            throw FuseError.refused(EINVAL, what + " " + Integer.toUnsignedString(value) + " is over " + max);
        }
        return value;
    }

    /** {@code offset + length} must not pass the largest file offset. */
    static void range(long offset, long length) throws FuseError {
        if (offset < 0 || length < 0 || offset > Long.MAX_VALUE - length) {
            throw FuseError.refused(FsAbi.EFBIG, "range " + Long.toUnsignedString(offset) + " + " + Long.toUnsignedString(length));
        }
    }

    /** A cursor over one fixed part's fields, in their order. A part shorter than its struct (an older client's) reads as zeros past its end. */
    static final class Fields {
        private final MemorySegment part;
        private long at;

        private Fields(MemorySegment part) {
            this.part = part;
        }

        int u32() {
            int value = at + 4 <= part.byteSize() ? part.get(U32, at) : 0;
            at += 4;
            return value;
        }

        long u64() {
            long value = at + 8 <= part.byteSize() ? part.get(U64, at) : 0;
            at += 8;
            return value;
        }
    }
}
