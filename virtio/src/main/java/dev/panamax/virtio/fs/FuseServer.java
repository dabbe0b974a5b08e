package dev.panamax.virtio.fs;

import static dev.panamax.sys.FsAbi.EBADF;
import static dev.panamax.sys.FsAbi.EINVAL;
import static dev.panamax.sys.FsAbi.EIO;
import static dev.panamax.sys.FsAbi.EISDIR;
import static dev.panamax.sys.FsAbi.ENOENT;
import static dev.panamax.sys.FsAbi.ENOSYS;
import static dev.panamax.sys.FsAbi.ENOTDIR;
import static dev.panamax.sys.FsAbi.EOPNOTSUPP;
import static dev.panamax.sys.FsAbi.EPERM;
import static dev.panamax.sys.FsAbi.EROFS;

import dev.panamax.sys.DirEntry;
import dev.panamax.sys.FileName;
import dev.panamax.sys.FileStat;
import dev.panamax.sys.FileSystemStats;
import dev.panamax.sys.FsAbi;
import dev.panamax.sys.IoVector;
import dev.panamax.sys.NativeIoException;
import dev.panamax.sys.OpenFile;
import dev.panamax.sys.PathHandle;
import dev.panamax.virtio.fs.FuseRequest.Fields;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The FUSE server of a virtio-fs device, in process: it takes one request's bytes and writes the
 * reply, serving a host directory (the share) as virtiofsd does. Every node the guest knows is an
 * {@code O_PATH} handle ({@link PathHandle}) in a bounded table, keyed by node id and counted by
 * lookups until FORGET; every name is one checked component resolved relative to its parent's
 * handle with {@code O_NOFOLLOW}; symbolic links are served as links, never followed on the host;
 * {@code ..} of the root is the root. A read-only share refuses every change with EROFS.
 *
 * <p>Threads: {@link #handle} is synchronized, so the request queues' threads may share one server;
 * requests are then served one at a time. The transport (hiprio queue, request queues,
 * descriptor chains) is {@link VirtioFs}'s.
 */
public final class FuseServer implements AutoCloseable {
    /** The largest READ or WRITE, and so max_write: 1 MiB, 256 pages. */
    public static final int MAX_IO_BYTES = 1 << 20;
    /**
     * The pages INIT offers (max_pages, and max_write in pages): a 1 MiB READ or WRITE in one request.
     * With its four header buffers that is a chain of 260 descriptors, which a virtio-fs queue of
     * {@link VirtioFs#DEFAULT_QUEUE_SIZE} entries takes. Linux 6.1 does not bound max_pages by the
     * queue itself, and a longer chain would break the queue.
     */
    public static final int ADVERTISED_IO_PAGES = MAX_IO_BYTES / 4096;
    public static final int DEFAULT_MAX_NODES = 1 << 20;
    public static final int DEFAULT_MAX_HANDLES = 65536;
    /** The bytes of one getdents64 call: enough for ~1000 short names. */
    private static final int DIRECTORY_CHUNK = 32 * 1024;
    private static final int GRANTED_FLAGS = Fuse.FUSE_ASYNC_READ | Fuse.FUSE_ATOMIC_O_TRUNC | Fuse.FUSE_BIG_WRITES
            | Fuse.FUSE_DO_READDIRPLUS | Fuse.FUSE_READDIRPLUS_AUTO | Fuse.FUSE_PARALLEL_DIROPS | Fuse.FUSE_MAX_PAGES;
    /** The open(2) flags OPEN and CREATE pass to the host; the rest (O_DIRECT, O_NOATIME, ...) are dropped. */
    private static final int PASSED_OPEN_FLAGS = FsAbi.O_ACCMODE | FsAbi.O_APPEND | FsAbi.O_TRUNC;
    /** What a handle keeps of its open flags, and what a snapshot's handle may have: never O_TRUNC or O_EXCL again. */
    private static final int KEPT_OPEN_FLAGS = FsAbi.O_ACCMODE | FsAbi.O_APPEND;
    /** Node ids and handles a snapshot may name stay below this, so counting on from them cannot overflow. */
    private static final long MAX_SAVED_ID = 1L << 62;
    private static final int W_OK = 2;

    private record Node(long id, PathHandle handle, FileStat identity, long[] lookups) {
        boolean isDirectory() {
            return identity.isDirectory();
        }
    }

    private record FileKey(long device, long inode) {}

    /** An open file or directory; {@code flags} are its access mode and O_APPEND, what a restore opens it with again. */
    private record Handle(long nodeId, OpenFile file, boolean directory, int flags) {
        boolean writable() {
            return (flags & FsAbi.O_ACCMODE) != FsAbi.O_RDONLY;
        }
    }

    private final Path share;
    private final boolean readOnly;
    private final CacheMode cache;
    private final int maxNodes;
    private final int maxHandles;
    private final boolean ownerFromCaller;
    private final Map<Long, Node> nodes = new HashMap<>();
    private final Map<FileKey, Node> nodesByFile = new HashMap<>();
    private final Map<Long, Handle> handles = new HashMap<>();
    private long nextNodeId = Fuse.FUSE_ROOT_ID + 1;
    private long nextHandle = 1;
    private boolean initialized;
    private final AtomicLong malformed = new AtomicLong();
    private final AtomicLong internalErrors = new AtomicLong();

    /** Serves {@code share} (a host directory from the configuration), read-only or not, cache=auto, with the default bounds. */
    public FuseServer(Path share, boolean readOnly) throws NativeIoException {
        this(share, readOnly, CacheMode.AUTO);
    }

    /** With the guest's caching of entries, attributes and file data as {@code cache} says. */
    public FuseServer(Path share, boolean readOnly, CacheMode cache) throws NativeIoException {
        this(share, readOnly, cache, DEFAULT_MAX_NODES, DEFAULT_MAX_HANDLES);
    }

    /** With at most {@code maxNodes} nodes (the root included) and {@code maxHandles} open files; beyond, ENFILE. */
    public FuseServer(Path share, boolean readOnly, int maxNodes, int maxHandles) throws NativeIoException {
        this(share, readOnly, CacheMode.AUTO, maxNodes, maxHandles);
    }

    public FuseServer(Path share, boolean readOnly, CacheMode cache, int maxNodes, int maxHandles) throws NativeIoException {
        this(share, readOnly, cache, maxNodes, maxHandles, runsAsRoot());
    }

    /**
     * @param ownerFromCaller whether files the guest makes get its caller's user and group (which
     *     needs root), rather than this process's
     */
    public FuseServer(Path share, boolean readOnly, CacheMode cache, int maxNodes, int maxHandles, boolean ownerFromCaller)
            throws NativeIoException {
        if (maxNodes < 1 || maxHandles < 1) {
            throw new IllegalArgumentException("a server needs room for the root and one open file");
        }
        this.share = share;
        this.readOnly = readOnly;
        this.cache = Objects.requireNonNull(cache, "cache");
        this.maxNodes = maxNodes;
        this.maxHandles = maxHandles;
        this.ownerFromCaller = ownerFromCaller;
        PathHandle root = PathHandle.openDirectory(share);
        try {
            FileStat stat = root.stat();
            if (!stat.isDirectory()) {
                throw new IllegalArgumentException(share + " is not a directory");
            }
            addRoot(root, stat);
        } catch (NativeIoException | RuntimeException e) {
            root.close();
            throw e;
        }
    }

    /** Whether this process's effective user is root: the owner of its /proc directory. */
    private static boolean runsAsRoot() {
        try {
            return ((Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid")) == 0;
        } catch (IOException | UnsupportedOperationException e) {
            return false;
        }
    }

    private void addRoot(PathHandle root, FileStat stat) {
        Node node = new Node(Fuse.FUSE_ROOT_ID, root, stat, new long[] {1});
        nodes.put(node.id(), node);
        nodesByFile.put(new FileKey(stat.device(), stat.inode()), node);
    }

    /** Requests refused as malformed so far: a device may count them or reset its queue. */
    public long malformedRequests() {
        return malformed.get();
    }

    /** Requests that met a bug in this server (answered EIO); should stay 0. */
    public long internalErrors() {
        return internalErrors.get();
    }

    /** How many nodes (the root included) and open handles the guest holds. */
    public synchronized int nodeCount() {
        return nodes.size();
    }

    public synchronized int handleCount() {
        return handles.size();
    }

    /**
     * Serves the request in {@code request} and writes its reply to {@code reply}; returns the reply's
     * length, 0 for requests that have none (FORGET, BATCH_FORGET) or when {@code reply} cannot hold a
     * header. Never throws for anything the guest sends. READ and WRITE move data between the host
     * file and these segments, which must be native memory.
     */
    public int handle(MemorySegment request, MemorySegment reply) {
        return handle(request, reply, null);
    }

    /**
     * {@link #handle(MemorySegment, MemorySegment)}, with a READ's data read straight into {@code
     * readInto} (the guest's buffers after the reply header) when not null: only the header is then
     * written to {@code reply}, and the returned length counts the data too ({@link ReadBuffers#filled}).
     */
    synchronized int handle(MemorySegment request, MemorySegment reply, ReadBuffers readInto) {
        long unique = FuseRequest.uniqueOf(request);
        boolean answered = true; // FORGET and BATCH_FORGET are never answered, not even with an error
        try {
            FuseRequest r = FuseRequest.decode(request);
            answered = r.opcode != Fuse.FUSE_FORGET && r.opcode != Fuse.FUSE_BATCH_FORGET;
            return dispatch(r, reply, readInto);
        } catch (FuseError e) {
            if (e.isMalformed()) {
                malformed.incrementAndGet();
            }
            return answered ? FuseReply.error(reply, unique, e.errno()) : 0;
        } catch (NativeIoException e) {
            return answered ? FuseReply.error(reply, unique, e.errno()) : 0;
        } catch (RuntimeException e) {
            internalErrors.incrementAndGet();
            return answered ? FuseReply.error(reply, unique, EIO) : 0;
        }
    }

    private int dispatch(FuseRequest r, MemorySegment replyBuffer, ReadBuffers readInto) throws FuseError, NativeIoException {
        if (r.opcode == Fuse.FUSE_FORGET) {
            forget(r.nodeId, r.fixed(Fuse.FORGET_IN).u64());
            return 0;
        }
        if (r.opcode == Fuse.FUSE_BATCH_FORGET) {
            batchForget(r);
            return 0;
        }
        FuseReply reply = new FuseReply(replyBuffer, r.unique, cache.validSeconds());
        if (r.opcode == Fuse.FUSE_INIT) {
            return init(r, reply);
        }
        if (!initialized) {
            throw FuseError.refused(EIO, "request " + r.opcode + " before INIT");
        }
        switch (r.opcode) {
            case Fuse.FUSE_DESTROY -> destroy();
            case Fuse.FUSE_LOOKUP -> lookupOp(r, reply);
            case Fuse.FUSE_GETATTR -> getattr(r, reply);
            case Fuse.FUSE_SETATTR -> setattr(r, reply);
            case Fuse.FUSE_READLINK -> readlink(r, reply);
            case Fuse.FUSE_SYMLINK -> symlink(r, reply);
            case Fuse.FUSE_MKNOD -> mknod(r, reply);
            case Fuse.FUSE_MKDIR -> mkdir(r, reply);
            case Fuse.FUSE_UNLINK, Fuse.FUSE_RMDIR -> remove(r);
            case Fuse.FUSE_RENAME, Fuse.FUSE_RENAME2 -> rename(r);
            case Fuse.FUSE_LINK -> link(r, reply);
            case Fuse.FUSE_OPEN -> open(r, reply);
            case Fuse.FUSE_CREATE -> create(r, reply);
            case Fuse.FUSE_READ -> read(r, reply, readInto);
            case Fuse.FUSE_WRITE -> write(r, reply);
            case Fuse.FUSE_STATFS -> statfs(r, reply);
            case Fuse.FUSE_RELEASE, Fuse.FUSE_RELEASEDIR -> release(r);
            case Fuse.FUSE_FLUSH -> openHandle(r.fixed(Fuse.FLUSH_IN).u64(), false);
            case Fuse.FUSE_FSYNC, Fuse.FUSE_FSYNCDIR -> fsync(r);
            case Fuse.FUSE_OPENDIR -> opendir(r, reply);
            case Fuse.FUSE_READDIR -> readdir(r, reply, false);
            case Fuse.FUSE_READDIRPLUS -> readdir(r, reply, true);
            case Fuse.FUSE_ACCESS -> access(r);
            case Fuse.FUSE_LSEEK -> lseek(r, reply);
            case Fuse.FUSE_FALLOCATE -> fallocate(r);
            case Fuse.FUSE_GETXATTR, Fuse.FUSE_LISTXATTR -> getxattr(r, reply);
            case Fuse.FUSE_SETXATTR -> setxattr(r);
            case Fuse.FUSE_REMOVEXATTR -> removexattr(r);
            default -> throw FuseError.refused(ENOSYS, "opcode " + r.opcode);
        }
        return reply.finish();
    }

    // ---- session ----

    private int init(FuseRequest r, FuseReply reply) throws FuseError {
        // Before 7.36 the kernel sent only the first four fields (16 bytes); since, all 64.
        Fields in = r.fixed(Fuse.INIT_IN, Math.max(16, Math.min(r.remaining(), Fuse.INIT_IN.byteSize())));
        int major = in.u32();
        int minor = in.u32();
        int maxReadahead = in.u32();
        int flags = in.u32();
        if (major != Fuse.FUSE_KERNEL_VERSION || minor < Fuse.SERVER_MINOR) {
            throw FuseError.refused(FsAbi.EPROTO, "FUSE " + major + "." + minor + " is not 7." + Fuse.SERVER_MINOR + " or later");
        }
        if (initialized) {
            throw FuseError.refused(EINVAL, "a second INIT");
        }
        initialized = true;
        reply.u32(Fuse.FUSE_KERNEL_VERSION).u32(Fuse.SERVER_MINOR).u32(maxReadahead).u32(flags & GRANTED_FLAGS)
                .u16((short) 64).u16((short) 48).u32(ADVERTISED_IO_PAGES * 4096).u32(1).u16((short) ADVERTISED_IO_PAGES).u16((short) 0)
                .u32(0).zeros(28);
        return reply.finish();
    }

    /** DESTROY: the guest unmounted; every node but the root and every handle go. */
    private void destroy() {
        handles.values().forEach(h -> h.file().close());
        handles.clear();
        for (Node node : List.copyOf(nodes.values())) {
            if (node.id() != Fuse.FUSE_ROOT_ID) {
                dropNode(node);
            }
        }
        initialized = false;
    }

    /** Ends the guest's session as DESTROY does (a device reset): every node but the root and every open file go; INIT comes next. */
    public synchronized void endSession() {
        destroy();
    }

    @Override
    public synchronized void close() {
        destroy();
        Node root = nodes.remove((long) Fuse.FUSE_ROOT_ID);
        if (root != null) {
            root.handle().close();
        }
        nodesByFile.clear();
    }

    // ---- snapshots ----

    /**
     * What a snapshot keeps of the guest's session: each node it holds (but the root) by its path in
     * the share, each open file and directory by its node and flags, and the next ids to hand out.
     * The guest's node ids are host handles, which no snapshot can carry: a restore finds the files
     * again by these paths.
     */
    public record Session(boolean initialized, long nextNodeId, long nextHandle, List<SavedNode> nodes, List<SavedHandle> handles) {}

    /**
     * A node: its id, its path below the share's root (names joined by {@code '/'}), its file type (the
     * {@code S_IFMT} bits of its mode), its lookup count.
     */
    public record SavedNode(long id, byte[] path, int type, long lookups) {}

    /** An open file or directory: its handle, its node, whether it is a directory, its access mode and O_APPEND. */
    public record SavedHandle(long fh, long nodeId, boolean directory, int flags) {}

    /**
     * Writes the guest's session ({@link Session}) for a snapshot. A node whose file has left the share
     * or is in no directory any more (an open file the guest unlinked, say) cannot be found by a path:
     * it and its open files are left out, and after a restore the guest gets EBADF for them.
     *
     * @return how many nodes were left out
     * @throws UncheckedIOException when the share's own path cannot be read
     */
    public synchronized int saveSession(StateWriter out) {
        byte[] root;
        try {
            root = nodes.get((long) Fuse.FUSE_ROOT_ID).handle().hostPath();
        } catch (NativeIoException e) {
            throw new UncheckedIOException("the shared folder " + share + " cannot be found for a snapshot: " + e.getMessage(), e);
        }
        List<SavedNode> saved = new ArrayList<>();
        Set<Long> savedIds = new HashSet<>();
        savedIds.add((long) Fuse.FUSE_ROOT_ID);
        for (Node node : nodes.values()) {
            byte[] path = node.id() == Fuse.FUSE_ROOT_ID ? null : pathBelow(root, node);
            if (path != null) {
                saved.add(new SavedNode(node.id(), path, node.identity().type(), node.lookups()[0]));
                savedIds.add(node.id());
            }
        }
        out.bool(initialized).i64(nextNodeId).i64(nextHandle);
        out.i32(saved.size());
        for (SavedNode node : saved) {
            out.i64(node.id()).bytes(node.path()).i32(node.type()).i64(node.lookups());
        }
        List<Map.Entry<Long, Handle>> open = handles.entrySet().stream().filter(e -> savedIds.contains(e.getValue().nodeId())).toList();
        out.i32(open.size());
        for (Map.Entry<Long, Handle> e : open) {
            out.i64(e.getKey()).i64(e.getValue().nodeId()).bool(e.getValue().directory()).i32(e.getValue().flags());
        }
        return nodes.size() - 1 - saved.size();
    }

    /** {@code node}'s path below {@code root} (the share's host path now), or null when it has none there. */
    private static byte[] pathBelow(byte[] root, Node node) {
        try {
            if (node.handle().stat().linkCount() == 0) {
                return null; // deleted: its /proc link names no file
            }
            byte[] path = node.handle().hostPath();
            int prefix = root.length == 1 ? 1 : root.length + 1; // the share may be "/" itself
            if (path.length <= prefix || !Arrays.equals(path, 0, root.length, root, 0, root.length) || path[prefix - 1] != '/') {
                return null; // moved out of the share by someone on the host
            }
            return Arrays.copyOfRange(path, prefix, path.length);
        } catch (NativeIoException e) {
            return null;
        }
    }

    /**
     * Reads a session {@link #saveSession} wrote, checking everything a hostile snapshot could get wrong
     * against this server's bounds, and changes nothing: node ids and handles unique and below the next
     * ones, paths of valid names (never {@code .} or {@code ..}, empty, or with NUL), open files only of
     * saved nodes, flags an open file can have, and no file open for writing in a read-only share.
     *
     * @throws StateFormatException naming the first value that is wrong
     */
    public Session readSession(StateReader in) {
        boolean initialized = in.bool("FUSE session started");
        long nextNode = in.i64("next node id");
        long nextFh = in.i64("next file handle");
        if (nextNode <= Fuse.FUSE_ROOT_ID || nextNode > MAX_SAVED_ID || nextFh < 1 || nextFh > MAX_SAVED_ID) {
            throw in.fail("next node id " + nextNode + " or next file handle " + nextFh + " is out of range");
        }
        int nodeCount = in.count(maxNodes - 1, "shared folder node");
        if (!initialized && nodeCount != 0) {
            throw in.fail(nodeCount + " nodes in a FUSE session that never started");
        }
        List<SavedNode> saved = new ArrayList<>(nodeCount);
        Set<Long> ids = new HashSet<>();
        for (int i = 0; i < nodeCount; i++) {
            long id = in.i64("node id");
            byte[] path = in.bytes(FsAbi.PATH_MAX, "node " + id + " path");
            int type = in.i32("node " + id + " file type");
            long lookups = in.i64("node " + id + " lookup count");
            if (id <= Fuse.FUSE_ROOT_ID || id >= nextNode || !ids.add(id)) {
                throw in.fail("node id " + id + " is the root's, repeated, or not below the next node id " + nextNode);
            }
            if (!validPath(path)) {
                throw in.fail("node " + id + " has a path that is not names of the share joined by '/'");
            }
            if ((type & ~FsAbi.S_IFMT) != 0 || type == 0) {
                throw in.fail("node " + id + " has file type 0" + Integer.toOctalString(type) + ", which is no file type");
            }
            if (lookups < 1) {
                throw in.fail("node " + id + " has lookup count " + lookups);
            }
            saved.add(new SavedNode(id, path, type, lookups));
        }
        int handleCount = in.count(maxHandles, "shared folder open file");
        if (!initialized && handleCount != 0) {
            throw in.fail(handleCount + " open files in a FUSE session that never started");
        }
        List<SavedHandle> open = new ArrayList<>(handleCount);
        Set<Long> fhs = new HashSet<>();
        for (int i = 0; i < handleCount; i++) {
            long fh = in.i64("file handle");
            long nodeId = in.i64("file handle " + fh + " node");
            boolean directory = in.bool("file handle " + fh + " is a directory");
            int flags = in.i32("file handle " + fh + " flags");
            if (fh < 1 || fh >= nextFh || !fhs.add(fh)) {
                throw in.fail("file handle " + fh + " is repeated or not between 1 and the next file handle " + nextFh);
            }
            if (nodeId != Fuse.FUSE_ROOT_ID && !ids.contains(nodeId)) {
                throw in.fail("file handle " + fh + " is of node " + nodeId + ", which the snapshot does not have");
            }
            int access = flags & FsAbi.O_ACCMODE;
            if ((flags & ~KEPT_OPEN_FLAGS) != 0 || access == FsAbi.O_ACCMODE || directory && flags != FsAbi.O_RDONLY) {
                throw in.fail("file handle " + fh + " has open flags 0x" + Integer.toHexString(flags) + ", which no open file of a share has");
            }
            if (readOnly && access != FsAbi.O_RDONLY) {
                throw in.fail("file handle " + fh + " is open for writing, and the share is read-only");
            }
            open.add(new SavedHandle(fh, nodeId, directory, flags));
        }
        return new Session(initialized, nextNode, nextFh, saved, open);
    }

    /** One or more valid names ({@link FileName#problem}) joined by single '/'s: a path that stays below where it starts. */
    private static boolean validPath(byte[] path) {
        return names(path).stream().allMatch(name -> FileName.problem(name) == 0);
    }

    /** The parts of {@code path} between its '/'s, empty ones included. */
    private static List<byte[]> names(byte[] path) {
        List<byte[]> names = new ArrayList<>();
        int start = 0;
        for (int i = 0; i <= path.length; i++) {
            if (i == path.length || path[i] == '/') {
                names.add(Arrays.copyOfRange(path, start, i));
                start = i + 1;
            }
        }
        return names;
    }

    /**
     * Puts a session {@link #readSession} read in place of this server's, which ends first (as by a
     * device reset). Each node is opened again by walking its path from the share's root one name at
     * a time, never following a symbolic link, so no snapshot can name a file outside the share; each
     * open file is opened again with its flags (never truncating). A node whose path leads nowhere now,
     * to a file of another type, or to a file another node already has, is left out with its open
     * files, and the guest gets EBADF for them.
     *
     * @return how many nodes and open files were left out
     */
    public synchronized int restoreSession(Session session) {
        destroy();
        Node root = nodes.get((long) Fuse.FUSE_ROOT_ID);
        int lost = 0;
        for (SavedNode saved : session.nodes()) {
            PathHandle handle = null;
            try {
                handle = walk(root.handle(), saved.path());
                FileStat stat = handle.stat();
                FileKey key = new FileKey(stat.device(), stat.inode());
                if (stat.type() != saved.type() || nodesByFile.containsKey(key)) {
                    handle.close();
                    lost++;
                    continue;
                }
                Node node = new Node(saved.id(), handle, stat, new long[] {saved.lookups()});
                nodes.put(node.id(), node);
                nodesByFile.put(key, node);
            } catch (NativeIoException | IllegalArgumentException e) {
                if (handle != null) {
                    handle.close();
                }
                lost++;
            }
        }
        for (SavedHandle saved : session.handles()) {
            Node node = nodes.get(saved.nodeId());
            if (node == null || (saved.directory() ? !node.isDirectory() : !node.identity().isRegularFile())) {
                lost++;
                continue;
            }
            try {
                OpenFile file = node.handle().reopen(saved.directory() ? FsAbi.O_RDONLY | FsAbi.O_DIRECTORY : saved.flags());
                handles.put(saved.fh(), new Handle(node.id(), file, saved.directory(), saved.flags()));
            } catch (NativeIoException e) {
                lost++;
            }
        }
        nextNodeId = session.nextNodeId();
        nextHandle = session.nextHandle();
        initialized = session.initialized();
        return lost;
    }

    /** The file at {@code path} (valid: {@link #validPath}) below {@code from}, each name opened with O_NOFOLLOW relative to the one before. */
    private static PathHandle walk(PathHandle from, byte[] path) throws NativeIoException {
        PathHandle at = null;
        try {
            for (byte[] name : names(path)) {
                PathHandle next = (at == null ? from : at).lookup(FileName.of(name));
                if (at != null) {
                    at.close();
                }
                at = next;
            }
            return at;
        } catch (NativeIoException | RuntimeException e) {
            if (at != null) {
                at.close();
            }
            throw e;
        }
    }

    // ---- nodes ----

    private Node node(long id) throws FuseError {
        Node node = nodes.get(id);
        if (node == null) {
            throw FuseError.refused(EBADF, "unknown node " + id);
        }
        return node;
    }

    private Node directory(long id) throws FuseError {
        Node node = node(id);
        if (!node.isDirectory()) {
            throw FuseError.refused(ENOTDIR, "node " + id + " is not a directory");
        }
        return node;
    }

    private void writable() throws FuseError {
        if (readOnly) {
            throw FuseError.refused(EROFS, "the share is read-only");
        }
    }

    /**
     * Takes {@code handle} (just opened relative to a node of the share) as a node: the one already
     * known for the same file, its lookup count raised, or a new one. Consumes {@code handle}.
     */
    private Node remember(PathHandle handle) throws FuseError, NativeIoException {
        try {
            FileStat stat = handle.stat();
            FileKey key = new FileKey(stat.device(), stat.inode());
            Node known = nodesByFile.get(key);
            if (known != null) {
                known.lookups()[0]++;
                handle.close();
                return known;
            }
            if (nodes.size() >= maxNodes) {
                throw FuseError.refused(FsAbi.ENFILE, "the share already has " + maxNodes + " nodes");
            }
            Node node = new Node(nextNodeId++, handle, stat, new long[] {1});
            nodes.put(node.id(), node);
            nodesByFile.put(key, node);
            return node;
        } catch (FuseError | NativeIoException | RuntimeException e) {
            handle.close();
            throw e;
        }
    }

    private Node lookup(Node parent, FileName name) throws FuseError, NativeIoException {
        return remember(parent.handle().lookup(name));
    }

    /** A node and the attributes its lookup saw. */
    private record Entry(Node node, FileStat stat) {}

    /**
     * LOOKUP's work, the guest's commonest request: a file that already is a node (the node's handle
     * keeps its inode from being reused) is found with one {@code fstatat}, without opening it again.
     */
    private Entry entry(Node parent, FileName name) throws FuseError, NativeIoException {
        FileStat stat = parent.handle().stat(name);
        Node known = nodesByFile.get(new FileKey(stat.device(), stat.inode()));
        if (known != null) {
            known.lookups()[0]++;
            return new Entry(known, stat);
        }
        Node node = lookup(parent, name);
        return new Entry(node, node.handle().stat());
    }

    private void forget(long nodeId, long count) {
        Node node = nodes.get(nodeId);
        if (node == null || node.id() == Fuse.FUSE_ROOT_ID) {
            return; // the root is never forgotten; an unknown node has nothing to drop
        }
        node.lookups()[0] -= count;
        if (node.lookups()[0] <= 0 || count < 0) {
            dropNode(node);
        }
    }

    private void dropNode(Node node) {
        nodes.remove(node.id());
        nodesByFile.remove(new FileKey(node.identity().device(), node.identity().inode()));
        node.handle().close();
    }

    private void batchForget(FuseRequest r) throws FuseError {
        long count = Integer.toUnsignedLong(r.fixed(Fuse.BATCH_FORGET_IN).u32());
        if (count > r.remaining() / Fuse.FORGET_ONE.byteSize()) {
            throw FuseError.malformed(EINVAL, "BATCH_FORGET of " + count + " nodes in " + r.remaining() + " bytes");
        }
        for (long i = 0; i < count; i++) {
            Fields one = r.fixed(Fuse.FORGET_ONE);
            forget(one.u64(), one.u64());
        }
    }

    private void lookupOp(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        byte[] name = r.lookupName();
        Entry found;
        if (name.length == 1 && name[0] == '.') {
            parent.lookups()[0]++;
            found = new Entry(parent, parent.handle().stat());
        } else if (name.length == 2 && name[0] == '.' && name[1] == '.') {
            Node up = parentOf(parent);
            found = new Entry(up, up.handle().stat());
        } else {
            found = entry(parent, FileName.of(name));
        }
        reply.entryOut(found.node().id(), found.stat());
    }

    /** {@code ..}: the root's is the root; any other's must be a node the guest already holds, so it stays in the share. */
    private Node parentOf(Node directory) throws FuseError, NativeIoException {
        if (directory.id() == Fuse.FUSE_ROOT_ID) {
            directory.lookups()[0]++;
            return directory;
        }
        try (PathHandle up = directory.handle().parent()) {
            FileStat stat = up.stat();
            Node known = nodesByFile.get(new FileKey(stat.device(), stat.inode()));
            if (known == null) {
                throw FuseError.refused(ENOENT, "the parent of node " + directory.id() + " is not a node of the share");
            }
            known.lookups()[0]++;
            return known;
        }
    }

    // ---- attributes ----

    private void getattr(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node node = node(r.nodeId);
        r.fixed(Fuse.GETATTR_IN, 0); // the flags and handle add nothing: the node's handle is the file
        reply.attrOut(node.handle().stat());
    }

    private void setattr(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node node = node(r.nodeId);
        Fields in = r.fixed(Fuse.SETATTR_IN);
        int valid = in.u32();
        in.u32();
        long fh = in.u64();
        long size = in.u64();
        in.u64(); // lock_owner
        long atime = in.u64();
        long mtime = in.u64();
        in.u64(); // ctime: the host sets it
        int atimeNanos = in.u32();
        int mtimeNanos = in.u32();
        in.u32();
        int mode = in.u32();
        in.u32();
        int uid = in.u32();
        int gid = in.u32();
        writable();
        PathHandle file = node.handle();
        if ((valid & Fuse.FATTR_MODE) != 0) {
            if (node.identity().isSymbolicLink()) {
                throw FuseError.refused(EOPNOTSUPP, "a symbolic link has no mode of its own");
            }
            file.chmod(mode);
        }
        if ((valid & (Fuse.FATTR_UID | Fuse.FATTR_GID)) != 0) {
            file.chown((valid & Fuse.FATTR_UID) != 0 ? uid : -1, (valid & Fuse.FATTR_GID) != 0 ? gid : -1);
        }
        if ((valid & Fuse.FATTR_SIZE) != 0) {
            truncate(node, (valid & Fuse.FATTR_FH) != 0 ? fh : -1, FuseRequest.offset(size));
        }
        if ((valid & (Fuse.FATTR_ATIME | Fuse.FATTR_MTIME | Fuse.FATTR_ATIME_NOW | Fuse.FATTR_MTIME_NOW)) != 0) {
            long[] a = time(valid, Fuse.FATTR_ATIME, Fuse.FATTR_ATIME_NOW, atime, atimeNanos);
            long[] m = time(valid, Fuse.FATTR_MTIME, Fuse.FATTR_MTIME_NOW, mtime, mtimeNanos);
            file.setTimes(a[0], a[1], m[0], m[1]);
        }
        reply.attrOut(file.stat());
    }

    private static long[] time(int valid, int set, int now, long seconds, int nanos) throws FuseError {
        if ((valid & now) != 0) {
            return new long[] {0, FsAbi.UTIME_NOW};
        }
        if ((valid & set) == 0) {
            return new long[] {0, FsAbi.UTIME_OMIT};
        }
        if (Integer.toUnsignedLong(nanos) >= 1_000_000_000L) {
            throw FuseError.refused(EINVAL, "nanoseconds " + Integer.toUnsignedString(nanos));
        }
        return new long[] {seconds, nanos};
    }

    private void truncate(Node node, long fh, long size) throws FuseError, NativeIoException {
        if (fh >= 0 && handles.containsKey(fh)) {
            Handle h = handles.get(fh);
            if (h.nodeId() != node.id() || !h.writable()) {
                throw FuseError.refused(EBADF, "handle " + fh + " cannot truncate node " + node.id());
            }
            h.file().truncate(size);
            return;
        }
        requireRegular(node);
        try (OpenFile file = node.handle().reopen(FsAbi.O_WRONLY)) {
            file.truncate(size);
        }
    }

    private static void requireRegular(Node node) throws FuseError {
        if (node.isDirectory()) {
            throw FuseError.refused(EISDIR, "node " + node.id() + " is a directory");
        }
        if (!node.identity().isRegularFile()) {
            throw FuseError.refused(EINVAL, "node " + node.id() + " is not a regular file");
        }
    }

    private void readlink(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node node = node(r.nodeId);
        if (!node.identity().isSymbolicLink()) {
            throw FuseError.refused(EINVAL, "node " + r.nodeId + " is not a symbolic link");
        }
        reply.bytes(node.handle().readLink());
    }

    private void statfs(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        FileSystemStats s = node(r.nodeId).handle().fileSystemStats();
        reply.u64(s.blocks()).u64(s.freeBlocks()).u64(s.availableBlocks()).u64(s.files()).u64(s.freeFiles())
                .u32((int) s.blockSize()).u32((int) s.nameMax()).u32((int) s.fragmentSize()).u32(0).zeros(24);
    }

    private void access(FuseRequest r) throws FuseError {
        node(r.nodeId);
        int mask = r.fixed(Fuse.ACCESS_IN).u32();
        // The guest's kernel checks permissions itself (virtio-fs mounts with default_permissions);
        // what it cannot know is that the share refuses writes.
        if ((mask & W_OK) != 0) {
            writable();
        }
    }

    // ---- names ----

    /** The entry of {@code name}, which exists. */
    private void entryOf(Node parent, FileName name, FuseReply reply) throws FuseError, NativeIoException {
        Node node = lookup(parent, name);
        reply.entryOut(node.id(), node.handle().stat());
    }

    /** The entry of {@code name}, just made for {@code r}'s caller with {@code mode} (or -1 for a symbolic link, which has none). */
    private void madeEntry(FuseRequest r, Node parent, FileName name, int mode, FuseReply reply) throws FuseError, NativeIoException {
        Node node = lookup(parent, name);
        giveToCaller(r, parent, node.handle());
        if (mode >= 0) {
            applyMode(node.handle(), mode);
        }
        reply.entryOut(node.id(), node.handle().stat());
    }

    /**
     * Gives a file this server just made to the guest's caller, as the guest's kernel would, when
     * this process may give files away (it runs as root, as virtiofsd does): else every file the
     * guest made would be the VMM's user's, and a guest user other than root could not write the
     * file it just created, its kernel checking permissions itself. In a setgid directory the group
     * stays the directory's. Before the mode: a chown clears a regular file's setuid and setgid bits.
     */
    private void giveToCaller(FuseRequest r, Node parent, PathHandle file) throws NativeIoException {
        if (ownerFromCaller) {
            boolean setgidDirectory = (parent.handle().stat().mode() & FsAbi.S_ISGID) != 0;
            file.chown(r.uid, setgidDirectory ? -1 : r.gid);
        }
    }

    /**
     * Gives a file this server just made the permission bits the guest asked for: the guest's kernel
     * already applied the guest's umask and decided the setuid and setgid bits, and the host's umask
     * (this process's, which Java cannot set per thread) must not take more away, nor a chown to
     * the caller the bits it clears. Bits the host added (a setgid directory's) stay.
     */
    private static void applyMode(PathHandle file, int mode) throws NativeIoException {
        int current = file.stat().mode() & 07777;
        int wanted = (current & 07000) | (mode & 07777);
        if (current != wanted) {
            file.chmod(wanted);
        }
    }

    private void symlink(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        FileName name = r.name();
        byte[] target = r.string(FsAbi.PATH_MAX - 1, "a link target");
        if (target.length == 0) {
            throw FuseError.refused(FsAbi.ENOENT, "an empty link target");
        }
        writable();
        parent.handle().symlink(name, target);
        madeEntry(r, parent, name, -1, reply);
    }

    private void mknod(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        Fields in = r.fixed(Fuse.MKNOD_IN);
        int mode = in.u32();
        FileName name = r.name();
        writable();
        if ((mode & FsAbi.S_IFMT) != FsAbi.S_IFREG) {
            throw FuseError.refused(EPERM, "only regular files may be made with MKNOD");
        }
        parent.handle().makeRegularFile(name, mode);
        madeEntry(r, parent, name, mode, reply);
    }

    private void mkdir(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        int mode = r.fixed(Fuse.MKDIR_IN).u32();
        FileName name = r.name();
        writable();
        parent.handle().makeDirectory(name, mode);
        madeEntry(r, parent, name, mode, reply);
    }

    private void remove(FuseRequest r) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        FileName name = r.name();
        writable();
        parent.handle().remove(name, r.opcode == Fuse.FUSE_RMDIR);
    }

    private void rename(FuseRequest r) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        long newDirectory;
        int flags = 0;
        if (r.opcode == Fuse.FUSE_RENAME2) {
            Fields in = r.fixed(Fuse.RENAME2_IN);
            newDirectory = in.u64();
            flags = in.u32();
        } else {
            newDirectory = r.fixed(Fuse.RENAME_IN).u64();
        }
        FileName name = r.name();
        FileName newName = r.name();
        Node target = directory(newDirectory);
        if ((flags & ~(FsAbi.RENAME_NOREPLACE | FsAbi.RENAME_EXCHANGE)) != 0) {
            throw FuseError.refused(EINVAL, "rename flags " + Integer.toHexString(flags));
        }
        writable();
        parent.handle().rename(name, target.handle(), newName, flags);
    }

    private void link(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        long existing = r.fixed(Fuse.LINK_IN).u64();
        FileName name = r.name();
        Node target = node(existing); // only a node of the share the guest holds
        if (target.isDirectory()) {
            throw FuseError.refused(EPERM, "a directory cannot be hard-linked");
        }
        writable();
        parent.handle().link(target.handle(), name);
        entryOf(parent, name, reply);
    }

    // ---- files ----

    /** {@code flags}: the open(2) flags the file was opened with; those a restore may open it with again are kept. */
    private long addHandle(Node node, OpenFile file, boolean directory, int flags) throws FuseError {
        if (handles.size() >= maxHandles) {
            file.close();
            throw FuseError.refused(FsAbi.ENFILE, "the share already has " + maxHandles + " open files");
        }
        long fh = nextHandle++;
        handles.put(fh, new Handle(node.id(), file, directory, flags & KEPT_OPEN_FLAGS));
        return fh;
    }

    private Handle openHandle(long fh, boolean directory) throws FuseError {
        Handle h = handles.get(fh);
        if (h == null || h.directory() != directory) {
            throw FuseError.refused(EBADF, "unknown " + (directory ? "directory " : "file ") + "handle " + fh);
        }
        return h;
    }

    private static boolean writes(int flags) {
        return (flags & FsAbi.O_ACCMODE) != FsAbi.O_RDONLY || (flags & FsAbi.O_TRUNC) != 0;
    }

    private void open(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node node = node(r.nodeId);
        int flags = r.fixed(Fuse.OPEN_IN).u32() & PASSED_OPEN_FLAGS;
        requireRegular(node);
        if (writes(flags)) {
            writable();
        }
        OpenFile file = node.handle().reopen(flags);
        long fh = addHandle(node, file, false, flags);
        reply.u64(fh).u32(cache.openFlags()).u32(0);
    }

    private void create(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node parent = directory(r.nodeId);
        Fields in = r.fixed(Fuse.CREATE_IN);
        int flags = in.u32() & (PASSED_OPEN_FLAGS | FsAbi.O_EXCL);
        int mode = in.u32();
        FileName name = r.name();
        writable();
        // With O_EXCL first, to know whether the file is new and so needs the guest's mode.
        OpenFile file;
        boolean made = true;
        try {
            file = parent.handle().create(name, flags | FsAbi.O_EXCL, mode);
        } catch (NativeIoException e) {
            if (e.errno() != FsAbi.EEXIST || (flags & FsAbi.O_EXCL) != 0) {
                throw e;
            }
            file = parent.handle().create(name, flags, mode);
            made = false;
        }
        Node node;
        try {
            node = lookup(parent, name);
            if (!file.stat().sameFile(node.identity())) {
                forget(node.id(), 1);
                throw FuseError.refused(EIO, name + " was replaced while it was created");
            }
            if (made) {
                giveToCaller(r, parent, node.handle());
                applyMode(node.handle(), mode);
            }
        } catch (FuseError | NativeIoException | RuntimeException e) {
            file.close();
            throw e;
        }
        long fh;
        try {
            fh = addHandle(node, file, false, flags);
        } catch (FuseError e) {
            forget(node.id(), 1);
            throw e;
        }
        reply.entryOut(node.id(), node.handle().stat()).u64(fh).u32(cache.openFlags()).u32(0);
    }

    private void read(FuseRequest r, FuseReply reply, ReadBuffers readInto) throws FuseError, NativeIoException {
        Fields in = r.fixed(Fuse.READ_IN);
        Handle h = openHandle(in.u64(), false);
        long offset = FuseRequest.offset(in.u64());
        int size = FuseRequest.size(in.u32(), MAX_IO_BYTES, "READ size");
        FuseRequest.range(offset, size);
        if (readInto == null) {
            MemorySegment room = reply.room(size);
            reply.keep(h.file().read(offset, room));
        } else {
            readInto.limit(size);
            long read = h.file().read(offset, readInto.vector);
            reply.keepOutside(read);
            readInto.filled = read;
        }
    }

    private void write(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Fields in = r.fixed(Fuse.WRITE_IN);
        long fh = in.u64();
        long offset = FuseRequest.offset(in.u64());
        int size = FuseRequest.size(in.u32(), MAX_IO_BYTES, "WRITE size");
        FuseRequest.range(offset, size);
        MemorySegment data = r.rest(size);
        writable();
        Handle h = openHandle(fh, false);
        if (!h.writable()) {
            throw FuseError.refused(EBADF, "handle " + fh + " is not open for writing");
        }
        long written = h.file().write(offset, data);
        reply.u32((int) written).u32(0);
    }

    private void release(FuseRequest r) throws FuseError {
        long fh = r.fixed(Fuse.RELEASE_IN).u64();
        Handle h = openHandle(fh, r.opcode == Fuse.FUSE_RELEASEDIR);
        handles.remove(fh);
        h.file().close();
    }

    private void fsync(FuseRequest r) throws FuseError, NativeIoException {
        Fields in = r.fixed(Fuse.FSYNC_IN);
        Handle h = openHandle(in.u64(), r.opcode == Fuse.FUSE_FSYNCDIR);
        h.file().sync((in.u32() & Fuse.FUSE_FSYNC_FDATASYNC) != 0);
    }

    private void lseek(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Fields in = r.fixed(Fuse.LSEEK_IN);
        Handle h = openHandle(in.u64(), false);
        long offset = FuseRequest.offset(in.u64());
        int whence = in.u32();
        if (whence != FsAbi.SEEK_DATA && whence != FsAbi.SEEK_HOLE) {
            throw FuseError.refused(EINVAL, "LSEEK serves SEEK_DATA and SEEK_HOLE, not " + whence);
        }
        reply.u64(h.file().seek(offset, whence));
    }

    private void fallocate(FuseRequest r) throws FuseError, NativeIoException {
        Fields in = r.fixed(Fuse.FALLOCATE_IN);
        long fh = in.u64();
        long offset = FuseRequest.offset(in.u64());
        long length = in.u64();
        int mode = in.u32();
        if (length <= 0) {
            throw FuseError.refused(EINVAL, "FALLOCATE of " + length + " bytes");
        }
        FuseRequest.range(offset, length);
        if ((mode & ~(FsAbi.FALLOC_FL_KEEP_SIZE | FsAbi.FALLOC_FL_PUNCH_HOLE)) != 0) {
            throw FuseError.refused(EOPNOTSUPP, "fallocate mode " + Integer.toHexString(mode));
        }
        writable();
        Handle h = openHandle(fh, false);
        if (!h.writable()) {
            throw FuseError.refused(EBADF, "handle " + fh + " is not open for writing");
        }
        h.file().allocate(mode, offset, length);
    }

    // ---- directories ----

    private void opendir(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node node = directory(r.nodeId);
        r.fixed(Fuse.OPEN_IN);
        OpenFile listing = node.handle().reopen(FsAbi.O_RDONLY | FsAbi.O_DIRECTORY);
        reply.u64(addHandle(node, listing, true, FsAbi.O_RDONLY)).u32(0).u32(0);
    }

    /**
     * READDIR and READDIRPLUS: entries from the offset on, as many as fit the size asked. For PLUS,
     * each entry but {@code .} and {@code ..} is looked up (and so counted) only once it is sure to fit.
     */
    private void readdir(FuseRequest r, FuseReply reply, boolean plus) throws FuseError, NativeIoException {
        Fields in = r.fixed(Fuse.READ_IN);
        Handle h = openHandle(in.u64(), true);
        long offset = FuseRequest.offset(in.u64());
        int size = FuseRequest.size(in.u32(), MAX_IO_BYTES, "READDIR size");
        Node parent = node(h.nodeId());
        long budget = Math.min(size, reply.remaining());
        while (true) {
            List<DirEntry> entries = h.file().readDirectory(offset, DIRECTORY_CHUNK);
            if (entries.isEmpty()) {
                return;
            }
            for (DirEntry e : entries) {
                long direntBytes = (Fuse.DIRENT.byteSize() + e.name().length + 7) & ~7L;
                long bytes = direntBytes + (plus ? Fuse.ENTRY_OUT.byteSize() : 0);
                if (bytes > budget) {
                    return;
                }
                if (plus) {
                    plusEntry(parent, e, reply);
                }
                reply.u64(e.inode()).u64(e.nextOffset()).u32(e.name().length).u32(e.type()).bytes(e.name())
                        .zeros(direntBytes - Fuse.DIRENT.byteSize() - e.name().length);
                budget -= bytes;
                offset = e.nextOffset();
            }
        }
    }

    private void plusEntry(Node parent, DirEntry e, FuseReply reply) throws FuseError, NativeIoException {
        if (e.isDotOrDotDot() || FileName.problem(e.name()) != 0) {
            reply.entryOut(0, null); // the kernel looks these up itself
            return;
        }
        Entry entry;
        try {
            entry = entry(parent, FileName.of(e.name()));
        } catch (NativeIoException | FuseError gone) {
            reply.entryOut(0, null); // removed since it was listed, or no room for another node: the guest looks it up later
            return;
        }
        reply.entryOut(entry.node().id(), entry.stat());
    }

    // ---- extended attributes ----

    /** Xattrs of regular files and directories only: {@code /proc/self/fd} of a symlink's handle is not for them. */
    private Node xattrNode(long id) throws FuseError {
        Node node = node(id);
        if (!node.isDirectory() && !node.identity().isRegularFile()) {
            throw FuseError.refused(EOPNOTSUPP, "extended attributes of node " + id + ", which is neither a file nor a directory");
        }
        return node;
    }

    private void getxattr(FuseRequest r, FuseReply reply) throws FuseError, NativeIoException {
        Node node = xattrNode(r.nodeId);
        int size = FuseRequest.size(r.fixed(Fuse.GETXATTR_IN).u32(), FsAbi.XATTR_SIZE_MAX, "xattr size");
        byte[] name = r.opcode == Fuse.FUSE_GETXATTR ? r.xattrName() : null;
        if (size == 0) {
            long length = name != null ? node.handle().getXattr(name, MemorySegment.NULL) : node.handle().listXattrs(MemorySegment.NULL);
            reply.u32((int) length).u32(0);
            return;
        }
        MemorySegment room = reply.room(size);
        reply.keep(name != null ? node.handle().getXattr(name, room) : node.handle().listXattrs(room));
    }

    private void setxattr(FuseRequest r) throws FuseError, NativeIoException {
        Node node = xattrNode(r.nodeId);
        // Without FUSE_SETXATTR_EXT (not granted) the kernel sends the 8-byte form: size and flags.
        Fields in = r.fixed(Fuse.SETXATTR_IN, Fuse.FUSE_COMPAT_SETXATTR_IN_SIZE);
        int size = FuseRequest.size(in.u32(), FsAbi.XATTR_SIZE_MAX, "xattr size");
        int flags = in.u32();
        byte[] name = r.xattrName();
        MemorySegment value = r.rest(size);
        if ((flags & ~(FsAbi.XATTR_CREATE | FsAbi.XATTR_REPLACE)) != 0) {
            throw FuseError.refused(EINVAL, "xattr flags " + Integer.toHexString(flags));
        }
        writable();
        node.handle().setXattr(name, value, flags);
    }

    private void removexattr(FuseRequest r) throws FuseError, NativeIoException {
        Node node = xattrNode(r.nodeId);
        byte[] name = r.xattrName();
        writable();
        node.handle().removeXattr(name);
    }

    @Override
    public String toString() {
        return "FUSE server of " + share + (readOnly ? " (read-only)" : "") + ", cache=" + cache.name().toLowerCase(Locale.ROOT);
    }

    /**
     * The guest's own buffers that follow a READ's reply header, so the kernel copies the file's
     * data into them with one {@code preadv}, instead of a read into the reply buffer and a copy.
     * Reused per queue: {@link #reset} before each request.
     */
    static final class ReadBuffers {
        /** The guest's buffers, as a native iovec array: no object per buffer. */
        final IoVector vector;
        /** The data bytes the last READ put into {@link #vector} (0 when it failed or was not a READ). */
        long filled;

        ReadBuffers(int maxParts) {
            vector = new IoVector(maxParts);
        }

        /** Empties the buffers, for a request to fill {@link #vector} anew. */
        void reset() {
            vector.clear();
            filled = 0;
        }

        /** Trims the buffers to the first {@code size} bytes. Too little room is the guest's error. */
        void limit(int size) throws FuseError {
            if (size > vector.bytes()) {
                throw FuseError.malformed(EINVAL, "a READ of " + size + " bytes into " + vector.bytes() + " bytes of buffers");
            }
            vector.truncate(size);
        }
    }
}
