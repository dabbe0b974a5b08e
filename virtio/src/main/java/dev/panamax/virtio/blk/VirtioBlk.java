package dev.panamax.virtio.blk;

import dev.panamax.sys.SyscallProfile;
import dev.panamax.storage.BatchedIo;
import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.image.Images;
import dev.panamax.storage.qcow2.Qcow2Image;
import dev.panamax.virtio.DescriptorChain;
import dev.panamax.virtio.VirtQueue;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.virtio.ratelimit.RateLimiter;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A virtio block device (VIRTIO 1.x, 5.2) over a {@link BlockBackend}: read, write, flush, get-id,
 * discard and write-zeroes, on one or more request queues, each served by its own I/O thread with
 * positional I/O straight between the backend and guest memory.
 *
 * <p>A request the driver got wrong but that can be answered (bad sector range, data not a multiple
 * of 512 bytes, a write to a read-only disk) gets status IOERR; an unknown type or flag UNSUPP; a
 * backend I/O error IOERR, logged, and the device goes on. A chain that is not a request at all (no
 * 16-byte header, no status byte) fails the device.
 *
 * <p>Each request passes the drive's {@link RateLimiter} first (1 operation, its data bytes); one it
 * refuses stays on the ring, its queue waits for the tokens and takes it again, in order.
 */
public final class VirtioBlk extends VirtioDevice {
    public static final int DEVICE_TYPE = 2;
    public static final int DEFAULT_QUEUE_SIZE = 256;
    public static final int SECTOR_SIZE = 512;

    // Feature bit numbers.
    public static final int VIRTIO_BLK_F_SEG_MAX = 2;
    public static final int VIRTIO_BLK_F_RO = 5;
    public static final int VIRTIO_BLK_F_BLK_SIZE = 6;
    public static final int VIRTIO_BLK_F_FLUSH = 9;
    public static final int VIRTIO_BLK_F_MQ = 12;
    public static final int VIRTIO_BLK_F_DISCARD = 13;
    public static final int VIRTIO_BLK_F_WRITE_ZEROES = 14;

    // Request types and status values.
    static final int T_IN = 0;
    static final int T_OUT = 1;
    static final int T_FLUSH = 4;
    static final int T_GET_ID = 8;
    static final int T_DISCARD = 11;
    static final int T_WRITE_ZEROES = 13;
    static final byte S_OK = 0;
    static final byte S_IOERR = 1;
    static final byte S_UNSUPP = 2;

    static final int HEADER_SIZE = 16;
    static final int SEGMENT_SIZE = 16; // struct virtio_blk_discard_write_zeroes
    static final int FLAG_UNMAP = 1;
    static final int ID_BYTES = 20;
    /** Discard/write-zeroes segments per request: bounds the work of one request. */
    static final int MAX_SEGMENTS = 32;
    /** Sectors per discard/write-zeroes segment: whatever the 32-bit field holds. */
    static final long MAX_SEGMENT_SECTORS = 0xffff_ffffL;
    /** Discards smaller than a host file system block free nothing: 4 KiB. */
    static final int DISCARD_ALIGNMENT_SECTORS = 8;
    /** Requests a queue hands its backend at once, when the backend takes batches ({@link BlockBackend#batchedIo}). */
    static final int BATCH = 64;
    /** Guest buffers in one batch: four requests of 1 MiB in scattered 4 KiB pages. */
    static final int BATCH_BUFFERS = 1024;
    /** A ByteBuffer holds at most 2 GiB; larger guest buffers are moved in pieces. */
    private static final int MAX_PIECE = 1 << 30;

