package dev.panamax.virtio.fs;

import static dev.panamax.virtio.fs.FuseRequest.U16;
import static dev.panamax.virtio.fs.FuseRequest.U32;
import static dev.panamax.virtio.fs.FuseRequest.U64;

import dev.panamax.sys.FileStat;
import dev.panamax.sys.FsAbi;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Writes one reply into the buffer the guest gave for it: a {@code fuse_out_header}, then the op's
 * structs in order. Nothing is written past the buffer: a reply that does not fit is a malformed
 * request (the guest's buffer is too small for what it asked) and becomes an error reply.
 */
final class FuseReply {
    static final int HEADER_BYTES = (int) Fuse.OUT_HEADER.byteSize();
    private final MemorySegment buffer;
    private final long unique;
    /** How long the guest may cache an entry or attributes: the share's {@link CacheMode#validSeconds}. */
    private final long validSeconds;
    private long position = HEADER_BYTES;
    /** Data of the reply the server put straight into the guest's buffers, after this buffer's part. */
    private long outside;

    FuseReply(MemorySegment buffer, long unique, long validSeconds) throws FuseError {
        if (buffer.byteSize() < HEADER_BYTES) {
            throw FuseError.malformed(FsAbi.EINVAL, "a reply buffer of " + buffer.byteSize() + " bytes cannot hold fuse_out_header");
        }
        this.buffer = buffer;
        this.unique = unique;
        this.validSeconds = validSeconds;
    }

    /** Writes an error reply; returns its length, or 0 when the buffer cannot hold even a header. */
    static int error(MemorySegment buffer, long unique, int errno) {
        if (buffer.byteSize() < HEADER_BYTES) {
            return 0;
        }
        buffer.set(U32, 0, HEADER_BYTES);
        buffer.set(U32, 4, -(errno == 0 ? FsAbi.EIO : errno));
        buffer.set(U64, 8, unique);
        return HEADER_BYTES;
    }

    long remaining() {
        return buffer.byteSize() - position;
    }

    private long claim(long bytes) throws FuseError {
        if (bytes > remaining()) {
            throw FuseError.malformed(FsAbi.EINVAL, "the reply needs " + bytes + " more bytes, the buffer has " + remaining());
        }
        long at = position;
        position += bytes;
        return at;
    }

    FuseReply u32(int value) throws FuseError {
        buffer.set(U32, claim(4), value);
        return this;
    }

    FuseReply u64(long value) throws FuseError {
        buffer.set(U64, claim(8), value);
        return this;
    }

    FuseReply u16(short value) throws FuseError {
        buffer.set(U16, claim(2), value);
        return this;
    }

    FuseReply zeros(long bytes) throws FuseError {
        buffer.asSlice(claim(bytes), bytes).fill((byte) 0);
        return this;
    }

    FuseReply bytes(byte[] bytes) throws FuseError {
        MemorySegment.copy(bytes, 0, buffer, ValueLayout.JAVA_BYTE, claim(bytes.length), bytes.length);
        return this;
    }

    /** Room for {@code bytes} of data written by the caller (READ, GETXATTR), to be kept with {@link #keep}. */
    MemorySegment room(long bytes) throws FuseError {
        if (bytes > remaining()) {
            throw FuseError.malformed(FsAbi.EINVAL, "the reply needs " + bytes + " more bytes, the buffer has " + remaining());
        }
        return buffer.asSlice(position, bytes);
    }

    /** Keeps {@code bytes} of what the caller wrote into {@link #room}. */
    void keep(long bytes) {
        position += bytes;
    }

    /** Counts {@code bytes} of data written past this buffer, into the guest's own buffers that follow it. */
    void keepOutside(long bytes) {
        outside += bytes;
    }

    /** Sizes in 8-byte words: struct fuse_attr, and the structs that end with one. */
    private static final int ATTR_WORDS = words(Fuse.ATTR);
    private static final int ATTR_OUT_WORDS = words(Fuse.ATTR_OUT);
    private static final int ENTRY_OUT_WORDS = words(Fuse.ENTRY_OUT);

    private static int words(java.lang.foreign.StructLayout struct) {
        return (int) (struct.byteSize() / 8);
    }

    /**
     * {@code words} in order, as one bulk copy: the structs of LOOKUP's and GETATTR's replies are
     * filled in a Java array first, since a field written each through the segment cost several
     * calls apiece in C1's code, which is all the JVMs in the rig compile.
     */
    private FuseReply words(long[] words) throws FuseError {
        MemorySegment.copy(words, 0, buffer, U64, claim(8L * words.length), words.length);
        return this;
    }

    /** {@code stat} as a {@code fuse_attr} into {@code w} from word {@code at}: ATTR_WORDS of them. */
    private static void attr(long[] w, int at, FileStat stat) {
        w[at] = stat.inode();
        w[at + 1] = stat.size();
        w[at + 2] = stat.blocks();
        w[at + 3] = stat.atimeSeconds();
        w[at + 4] = stat.mtimeSeconds();
        w[at + 5] = stat.ctimeSeconds();
        w[at + 6] = halves((int) stat.atimeNanos(), (int) stat.mtimeNanos());
        w[at + 7] = halves((int) stat.ctimeNanos(), stat.mode());
        w[at + 8] = halves((int) Math.min(stat.linkCount(), 0xffff_ffffL), stat.uid());
        w[at + 9] = halves(stat.gid(), (int) stat.rdev());
        w[at + 10] = halves((int) stat.blockSize(), 0);
    }

    /** Two 4-byte fields in one word, {@code first} at the lower address (little-endian). */
    private static long halves(int first, int second) {
        return Integer.toUnsignedLong(first) | (long) second << 32;
    }

    /** A {@code fuse_attr} of {@code stat}. */
    FuseReply attr(FileStat stat) throws FuseError {
        long[] w = new long[ATTR_WORDS];
        attr(w, 0, stat);
        return words(w);
    }

    /** A {@code fuse_attr_out}: attr_valid, attr_valid_nsec and a dummy, then the attributes. */
    FuseReply attrOut(FileStat stat) throws FuseError {
        long[] w = new long[ATTR_OUT_WORDS];
        w[0] = validSeconds;
        attr(w, ATTR_OUT_WORDS - ATTR_WORDS, stat);
        return words(w);
    }

    /**
     * A {@code fuse_entry_out} for {@code nodeId} (nodeid, generation, entry_valid, attr_valid, their
     * nanoseconds, the attributes); a node id of 0 with null {@code stat} is the "not looked up" entry.
     */
    FuseReply entryOut(long nodeId, FileStat stat) throws FuseError {
        if (stat == null) {
            return zeros(Fuse.ENTRY_OUT.byteSize());
        }
        long[] w = new long[ENTRY_OUT_WORDS];
        w[0] = nodeId;
        w[2] = validSeconds;
        w[3] = validSeconds;
        attr(w, ENTRY_OUT_WORDS - ATTR_WORDS, stat);
        return words(w);
    }

    /** Finishes a successful reply; returns its length, with the data written outside the buffer. */
    int finish() {
        int length = (int) (position + outside);
        buffer.set(U32, 0, length);
        buffer.set(U32, 4, 0);
        buffer.set(U64, 8, unique);
        return length;
    }
}
