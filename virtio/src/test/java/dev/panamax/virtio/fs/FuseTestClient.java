package dev.panamax.virtio.fs;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** A FUSE client for tests: builds requests as Linux's does, hands them to a {@link FuseServer} and reads the replies. */
final class FuseTestClient implements AutoCloseable {
    static final int REPLY_BYTES = FuseServer.MAX_IO_BYTES + 4096;
    final FuseServer server;
    private final Arena arena = Arena.ofShared(); // shared: a fuzz target keeps one client for inputs that may come on other threads
    private final MemorySegment replyBuffer = arena.allocate(REPLY_BYTES, 8);
    private long unique = 100;
    /** The guest user and group the requests come from, as the header's uid and gid say. */
    int callerUid;
    int callerGid;

    FuseTestClient(FuseServer server) {
        this.server = server;
    }

    /** A reply: its errno (0 for success) and payload after the header. */
    record Reply(int errno, byte[] payload) {
        ByteBuffer body() {
            return ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
        }

        Reply ok() {
            assertThat(errno).as("errno of the reply").isZero();
            return this;
        }
    }

    /** A {@code fuse_entry_out}: its node, how long the guest may cache the entry and the attributes, and some attributes. */
    record Entry(long nodeId, long entryValidSeconds, long attrValidSeconds, long inode, long size, int mode) {}

    /** A little-endian body builder. */
    static final class Body {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Body u32(int v) {
            ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v);
            out.writeBytes(b.array());
            return this;
        }

