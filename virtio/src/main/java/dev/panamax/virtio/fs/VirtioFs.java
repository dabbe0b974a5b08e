package dev.panamax.virtio.fs;

import dev.panamax.sys.SyscallProfile;
import dev.panamax.sys.FsAbi;
import dev.panamax.sys.NativeIoException;
import dev.panamax.virtio.DescriptorChain;
import dev.panamax.virtio.VirtQueue;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * A virtio file system device (VIRTIO 1.x, 5.11, device type 26) whose FUSE server runs in
 * Panamax ({@link FuseServer}): the guest mounts it with {@code mount -t virtiofs TAG DIR}.
 *
 * <p>Two queues, each with its I/O thread: queue 0 is the hiprio queue (FORGET and BATCH_FORGET,
 * which get no reply, taken in batches while they keep coming: {@link #serve}), queue 1 the one
 * request queue. Each chain's device-readable part (the {@code fuse_in_header}, the arguments, a
 * WRITE's data) is copied into a bounded native buffer of its queue, the server answers into a
 * second one, and the reply is copied into the chain's device-writable part; a READ's data is read
 * by the kernel straight into the guest's buffers after the reply header (one copy, as virtiofsd
 * does with shared memory). A request longer than the
 * buffer (more than a 1 MiB WRITE with its headers) is answered EIO; a reply that does not fit the
 * writable part becomes an error reply, or, when not even a {@code fuse_out_header} fits, the chain
 * is used with 0 bytes. Both are counted. Nothing a request holds fails the device: only a
 * malformed queue does.
 *
 * <p>A snapshot keeps the guest's FUSE session by paths ({@link FuseServer#saveSession}): its node ids
 * and open files are host handles, which a restore opens again by walking those paths from the share's
 * root. The share's files themselves are the host's and are not in the snapshot.
 */
public final class VirtioFs extends VirtioDevice {
    public static final int DEVICE_TYPE = 26;
    /** Room for a 1 MiB READ or WRITE, 256 page buffers and four header buffers, in one chain. */
    public static final int DEFAULT_QUEUE_SIZE = 512;
    /** The hiprio queue and one request queue. */
    public static final int QUEUE_COUNT = 2;
    static final int HIPRIO = 0;
    static final int REQUESTS = 1;
    /** struct virtio_fs_config: u8 tag[36], le32 num_request_queues. */
    public static final int MAX_TAG_BYTES = 36;
    static final int CONFIG_SIZE = MAX_TAG_BYTES + 4;
    /** A request queue's request and reply buffers: the largest READ or WRITE, with room for headers, names and an xattr value. */
    static final int REQUEST_BUFFER_BYTES = FuseServer.MAX_IO_BYTES + 128 * 1024;
    /** The hiprio queue carries only FORGETs: a BATCH_FORGET of 4000 nodes fits. */
    static final int HIPRIO_BUFFER_BYTES = 64 * 1024;
    /** While FORGETs keep coming, how long the hiprio queue's thread lets them gather before it takes them. */
    static final long FORGET_BATCH_NANOS = 10_000_000;
    /** Looks at the hiprio ring that found nothing before its thread asks the guest to notify again, and sleeps. */
    static final int IDLE_FORGET_LOOKS = 3;
    private static final System.Logger LOG = System.getLogger(VirtioFs.class.getName());

    private final String tag;
    private final Path share;
    private final boolean readOnly;
    private final CacheMode cache;
    private final FuseServer server;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment[] requestBuffers = new MemorySegment[QUEUE_COUNT];
    private final MemorySegment[] replyBuffers = new MemorySegment[QUEUE_COUNT];
    private final FuseServer.ReadBuffers[] readBuffers = new FuseServer.ReadBuffers[QUEUE_COUNT];
    private final AtomicLong oversizedRequests = new AtomicLong();
    private final AtomicLong unansweredRequests = new AtomicLong();
    /** The session a restore read ({@link #checkIdentity}), put in place once the device's state is. */
    private FuseServer.Session restoredSession;

    /** A share with cache=auto. */
    public VirtioFs(String id, String tag, Path share, boolean readOnly, int queueSize) {
        this(id, tag, share, readOnly, CacheMode.AUTO, queueSize);
    }

    /**
     * @param id       names the device in logs and thread names
     * @param tag      the name the guest mounts, 1 to {@value #MAX_TAG_BYTES} bytes of UTF-8 without NUL
     * @param share    the host directory served
     * @param readOnly whether every change is refused (EROFS)
     * @param cache    what the guest may cache of the share, and for how long
     * @throws IllegalArgumentException for a bad tag, or a share that is not a directory
     * @throws UncheckedIOException     when the share cannot be opened
     */
    public VirtioFs(String id, String tag, Path share, boolean readOnly, CacheMode cache, int queueSize) {
        super("virtio-fs (" + id + ")", DEVICE_TYPE, 0, QUEUE_COUNT, queueSize, CONFIG_SIZE);
        String problem = tagProblem(tag);
        if (problem != null) {
            super.close();
            throw new IllegalArgumentException(problem);
        }
        this.tag = tag;
        this.share = share;
        this.readOnly = readOnly;
        this.cache = cache;
        byte[] tagBytes = tag.getBytes(StandardCharsets.UTF_8);
        System.arraycopy(tagBytes, 0, config, 0, tagBytes.length); // the rest stays NUL
        ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).putInt(MAX_TAG_BYTES, QUEUE_COUNT - 1);
        try {
            this.server = new FuseServer(share, readOnly, cache);
        } catch (NativeIoException e) {
            super.close();
            arena.close();
            throw new UncheckedIOException("cannot open the shared folder " + share + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            super.close();
            arena.close();
            throw e;
        }
        requestBuffers[HIPRIO] = arena.allocate(HIPRIO_BUFFER_BYTES, 8);
        replyBuffers[HIPRIO] = arena.allocate(HIPRIO_BUFFER_BYTES, 8);
        requestBuffers[REQUESTS] = arena.allocate(REQUEST_BUFFER_BYTES, 8);
        replyBuffers[REQUESTS] = arena.allocate(REQUEST_BUFFER_BYTES, 8);
        for (int q = 0; q < QUEUE_COUNT; q++) {
            readBuffers[q] = new FuseServer.ReadBuffers(queueSize);
        }
    }

    /** Why {@code tag} cannot name a share (a sentence), or null when it can. */
    public static String tagProblem(String tag) {
        if (tag == null || tag.isEmpty()) {
            return "a share's tag may not be empty";
        }
        if (tag.indexOf('\0') >= 0) {
            return "the share tag '" + tag.replace('\0', '?') + "' has a NUL character";
        }
        int bytes = tag.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > MAX_TAG_BYTES) {
            return "the share tag '" + tag + "' is " + bytes + " bytes of UTF-8; a tag has at most " + MAX_TAG_BYTES;
        }
        return null;
    }

    public String tag() {
        return tag;
    }

    public Path share() {
        return share;
    }

    public boolean readOnly() {
        return readOnly;
    }

    public CacheMode cache() {
        return cache;
    }

    /** Requests longer than the device's buffer, answered EIO. */
    public long oversizedRequests() {
        return oversizedRequests.get();
    }

    /** Requests whose chain had no room for even a reply header: used with 0 bytes. FORGETs are not counted. */
    public long unansweredRequests() {
        return unansweredRequests.get();
    }

    /** Requests the FUSE server refused as malformed (answered with an error). */
    public long malformedRequests() {
        return server.malformedRequests();
    }

    /** Nodes the guest holds (the root included) and files it has open, for tests and leaks. */
    public int nodeCount() {
        return server.nodeCount();
    }

    public int openFileCount() {
        return server.handleCount();
    }

    /**
     * The request queue as every device serves its queues. The hiprio queue carries only FORGETs, which get no
     * reply and which the guest never waits for, and {@code stat} with {@code cache=none} sends about five for
     * each file. So while they keep coming, its thread takes them in batches every {@link #FORGET_BATCH_NANOS}
     * without asking the guest to notify (with EVENT_IDX, avail_event stays behind): a FORGET then costs the
     * guest no VM exit and this thread no wake-up of its own, and a batch one interrupt. After {@link
     * #IDLE_FORGET_LOOKS} looks that found nothing, it asks for notifications again and sleeps until one.
     */
    @Override
    protected void serve(VirtQueue queue, BooleanSupplier running) {
        if (queue.index() != HIPRIO) {
            super.serve(queue, running);
            return;
        }
        DescriptorChain chain = queue.newChain();
        int idleLooks = 0;
        while (running.getAsBoolean()) {
            boolean used = false;
            while (running.getAsBoolean() && queue.pop(chain)) {
                queue.addUsed(chain.head(), handle(queue, chain));
                used = true;
            }
            if (used) {
                interruptIfWanted(queue);
                idleLooks = 0;
            } else {
                idleLooks++;
            }
            if (!running.getAsBoolean()) {
                return;
            }
            if (idleLooks < IDLE_FORGET_LOOKS) {
                awaitNotification(queue, FORGET_BATCH_NANOS); // a stop or a quiesce signals the eventfd, and ends it early
            } else if (!queue.armNotification()) {
                notifyEvent(HIPRIO).read();
                idleLooks = 0;
            }
        }
    }

    @Override
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        MemorySegment requestBuffer = requestBuffers[queue.index()];
        MemorySegment replyBuffer = replyBuffers[queue.index()];
        MemorySegment reply = replyBuffer.asSlice(0, Math.min(chain.writableLength(), replyBuffer.byteSize()));
        long readable = chain.readableLength();
        int length;
        if (readable > requestBuffer.byteSize()) {
            oversizedRequests.incrementAndGet();
            chain.read(0, requestBuffer, 0, FuseRequest.HEADER_BYTES);
            length = FuseReply.error(reply, FuseRequest.uniqueOf(requestBuffer.asSlice(0, FuseRequest.HEADER_BYTES)),
                    FsAbi.EIO);
        } else {
            MemorySegment request = requestBuffer.asSlice(0, readable);
            chain.read(0, request, 0, readable);
            FuseServer.ReadBuffers readInto = null;
            if (opcode(request) == Fuse.FUSE_READ && chain.writableLength() > FuseReply.HEADER_BYTES) {
                readInto = readBuffers[queue.index()];
                readInto.reset();
                chain.addWritableTo(readInto.vector, FuseReply.HEADER_BYTES);
            }
            length = server.handle(request, reply, readInto);
            if (length == 0 && !isForget(request)) {
                unansweredRequests.incrementAndGet();
            }
            if (readInto != null) {
                // The data is in the guest's buffers already: only the header is still to copy.
                int header = (int) (length - readInto.filled);
                if (header > 0) {
                    chain.write(0, replyBuffer, 0, header);
                }
                return length;
            }
        }
        if (length > 0) {
            chain.write(0, replyBuffer, 0, length);
        }
        return length;
    }

    /** Whether the request in {@code request} is one that never has a reply; only its opcode is looked at. */
    private static boolean isForget(MemorySegment request) {
        int opcode = opcode(request);
        return opcode == Fuse.FUSE_FORGET || opcode == Fuse.FUSE_BATCH_FORGET;
    }

    /** The opcode of the request in {@code request}, -1 when it is too short to have one; nothing else is checked here. */
    private static int opcode(MemorySegment request) {
        return request.byteSize() < FuseRequest.HEADER_BYTES ? -1 : request.get(FuseRequest.U32, 4);
    }

    /** The driver reset the device: the guest's FUSE session (its nodes, its open files) is gone; it sends INIT again. */
    @Override
    protected void afterReset() {
        server.endSession();
    }

    /**
     * The tag and whether the share is read-only, which the restoring VM's share must match; the share's
     * path (informative: a restore may serve the same files from elsewhere); then the guest's session.
     */
    @Override
    protected void saveIdentity(StateWriter out) {
        out.string(tag).bool(readOnly).string(share.toString());
        int lost = server.saveSession(out);
        if (lost > 0) {
            LOG.log(System.Logger.Level.WARNING, () -> name() + ": " + lost + " files the guest holds are in no directory of the share"
                    + " any more (deleted while open, or moved out): the snapshot cannot find them again, and after a restore the guest"
                    + " gets EBADF for them");
        }
    }

    @Override
    protected void checkIdentity(StateReader in) {
        String savedTag = in.string(4 * MAX_TAG_BYTES, "tag");
        if (!savedTag.equals(tag)) {
            throw in.fail("the snapshot's " + name() + " has tag " + savedTag + ", and this VM's has " + tag);
        }
        boolean savedReadOnly = in.bool("read-only");
        if (savedReadOnly != readOnly) {
            throw in.fail("the snapshot's " + name() + " is " + (savedReadOnly ? "read-only" : "writable") + ", and this VM's is "
                    + (readOnly ? "read-only" : "writable"));
        }
        in.string(4 * FsAbi.PATH_MAX, "share path"); // informative: see saveIdentity
        restoredSession = server.readSession(in);
    }

    /** The guest's session again, before the queues' threads start: the files it held opened again by their paths. */
    @Override
    protected void afterStateApplied(int status) {
        FuseServer.Session session = restoredSession;
        restoredSession = null;
        if (session == null) {
            return;
        }
        int lost = server.restoreSession(session);
        if (lost > 0) {
            LOG.log(System.Logger.Level.WARNING, () -> name() + ": " + lost + " files and open files the guest held in the snapshot"
                    + " are no longer in the share at their paths (or are another's file now): the guest gets EBADF for them");
        }
    }

    /** Stops the queues' threads, then closes every handle of the share and frees the buffers. */
    @Override
    public void close() {
        super.close(); // the queues' threads have ended: nothing uses the server or the buffers any more
        synchronized (arena) {
            server.close();
            if (arena.scope().isAlive()) {
                arena.close();
            }
        }
    }

    @Override
    protected SyscallProfile ioThreadProfile() {
        return SyscallProfile.FS;
    }
}