    // struct virtio_blk_config offsets.
    static final int CONFIG_CAPACITY = 0;
    static final int CONFIG_SEG_MAX = 12;
    static final int CONFIG_BLK_SIZE = 20;
    static final int CONFIG_NUM_QUEUES = 34;
    static final int CONFIG_MAX_DISCARD_SECTORS = 36;
    static final int CONFIG_MAX_DISCARD_SEG = 40;
    static final int CONFIG_DISCARD_SECTOR_ALIGNMENT = 44;
    static final int CONFIG_MAX_WRITE_ZEROES_SECTORS = 48;
    static final int CONFIG_MAX_WRITE_ZEROES_SEG = 52;
    static final int CONFIG_WRITE_ZEROES_MAY_UNMAP = 56;
    static final int CONFIG_SIZE = 60;

    private static final VarHandle LE_INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LE_LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final System.Logger LOG = System.getLogger(VirtioBlk.class.getName());

    /** Null until {@link #bindDisk} for a device made {@link #unbound}. */
    private volatile BlockBackend disk;
    private final Path image; // null when the caller gave an open backend
    private final ImageFormat format;
    private final String idText;
    private final boolean readOnly;
    private final long capacity; // in sectors
    private final byte[] id;
    private final byte[][] scratch; // per queue: a request header or a discard segment
    private final MemorySegment[][][] segments; // per queue and batch slot: the guest buffers of one request, grown as needed
    private final BatchedIo[] batches; // per queue: its reads and writes handed to the host together, or null
    private final IOException[][] batchFailures; // per queue and batch slot
    private final long[][] batchLengths; // per queue and batch slot: the data bytes of the request in it, negated for a write
    private final Queue<BatchedIo> failedBatches = new ConcurrentLinkedQueue<>();
    private final AtomicLong ioErrors = new AtomicLong();
    private final BlkCounts counts = new BlkCounts();
    private final RateLimiter limiter;

    /**
     * @param id        the drive's ID string (GET_ID), up to 20 ASCII characters; also names the device
     * @param disk      owned by the device from now on: {@link #close()} closes it
     * @param queueSize the maximum size of each request queue, a power of two
     */
    public VirtioBlk(String id, BlockBackend disk, int queueCount, int queueSize) {
        this(id, disk, null, queueCount, queueSize);
    }

    /**
     * @param image the path {@code disk} was opened from, which a snapshot records and a restore
     *              checks; null when there is none
     */
    public VirtioBlk(String id, BlockBackend disk, Path image, int queueCount, int queueSize) {
        this(id, disk, image, queueCount, queueSize, RateLimiter.unlimited());
    }

    /**
     * @param limiter the drive's rate limiter, shared by its queues: a request the limiter refuses
     *                stays on its ring, and its queue waits until the tokens are back
     */
    public VirtioBlk(String id, BlockBackend disk, Path image, int queueCount, int queueSize, RateLimiter limiter) {
        this(id, disk, image, disk.format(), disk.isReadOnly(), disk.size(), queueCount, queueSize, limiter);
    }