        Body u64(long v) {
            ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v);
            out.writeBytes(b.array());
            return this;
        }

        Body zeros(int n) {
            out.writeBytes(new byte[n]);
            return this;
        }

        Body bytes(byte[] bytes) {
            out.writeBytes(bytes);
            return this;
        }

        /** A NUL-terminated name. */
        Body name(String name) {
            return bytes(name.getBytes(StandardCharsets.UTF_8)).bytes(new byte[1]);
        }

        byte[] build() {
            return out.toByteArray();
        }
    }

    static Body body() {
        return new Body();
    }

    /** The bytes of a whole request: header (with {@code len} as given) and body. */
    static byte[] request(int length, int opcode, long unique, long nodeId, byte[] body) {
        return request(length, opcode, unique, nodeId, 0, 0, body);
    }

    /** The same, from the guest's user {@code uid} and group {@code gid}. */
    static byte[] request(int length, int opcode, long unique, long nodeId, int uid, int gid, byte[] body) {
        ByteBuffer b = ByteBuffer.allocate(FuseRequest.HEADER_BYTES + body.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(length).putInt(opcode).putLong(unique).putLong(nodeId).putInt(uid).putInt(gid).putInt(1).putInt(0);
        b.put(body);
        return b.array();
    }

    /** Hands {@code bytes} to the server as one request; returns the raw reply length and fills the reply buffer. */
    int raw(byte[] bytes) {
        MemorySegment request = arena.allocate(Math.max(1, bytes.length), 8).asSlice(0, bytes.length);
        MemorySegment.copy(bytes, 0, request, ValueLayout.JAVA_BYTE, 0, bytes.length);
        return server.handle(request, replyBuffer);
    }

    MemorySegment replyBuffer() {
        return replyBuffer;
    }

    Reply call(int opcode, long nodeId, byte[] body) {
        long id = unique++;
        int length = raw(request(FuseRequest.HEADER_BYTES + body.length, opcode, id, nodeId, callerUid, callerGid, body));
        assertThat(length).as("reply length").isGreaterThanOrEqualTo(16);
        return parse(length, id);
    }

    Reply call(int opcode, long nodeId, Body body) {
        return call(opcode, nodeId, body.build());
    }

    Reply parse(int length, long expectedUnique) {
        ByteBuffer header = replyBuffer.asSlice(0, 16).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        assertThat(header.getInt(0)).as("out header len").isEqualTo(length);
        assertThat(header.getLong(8)).as("unique").isEqualTo(expectedUnique);
        byte[] payload = replyBuffer.asSlice(16, length - 16).toArray(ValueLayout.JAVA_BYTE);
        return new Reply(-header.getInt(4), payload);
    }

    /** Sends a request that has no reply (FORGET, BATCH_FORGET). */
    void send(int opcode, long nodeId, Body body) {
        byte[] b = body.build();
        assertThat(raw(request(FuseRequest.HEADER_BYTES + b.length, opcode, unique++, nodeId, b))).isZero();
    }

    Reply init() {
        return call(Fuse.FUSE_INIT, 0, body().u32(7).u32(38).u32(128 * 1024).u32(-1).u32(0).zeros(44));
    }

    static Entry entry(ByteBuffer b) {
        long nodeId = b.getLong();
        b.getLong(); // generation
        long entryValid = b.getLong();
        long attrValid = b.getLong();
        assertThat(b.getInt()).as("entry_valid_nsec").isZero();
        assertThat(b.getInt()).as("attr_valid_nsec").isZero();
        long inode = b.getLong();
        long size = b.getLong();
        b.position(b.position() + 8 * 4 + 12); // blocks, atime, mtime, ctime, nsecs
        int mode = b.getInt();
        b.position(b.position() + 24);
        return new Entry(nodeId, entryValid, attrValid, inode, size, mode);
    }

    Reply lookupReply(long parent, String name) {
        return call(Fuse.FUSE_LOOKUP, parent, body().name(name));
    }

    Entry lookup(long parent, String name) {
        return entry(lookupReply(parent, name).ok().body());
    }

    /** CREATE: the new node and its handle. */
    long[] create(long parent, String name, int flags, int mode) {
        ByteBuffer b = call(Fuse.FUSE_CREATE, parent, body().u32(flags).u32(mode).u32(022).u32(0).name(name)).ok().body();
        Entry e = entry(b);
        return new long[] {e.nodeId(), b.getLong()};
    }

    long open(long node, int flags) {
        return call(Fuse.FUSE_OPEN, node, body().u32(flags).u32(0)).ok().body().getLong();
    }

    long opendir(long node) {
        return call(Fuse.FUSE_OPENDIR, node, body().u32(0).u32(0)).ok().body().getLong();
    }

    Reply write(long node, long fh, long offset, byte[] data) {
        return call(Fuse.FUSE_WRITE, node, body().u64(fh).u64(offset).u32(data.length).u32(0).u64(0).u32(0).u32(0).bytes(data));
    }

    Reply read(long node, long fh, long offset, int size) {
        return call(Fuse.FUSE_READ, node, body().u64(fh).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0));
    }

    Reply release(long node, long fh, boolean directory) {
        return call(directory ? Fuse.FUSE_RELEASEDIR : Fuse.FUSE_RELEASE, node, body().u64(fh).u32(0).u32(0).u64(0));
    }

    /** One listed entry: its name and, for READDIRPLUS, its entry (node id 0 when not looked up; null for READDIR). */
    record Listed(String name, Entry entry, long nextOffset) {
        long nodeId() {
            return entry == null ? -1 : entry.nodeId();
        }
    }

    List<Listed> readdir(long node, long fh, long offset, int size, boolean plus) {
        ByteBuffer b = call(plus ? Fuse.FUSE_READDIRPLUS : Fuse.FUSE_READDIR, node,
                body().u64(fh).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0)).ok().body();
        List<Listed> listed = new ArrayList<>();
        while (b.hasRemaining()) {
            Entry entry = plus ? entry(b) : null;
            b.getLong(); // ino
            long next = b.getLong();
            int nameLength = b.getInt();
            b.getInt(); // type
            byte[] name = new byte[nameLength];
            b.get(name);
            b.position(b.position() + ((nameLength + 7) & ~7) - nameLength);
            listed.add(new Listed(new String(name, StandardCharsets.UTF_8), entry, next));
        }
        return listed;
    }

    /** SETATTR with {@code valid} and the given fields. */
    Reply setattr(long node, int valid, long fh, long size, long mtime, int mode) {
        return call(Fuse.FUSE_SETATTR, node, body().u32(valid).u32(0).u64(fh).u64(size).u64(0).u64(mtime).u64(mtime).u64(0)
                .u32(0).u32(0).u32(0).u32(mode).u32(0).u32(0).u32(0).u32(0));
    }

    @Override
    public void close() {
        arena.close();
    }
}