    private VirtioBlk(String id, BlockBackend disk, Path image, ImageFormat format, boolean readOnly, long size, int queueCount,
            int queueSize, RateLimiter limiter) {
        super("virtio-blk (" + id + ")", DEVICE_TYPE, features(readOnly), queueCount, queueSize, CONFIG_SIZE);
        this.disk = disk;
        this.image = image;
        this.format = format;
        this.limiter = Objects.requireNonNull(limiter, "limiter");
        limiter.onUpdate(this::wakeQueues); // a queue waiting under the old limit looks again under the new one
        this.idText = id;
        this.readOnly = readOnly;
        this.capacity = size / SECTOR_SIZE;
        this.id = Arrays.copyOf(id.getBytes(StandardCharsets.US_ASCII), ID_BYTES);
        this.scratch = new byte[queueCount][HEADER_SIZE];
        this.segments = new MemorySegment[queueCount][BATCH][8];
        this.batches = new BatchedIo[queueCount];
        this.batchFailures = new IOException[queueCount][BATCH];
        this.batchLengths = new long[queueCount][BATCH];
        if (disk != null) {
            openBatches(disk);
        }
        ByteBuffer c = ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN);
        c.putLong(CONFIG_CAPACITY, capacity);
        c.putInt(CONFIG_SEG_MAX, Math.max(1, queueSize - 2)); // a header and a status descriptor besides the data
        c.putInt(CONFIG_BLK_SIZE, SECTOR_SIZE);
        c.putShort(CONFIG_NUM_QUEUES, (short) queueCount);
        if (!readOnly) {
            c.putInt(CONFIG_MAX_DISCARD_SECTORS, (int) MAX_SEGMENT_SECTORS);
            c.putInt(CONFIG_MAX_DISCARD_SEG, MAX_SEGMENTS);
            c.putInt(CONFIG_DISCARD_SECTOR_ALIGNMENT, DISCARD_ALIGNMENT_SECTORS);
            c.putInt(CONFIG_MAX_WRITE_ZEROES_SECTORS, (int) MAX_SEGMENT_SECTORS);
            c.putInt(CONFIG_MAX_WRITE_ZEROES_SEG, MAX_SEGMENTS);
            c.put(CONFIG_WRITE_ZEROES_MAY_UNMAP, (byte) 1);
        }
    }

    /**
     * Opens a disk image (raw, qcow2 or vhd, detected) for a VM, locked against every other user.
     *
     * @throws IOException naming the image when it is missing, damaged, in a format Panamax cannot read
     *     or in use by another process
     */
    public static VirtioBlk open(String id, Path image, boolean readOnly, int queueCount) throws IOException {
        return open(id, image, readOnly, queueCount, RateLimiter.unlimited());
    }

    /** {@link #open(String, Path, boolean, int)} with the drive's rate limiter. */
    public static VirtioBlk open(String id, Path image, boolean readOnly, int queueCount, RateLimiter limiter) throws IOException {
        return open(id, image, null, readOnly, queueCount, limiter);
    }

    /** {@link #open(String, Path, boolean, int, RateLimiter)} with the image's format, or null to detect it. */
    public static VirtioBlk open(String id, Path image, ImageFormat format, boolean readOnly, int queueCount, RateLimiter limiter)
            throws IOException {
        BlockBackend disk = openLocked(image, format, readOnly);
        try {
            return new VirtioBlk(id, disk, image, queueCount, DEFAULT_QUEUE_SIZE, limiter);
        } catch (RuntimeException e) {
            disk.close();
            throw e;
        }
    }

    /**
     * A drive whose image is opened later, by {@link #bindDisk}, and which must not run before: a
     * migration's destination builds its VM while the source still writes the image. The image's
     * format and size are what it holds now; the bind checks them again.
     *
     * @param size the image's virtual size in bytes
     */
    public static VirtioBlk unbound(String id, Path image, ImageFormat format, boolean readOnly, long size, int queueCount,
            RateLimiter limiter) {
        return new VirtioBlk(id, null, Objects.requireNonNull(image, "image"), Objects.requireNonNull(format, "format"), readOnly, size,
                queueCount, DEFAULT_QUEUE_SIZE, limiter);
    }

    /**
     * Opens the image of a drive made {@link #unbound}, locked against every other user, as {@link
     * #open} would have; before the driver's state is restored into the device.
     *
     * @throws IOException naming the image when it cannot be opened or locked, or when it is no longer
     *     of the format and size the device was built with
     * @throws IllegalStateException when the device has its disk already
     */
    public synchronized void bindDisk() throws IOException {
        if (disk != null) {
            throw new IllegalStateException(name() + " has its disk already");
        }
        BlockBackend opened = openLocked(image, format, readOnly);
        if (opened.size() / SECTOR_SIZE != capacity) {
            long size = opened.size();
            opened.close();
            throw new IOException(image + " has " + size + " bytes now, and had " + capacity * SECTOR_SIZE + " (was it resized?)");
        }
        openBatches(opened);
        disk = opened;
    }

    /** Each queue's batches, made here (by the thread that builds the VM) since a queue's confined thread may not set up a ring. */
    private void openBatches(BlockBackend backend) {
        for (int q = 0; q < batches.length; q++) {
            batches[q] = backend.batchedIo(BATCH, BATCH_BUFFERS);
        }
    }

    /** The image for a VM's drive: locked against every other user (shared when read-only); {@code format} null to detect it. */
    private static BlockBackend openLocked(Path image, ImageFormat format, boolean readOnly) throws IOException {
        return Images.open(image, (readOnly ? Images.OpenOptions.readOnly() : Images.OpenOptions.readWrite()).withFormat(format).withLock());
    }

    /** The disk, once it is open. */
    private BlockBackend boundDisk() {
        BlockBackend d = disk;
        if (d == null) {
            throw new IllegalStateException(name() + ": its image is not opened yet");
        }
        return d;
    }

    private static long features(boolean readOnly) {
        long features = 1L << VIRTIO_BLK_F_SEG_MAX | 1L << VIRTIO_BLK_F_BLK_SIZE | 1L << VIRTIO_BLK_F_FLUSH | 1L << VIRTIO_BLK_F_MQ;
        return readOnly ? features | 1L << VIRTIO_BLK_F_RO
                : features | 1L << VIRTIO_BLK_F_DISCARD | 1L << VIRTIO_BLK_F_WRITE_ZEROES;
    }

    /** What this device did, by Firecracker's metric names. */
    public BlkCounts counts() {
        return counts;
    }

    /** Requests the disk failed (answered IOERR for an I/O error), Firecracker's {@code execute_fails}. */
    public long ioErrors() {
        return ioErrors.get();
    }

    /** Capacity in 512-byte sectors. */
    public long capacity() {
        return capacity;
    }

    /**
     * Takes an internal snapshot named {@code name} of a writable qcow2 disk (replacing one of that
     * name), after flushing what the guest wrote: for a VM snapshot whose disks come back with it.
     * The device must be quiesced, so that no request changes the disk meanwhile.
     *
     * @throws IOException when the disk is not a writable qcow2 image, or the snapshot cannot be written
     */
    public void snapshotDisk(String name) throws IOException {
        if (!(boundDisk() instanceof Qcow2Image qcow2) || readOnly) {
            throw new IOException("drive " + idText + " is " + (readOnly ? "read-only" : "a " + format.id() + " image")
                    + ": a snapshot with disks takes a qcow2 snapshot of every writable drive, so each must be a writable qcow2 image");
        }
        qcow2.flush();
        if (qcow2.snapshots().stream().anyMatch(s -> s.name().equals(name))) {
            qcow2.deleteSnapshot(name);
        }
        qcow2.createSnapshot(name);
    }

    /**
     * Hands the disk over to another process, a live migration's destination: what the image
     * caches (qcow2 metadata) is written and synced, and the lock on the image is dropped. Called
     * quiesced, with the vCPUs paused; {@link #takeDiskBack} undoes it when the migration fails.
     */
    public void releaseDisk() throws IOException {
        BlockBackend d = boundDisk();
        d.flush();
        d.imageFile().unlock();
    }

    /**
     * Takes back the lock {@link #releaseDisk} dropped.
     *
     * @return false while another process (the destination) holds the image
     */
    public boolean takeDiskBack() throws IOException {
        return boundDisk().imageFile().relock();
    }

    /** Whether the guest may only read the disk. */
    public boolean isReadOnly() {
        return readOnly;
    }

    /** The path of the disk image, or null when the device was given an open backend. */
    public Path image() {
        return image;
    }

    /**
     * The drive's ID, the image's path (empty when unknown), its format, whether it is read-only and
     * the capacity in sectors; a restore requires each to be the same.
     */
    @Override
    protected void saveIdentity(StateWriter out) {
        out.string(idText).string(imageText()).string(format.id()).bool(readOnly).i64(capacity);
    }

    @Override
    protected void checkIdentity(StateReader in) {
        String savedId = in.string(256, "drive ID");
        if (!savedId.equals(idText)) {
            throw in.fail("the snapshot's drive has ID '" + savedId + "', and this VM's drive has '" + idText + "'");
        }
        String savedImage = in.string(4096, "image path");
        if (!savedImage.equals(imageText())) {
            throw in.fail("the snapshot's drive " + idText + " has image '" + savedImage + "', and this VM's has '" + imageText() + "'");
        }
        String savedFormat = in.string(16, "image format");
        if (!savedFormat.equals(format.id())) {
            throw in.fail("the snapshot's drive " + idText + " is a " + savedFormat + " image, and this VM's is a " + format.id()
                    + " image");
        }
        boolean savedReadOnly = in.bool("read-only");
        if (savedReadOnly != readOnly) {
            throw in.fail("the snapshot's drive " + idText + " is " + (savedReadOnly ? "read-only" : "writable") + ", and this VM's is "
                    + (readOnly ? "read-only" : "writable"));
        }
        long savedCapacity = in.i64("capacity");
        if (savedCapacity != capacity) {
            throw in.fail("the snapshot's drive " + idText + " has " + Long.toUnsignedString(savedCapacity)
                    + " sectors, and this VM's has " + capacity + " (was the image resized?)");
        }
    }

    private String imageText() {
        return image == null ? "" : image.toAbsolutePath().normalize().toString();
    }

    /** The drive's rate limiter: {@link RateLimiter#update} changes its limits while the guest runs. */
    public RateLimiter rateLimiter() {
        return limiter;
    }

    @Override
    protected RateLimiter rateLimiter(VirtQueue queue) {
        return limiter;
    }

    /**
     * The data a request moves: its buffers past the 16-byte header and before the status byte. Taken
     * from the chain's lengths, not from the header, which the guest could change after this count.
     */
    @Override
    protected long requestBytes(VirtQueue queue, DescriptorChain chain) {
        return Math.max(0, chain.readableLength() - HEADER_SIZE) + Math.max(0, chain.writableLength() - 1);
    }

    /**
     * Reads the request's header into the queue's scratch array.
     *
     * @throws VirtioProtocolException when the chain is not a request: no 16-byte header, no status byte
     */
    private byte[] header(VirtQueue queue, DescriptorChain chain) {
        if (chain.readableLength() < HEADER_SIZE) {
            throw new VirtioProtocolException("queue " + queue.index() + ": request at descriptor " + chain.head()
                    + " has a header of " + chain.readableLength() + " readable bytes, not " + HEADER_SIZE);
        }
        if (chain.writableLength() == 0) {
            throw new VirtioProtocolException("queue " + queue.index() + ": request at descriptor " + chain.head()
                    + " has no writable status byte");
        }
        byte[] header = scratch[queue.index()];
        chain.read(0, header, 0, HEADER_SIZE);
        return header;
    }

    @Override
    protected int batchLimit(VirtQueue queue) {
        return batches[queue.index()] == null ? 1 : BATCH;
    }

    /**
     * With a backend that takes batches: the valid reads and writes among {@code chains} go to it
     * together; any other request waits until those before it are done (a flush covers the writes
     * before it) and is then handled alone.
     */
    @Override
    protected void handleBatch(VirtQueue queue, DescriptorChain[] chains, int n, int[] usedLengths) {
        if (batches[queue.index()] == null || n == 1) {
            super.handleBatch(queue, chains, n, usedLengths);
            return;
        }
        int pendingFrom = 0; // chains[pendingFrom, i) not handled alone are in the batch (usedLengths[k] < 0) or answered
        for (int i = 0; i < n; i++) {
            try {
                pendingFrom = handleInBatch(queue, chains, i, pendingFrom, usedLengths);
            } catch (RuntimeException e) { // a chain that is no request fails the device: what the batch holds is done first
                completeBatch(queue, chains, pendingFrom, i, usedLengths);
                throw e;
            }
        }
        completeBatch(queue, chains, pendingFrom, n, usedLengths);
    }

    /**
     * Puts request {@code i} into the batch, or completes the batch and handles it alone; returns
     * where the requests in the batch now begin.
     */
    private int handleInBatch(VirtQueue queue, DescriptorChain[] chains, int i, int pendingFrom, int[] usedLengths) {
        DescriptorChain chain = chains[i];
        BatchedIo batch = batches[queue.index()]; // null once a batch failed (completeBatch)
        byte[] header = header(queue, chain);
        int type = (int) LE_INT.get(header, 0);
        long sector = (long) LE_LONG.get(header, 8);
        boolean toGuest = type == T_IN;
        long length = toGuest ? chain.writableLength() - 1 : chain.readableLength() - HEADER_SIZE;
        if (batch != null && (type == T_IN || type == T_OUT && !readOnly) && length > 0 && checkData(sector, length) == S_OK) {
            if (queueTransfer(queue, batch, chain, i, toGuest, length, sector * SECTOR_SIZE, usedLengths)) {
                return pendingFrom;
            }
            completeBatch(queue, chains, pendingFrom, i, usedLengths); // full: what it holds goes first
            if (batches[queue.index()] != null
                    && queueTransfer(queue, batch, chain, i, toGuest, length, sector * SECTOR_SIZE, usedLengths)) {
                return i;
            }
        }
        completeBatch(queue, chains, pendingFrom, i, usedLengths);
        usedLengths[i] = handle(queue, chain);
        return i + 1;
    }

    /**
     * Puts request {@code slot}'s transfer into the batch, or answers it at once when the backend
     * refused it; false, with nothing done, when the batch has no room for it.
     */
    private boolean queueTransfer(VirtQueue queue, BatchedIo batch, DescriptorChain chain, int slot, boolean toGuest, long length,
            long diskOffset, int[] usedLengths) {
        int count = gather(queue.index(), slot, chain, toGuest, toGuest ? 0 : HEADER_SIZE, length);
        MemorySegment[] pieces = segments[queue.index()][slot];
        try {
            if (!(toGuest ? batch.read(diskOffset, pieces, count, slot) : batch.write(diskOffset, pieces, count, slot))) {
                Arrays.fill(pieces, 0, count, null);
                return false;
            }
            usedLengths[slot] = -1; // in the batch
            batchLengths[queue.index()][slot] = toGuest ? length : -length;
        } catch (IOException | RuntimeException e) { // refused as a write to a detected raw disk's signature is
            Arrays.fill(pieces, 0, count, null);
            chain.writeLastByte(ioError(toGuest ? "read" : "write", e));
            usedLengths[slot] = 1;
        }
        return true;
    }

    /** Completes the batch holding the requests among {@code chains[from, to)} that are in it, and answers each. */
    private void completeBatch(VirtQueue queue, DescriptorChain[] chains, int from, int to, int[] usedLengths) {
        BatchedIo batch = batches[queue.index()];
        boolean any = false;
        for (int k = from; k < to && !any; k++) {
            any = usedLengths[k] < 0;
        }
        if (!any) {
            return;
        }
        IOException[] failures = batchFailures[queue.index()];
        IOException lost = null;
        try {
            batch.complete(failures);
        } catch (IOException e) {
            // Never seen: io_uring_enter fails only for a bad ring. The queue goes on without it, after a reset.
            lost = e;
            batches[queue.index()] = null;
            failedBatches.add(batch); // closed with the device: closing it now could leave the kernel writing freed memory
            fail("the host failed a batch of its reads and writes: " + e.getMessage());
        }
        for (int k = from; k < to; k++) {
            if (usedLengths[k] >= 0) {
                continue;
            }
            long signedLength = batchLengths[queue.index()][k];
            boolean toGuest = signedLength >= 0;
            long length = Math.abs(signedLength);
            IOException failure = lost != null ? lost : failures[k];
            byte status = failure == null ? S_OK : ioError(toGuest ? "read" : "write", failure);
            if (status == S_OK) {
                if (toGuest) {
                    counts.countRead(length);
                } else {
                    counts.countWrite(length);
                }
            }
            chains[k].writeLastByte(status);
            usedLengths[k] = (int) ((toGuest && status == S_OK ? length : 0) + 1);
            Arrays.fill(segments[queue.index()][k], null);
        }
    }

    @Override
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        byte[] header = header(queue, chain);
        int type = (int) LE_INT.get(header, 0);
        long sector = (long) LE_LONG.get(header, 8);
        long written = 0; // data bytes put into the writable part, before the status byte
        byte status;
        switch (type) {
            case T_IN -> {
                long length = chain.writableLength() - 1;
                status = checkData(sector, length);
                if (status == S_OK) {
                    status = transfer(queue, chain, true, 0, length, sector * SECTOR_SIZE);
                    if (status == S_OK) {
                        counts.countRead(length);
                    }
                } else {
                    counts.countInvalid();
                }
                written = status == S_OK ? length : 0;
            }
            case T_OUT -> {
                long length = chain.readableLength() - HEADER_SIZE;
                status = readOnly ? S_IOERR : checkData(sector, length);
                if (status == S_OK) {
                    status = transfer(queue, chain, false, HEADER_SIZE, length, sector * SECTOR_SIZE);
                    if (status == S_OK) {
                        counts.countWrite(length);
                    }
                } else {
                    counts.countInvalid();
                }
            }
            case T_FLUSH -> {
                status = flush();
                if (status == S_OK) {
                    counts.countFlush();
                }
            }
            case T_GET_ID -> {
                int n = (int) Math.min(ID_BYTES, chain.writableLength() - 1);
                chain.write(0, id, 0, n);
                written = n;
                status = S_OK;
            }
            case T_DISCARD, T_WRITE_ZEROES -> status = readOnly ? S_UNSUPP : discardOrWriteZeroes(chain, type == T_DISCARD, header);
            default -> {
                status = S_UNSUPP;
                counts.countInvalid();
            }
        }
        chain.writeLastByte(status);
        return (int) (written + 1);
    }

    /** IOERR unless {@code length} bytes from {@code sector} are whole sectors inside the disk. */
    private byte checkData(long sector, long length) {
        return length % SECTOR_SIZE == 0 && inRange(sector, length / SECTOR_SIZE) ? S_OK : S_IOERR;
    }

    /** Written so that nothing overflows: both values come from the guest ({@code sector} is unsigned). */
    private boolean inRange(long sector, long sectors) {
        return sector >= 0 && sector <= capacity && sectors <= capacity - sector;
    }

    /**
     * Moves {@code length} bytes between the disk at {@code diskOffset} and the chain's writable part
     * ({@code toGuest}) or readable part, from {@code partOffset} in that part, through views of
     * guest memory: the backend reads into and writes from the guest's pages directly.
     */
    private byte transfer(VirtQueue queue, DescriptorChain chain, boolean toGuest, long partOffset, long length, long diskOffset) {
        int count = gather(queue.index(), 0, chain, toGuest, partOffset, length);
        MemorySegment[] pieces = segments[queue.index()][0];
        try {
            // One backend call for the whole request: a raw image moves it with a single preadv/pwritev.
            if (toGuest) {
                disk.read(diskOffset, pieces, count);
            } else {
                disk.write(diskOffset, pieces, count);
            }
            return S_OK;
        } catch (IOException | UncheckedIOException e) {
            return ioError(toGuest ? "read" : "write", e);
        } finally {
            Arrays.fill(pieces, 0, count, null); // let the views go
        }
    }

    /**
     * Puts views of the guest's buffers holding {@code length} bytes of the chain's writable part
     * ({@code toGuest}) or readable part, from {@code partOffset} in that part, into the queue's
     * array for batch slot {@code slot}; returns how many.
     */
    private int gather(int queueIndex, int slot, DescriptorChain chain, boolean toGuest, long partOffset, long length) {
        GuestMemory memory = memory();
        MemorySegment[] pieces = segments[queueIndex][slot];
        int count = 0;
        for (int i = toGuest ? chain.readableCount() : 0; length > 0; i++) {
            long bufferLength = chain.length(i);
            if (partOffset >= bufferLength) {
                partOffset -= bufferLength;
                continue;
            }
            long address = chain.address(i) + partOffset;
            long n = Math.min(bufferLength - partOffset, length);
            partOffset = 0;
            for (long done = 0; done < n; done += MAX_PIECE) {
                if (count == pieces.length) {
                    pieces = segments[queueIndex][slot] = Arrays.copyOf(pieces, 2 * count);
                }
                pieces[count++] = memory.slice(address + done, Math.min(n - done, MAX_PIECE));
            }
            length -= n;
        }
        return count;
    }

    private byte flush() {
        try {
            disk.flush();
            return S_OK;
        } catch (IOException | UncheckedIOException e) {
            return ioError("flush", e);
        }
    }

    /**
     * The segments are all checked before any is carried out, so that an UNSUPP or IOERR answer for a
     * bad segment leaves the disk as it was.
     */
    private byte discardOrWriteZeroes(DescriptorChain chain, boolean discard, byte[] segment) {
        long payload = chain.readableLength() - HEADER_SIZE;
        if (payload == 0 || payload % SEGMENT_SIZE != 0 || payload / SEGMENT_SIZE > MAX_SEGMENTS) {
            return S_IOERR;
        }
        int count = (int) (payload / SEGMENT_SIZE);
        for (int k = 0; k < count; k++) {
            chain.read(HEADER_SIZE + (long) SEGMENT_SIZE * k, segment, 0, SEGMENT_SIZE);
            int flags = (int) LE_INT.get(segment, 12);
            if ((flags & ~FLAG_UNMAP) != 0 || (discard && flags != 0)) {
                return S_UNSUPP; // the spec's answer to unknown flags, and to unmap on a discard
            }
            if (!inRange((long) LE_LONG.get(segment, 0), Integer.toUnsignedLong((int) LE_INT.get(segment, 8)))) {
                return S_IOERR;
            }
        }
        try {
            for (int k = 0; k < count; k++) {
                chain.read(HEADER_SIZE + (long) SEGMENT_SIZE * k, segment, 0, SEGMENT_SIZE);
                long offset = (long) LE_LONG.get(segment, 0) * SECTOR_SIZE;
                long length = Integer.toUnsignedLong((int) LE_INT.get(segment, 8)) * SECTOR_SIZE;
                // Write-zeroes never discards, even with unmap: with a backing file a discarded range
                // would read as the backing file, not as zeros. Raw punches a hole either way.
                if (discard) {
                    disk.discard(offset, length);
                } else {
                    disk.writeZeroes(offset, length);
                }
            }
            return S_OK;
        } catch (IOException | UncheckedIOException e) {
            return ioError(discard ? "discard" : "write-zeroes", e);
        }
    }

    /** Logs the first error and then each time the count doubles, so a failing disk cannot flood the log. */
    private byte ioError(String what, Exception e) {
        long n = ioErrors.incrementAndGet();
        if (Long.bitCount(n) == 1) {
            LOG.log(Level.WARNING, name() + ": " + what + " failed (I/O error " + n + " of this disk), answered IOERR", e);
        }
        return S_IOERR;
    }

    /** Stops the device, then closes the disk. */
    @Override
    public void close() {
        super.close();
        for (int q = 0; q < batches.length; q++) { // after super.close(), which stopped the queues' threads
            if (batches[q] != null) {
                batches[q].close();
                batches[q] = null;
            }
        }
        failedBatches.forEach(BatchedIo::close);
        failedBatches.clear();
        BlockBackend d = disk;
        if (d == null) {
            return;
        }
        try {
            d.close();
        } catch (IOException e) {
            LOG.log(Level.WARNING, name() + ": closing the disk failed", e);
        }
    }

    @Override
    protected SyscallProfile ioThreadProfile() {
        return SyscallProfile.BLOCK;
    }
}
