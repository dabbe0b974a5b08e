package dev.panamax.virtio.balloon;

import dev.panamax.sys.SyscallProfile;
import dev.panamax.sys.EventFd;
import dev.panamax.virtio.DescriptorChain;
import dev.panamax.virtio.VirtQueue;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioProtocolException;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * The traditional virtio memory balloon (device type 5): the host sets a target of 4 KiB pages in
 * {@code num_pages}; the guest's driver takes that many pages from its allocator and lists their
 * page frame numbers on the inflate queue, and this device gives each one back to the host
 * ({@link GuestMemory#release}: {@code madvise}, which shows in the VMM's resident memory). Pages
 * the driver lists on the deflate queue are the guest's again: nothing to do, since a released page
 * is simply faulted in anew when touched. The driver reports how many pages it holds in {@code
 * actual}.
 *
 * <p>With statistics (an interval of seconds above 0, {@code VIRTIO_BALLOON_F_STATS_VQ}) the driver
 * puts one buffer of {@code (u16 tag, u64 value)} pairs on the stats queue; the device keeps it
 * until the interval has passed, then gives it back, which asks the driver for fresh numbers in a
 * new buffer. {@code VIRTIO_BALLOON_F_DEFLATE_ON_OOM} lets the guest take pages back from the
 * balloon rather than kill a process; {@code VIRTIO_BALLOON_F_MUST_TELL_HOST} is not offered, as
 * the device needs no notice before a page is reused.
 *
 * <p>Everything the guest sends is checked before use: each page frame must lie inside guest
 * memory, page lists are whole 32-bit numbers read a bounded chunk at a time (a list as long as the
 * guest's memory costs time, never host memory), statistics buffers are whole entries, at most
 * {@link #MAX_STATS} of them, and no request may carry buffers for the device to write. A violation
 * puts the device in DEVICE_NEEDS_RESET.
 */
public final class VirtioBalloon extends VirtioDevice {
    public static final int DEVICE_TYPE = 5;
    public static final int VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
    public static final int VIRTIO_BALLOON_F_STATS_VQ = 1;
    public static final int VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;

    public static final int INFLATE_QUEUE = 0;
    public static final int DEFLATE_QUEUE = 1;
    public static final int STATS_QUEUE = 2;
    public static final int QUEUE_SIZE = 256;
    /** The balloon's page, whatever the guest's: a page frame number counts 4 KiB. */
    public static final int PAGE_SHIFT = 12;
    public static final long PAGE_SIZE = 1L << PAGE_SHIFT;
    /** {@code le32 num_pages; le32 actual;} (the later fields belong to features not offered). */
    static final int CONFIG_SIZE = 8;
    static final int NUM_PAGES = 0;
    static final int ACTUAL = 4;
    /** Bytes of one statistic: {@code le16 tag; le64 val;}, packed. */
    static final int STAT_BYTES = 10;
    /** More entries than there are tags (16 in Linux 6.12) in one stats buffer is a malformed buffer. */
    public static final int MAX_STATS = 64;
    /** Page frame numbers read from guest memory at a time. */
    private static final int PFN_CHUNK = 256;

    /**
     * Firecracker's names for the statistics, by their tag in the specification (0 to 9) and in
     * Linux after it (10 to 15); {@code GET /balloon/statistics} shows the ones the guest reported.
     */
    public static final List<String> STAT_NAMES = List.of("swap_in", "swap_out", "major_faults", "minor_faults", "free_memory",
            "total_memory", "available_memory", "disk_caches", "hugetlb_allocations", "hugetlb_failures", "oom_kill", "alloc_stall",
            "async_scan", "direct_scan", "async_reclaim", "direct_reclaim");

    private final boolean deflateOnOom;
    private final boolean statsEnabled;
    private volatile int statsIntervalSeconds;
    private volatile int actualPages;
    private volatile Map<String, Long> statistics = Map.of();
    private final AtomicLong inflatedPages = new AtomicLong();
    private final AtomicLong deflatedPages = new AtomicLong();
    /** The state a snapshot gave, between {@link #checkIdentity} and {@link #afterStateApplied}. */
    private volatile Dynamic restored;

    /** What a snapshot keeps of the balloon beyond the virtio core's state. */
    private record Dynamic(int targetPages, int actualPages, int statsIntervalSeconds) {}

    /**
     * @param id                   the device's name, for logs and thread names
     * @param targetPages          the balloon's first target, in 4 KiB pages
     * @param deflateOnOom         offer {@code VIRTIO_BALLOON_F_DEFLATE_ON_OOM}
     * @param statsIntervalSeconds how often to ask for statistics; 0 for no statistics (no stats queue)
     */
    public VirtioBalloon(String id, int targetPages, boolean deflateOnOom, int statsIntervalSeconds) {
        super("virtio-balloon (" + id + ")", DEVICE_TYPE, features(deflateOnOom, statsIntervalSeconds), statsIntervalSeconds > 0 ? 3 : 2,
                QUEUE_SIZE, CONFIG_SIZE);
        if (targetPages < 0) {
            throw new IllegalArgumentException("a balloon's target is 0 pages or more, not " + targetPages);
        }
        this.deflateOnOom = deflateOnOom;
        this.statsEnabled = statsIntervalSeconds > 0;
        this.statsIntervalSeconds = statsIntervalSeconds;
        setConfigInt(NUM_PAGES, targetPages);
    }

    private static long features(boolean deflateOnOom, int statsIntervalSeconds) {
        if (statsIntervalSeconds < 0) {
            throw new IllegalArgumentException("the statistics interval is 0 seconds (none) or more, not " + statsIntervalSeconds);
        }
        return (deflateOnOom ? 1L << VIRTIO_BALLOON_F_DEFLATE_ON_OOM : 0) | (statsIntervalSeconds > 0 ? 1L << VIRTIO_BALLOON_F_STATS_VQ : 0);
    }

    /** Pages (4 KiB) in {@code mib} MiB, the unit of Firecracker's {@code amount_mib}. */
    public static int pagesOfMib(long mib) {
        return Math.toIntExact(mib << (20 - PAGE_SHIFT));
    }

    public boolean deflateOnOom() {
        return deflateOnOom;
    }

    /** Whether the device has a stats queue: an interval above 0 was given when it was made. */
    public boolean statsEnabled() {
        return statsEnabled;
    }

    public int statsIntervalSeconds() {
        return statsIntervalSeconds;
    }

    /**
     * Changes how often the driver is asked for statistics; takes effect at once.
     *
     * @throws IllegalStateException when the device has no stats queue, or {@code seconds} is 0 and it has one
     *     (as in Firecracker: statistics are chosen before boot)
     */
    public void setStatsIntervalSeconds(int seconds) {
        if (!statsEnabled) {
            throw new IllegalStateException("the balloon was made without statistics (stats_polling_interval_s 0), so they cannot be"
                    + " turned on now");
        }
        if (seconds <= 0) {
            throw new IllegalStateException("the balloon was made with statistics, so they cannot be turned off (interval " + seconds
                    + "); give an interval of 1 second or more");
        }
        statsIntervalSeconds = seconds;
        notifyEvent(STATS_QUEUE).signal(); // its thread works out the new deadline
    }

    /** The target the host set, in 4 KiB pages ({@code num_pages}). */
    public int targetPages() {
        return (int) readConfig(NUM_PAGES, 4);
    }

    /** Sets the target in 4 KiB pages and tells the driver with a configuration interrupt. */
    public void setTargetPages(int pages) {
        if (pages < 0) {
            throw new IllegalArgumentException("a balloon's target is 0 pages or more, not " + pages);
        }
        setConfigInt(NUM_PAGES, pages);
    }

    /** The pages the driver says the balloon holds ({@code actual}); the guest's word, not checked. */
    public int actualPages() {
        return actualPages;
    }

    /** Pages the guest gave back through the inflate queue, and took again through the deflate queue, since the device was made. */
    public long inflatedPages() {
        return inflatedPages.get();
    }

    public long deflatedPages() {
        return deflatedPages.get();
    }

    /** The last statistics the guest reported, by Firecracker's names, in tag order; empty before the first report. */
    public Map<String, Long> statistics() {
        return statistics;
    }

    /** The driver writes {@code actual} (the only field it writes), whole. */
    @Override
    public void writeConfig(int offset, int size, long value) {
        if (offset == ACTUAL && size == 4) {
            actualPages = (int) value;
            synchronized (config) {
                ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).putInt(ACTUAL, (int) value);
            }
        }
    }

    @Override
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        if (chain.writableLength() != 0) {
            throw new VirtioProtocolException(queueName(queue.index()) + " queue: a request with " + chain.writableLength()
                    + " device-writable bytes; its buffers are only read");
        }
        long length = chain.readableLength();
        if (length % 4 != 0) {
            throw new VirtioProtocolException(queueName(queue.index()) + " queue: a page list of " + length
                    + " bytes, not a whole number of 32-bit page frame numbers");
        }
        boolean inflate = queue.index() == INFLATE_QUEUE;
        GuestMemory memory = memory();
        ByteBuffer chunk = ByteBuffer.allocate(PFN_CHUNK * 4).order(ByteOrder.LITTLE_ENDIAN);
        long runStart = -1;
        long runLength = 0;
        for (long offset = 0; offset < length; offset += chunk.capacity()) {
            int bytes = (int) Math.min(chunk.capacity(), length - offset);
            chain.read(offset, chunk.array(), 0, bytes);
            for (int i = 0; i < bytes; i += 4) {
                long pfn = Integer.toUnsignedLong(chunk.getInt(i));
                long address = pfn << PAGE_SHIFT;
                if (!memory.contains(address, PAGE_SIZE)) {
                    throw new VirtioProtocolException(String.format("%s queue: page frame 0x%x (guest address 0x%x) is outside guest memory",
                            queueName(queue.index()), pfn, address));
                }
                if (!inflate) {
                    deflatedPages.incrementAndGet();
                    continue;
                }
                // Neighbouring pages in one region go back in one call.
                if (runStart >= 0 && address == runStart + runLength && memory.contains(runStart, runLength + PAGE_SIZE)) {
                    runLength += PAGE_SIZE;
                    continue;
                }
                release(runStart, runLength);
                runStart = address;
                runLength = PAGE_SIZE;
            }
        }
        release(runStart, runLength);
        return 0;
    }

    private void release(long address, long length) {
        if (length > 0) {
            memory().release(address, length);
            inflatedPages.addAndGet(length >>> PAGE_SHIFT);
        }
    }

    private static String queueName(int index) {
        return switch (index) {
            case INFLATE_QUEUE -> "inflate";
            case DEFLATE_QUEUE -> "deflate";
            default -> "stats";
        };
    }

    /**
     * The inflate and deflate queues as every device serves them; the stats queue holds the driver's
     * one buffer for an interval, then hands it back to ask for the next report. When the queue
     * stops for a snapshot, a buffer in hand goes back on the ring, to be taken again after.
     */
    @Override
    protected void serve(VirtQueue queue, BooleanSupplier running) {
        if (queue.index() != STATS_QUEUE) {
            super.serve(queue, running);
            return;
        }
        DescriptorChain chain = queue.newChain();
        EventFd notify = notifyEvent(STATS_QUEUE);
        boolean held = false;
        long receivedNanos = 0;
        while (running.getAsBoolean()) {
            if (!held) {
                if (queue.pop(chain)) {
                    readStatistics(chain);
                    held = true;
                    receivedNanos = System.nanoTime();
                } else if (!queue.armNotification()) {
                    notify.read();
                }
                continue;
            }
            long remaining = receivedNanos + statsIntervalSeconds * 1_000_000_000L - System.nanoTime();
            if (remaining > 0) {
                awaitNotification(queue, remaining); // a notification, a stop or a new interval ends it early
                continue;
            }
            queue.addUsed(chain.head(), 0);
            held = false;
            interruptIfWanted(queue);
        }
        if (held) {
            queue.unpop(1);
        }
    }

    private void readStatistics(DescriptorChain chain) {
        if (chain.writableLength() != 0) {
            throw new VirtioProtocolException("stats queue: a buffer with " + chain.writableLength()
                    + " device-writable bytes; the statistics are only read");
        }
        long length = chain.readableLength();
        if (length % STAT_BYTES != 0 || length / STAT_BYTES > MAX_STATS) {
            throw new VirtioProtocolException("stats queue: a buffer of " + length + " bytes, not a whole number of up to " + MAX_STATS
                    + " statistics of " + STAT_BYTES + " bytes");
        }
        byte[] bytes = new byte[(int) length];
        chain.read(0, bytes, 0, bytes.length);
        ByteBuffer entries = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        Map<String, Long> next = new LinkedHashMap<>();
        for (String name : STAT_NAMES) {
            Long old = statistics.get(name);
            if (old != null) {
                next.put(name, old); // a statistic the driver leaves out keeps its last value
            }
        }
        for (int i = 0; i < bytes.length; i += STAT_BYTES) {
            int tag = Short.toUnsignedInt(entries.getShort(i));
            if (tag < STAT_NAMES.size()) { // a newer driver's tags are skipped
                next.put(STAT_NAMES.get(tag), entries.getLong(i + 2));
            }
        }
        Map<String, Long> ordered = new LinkedHashMap<>();
        for (String name : STAT_NAMES) {
            if (next.containsKey(name)) {
                ordered.put(name, next.get(name));
            }
        }
        statistics = Collections.unmodifiableMap(ordered);
    }

    // ---- State: the options (checked against this device's) and the target, actual and interval ----

    @Override
    protected void saveIdentity(StateWriter out) {
        out.bool(deflateOnOom).bool(statsEnabled);
        out.i32(targetPages()).i32(actualPages).i32(statsIntervalSeconds);
    }

    @Override
    protected void checkIdentity(StateReader in) {
        boolean oom = in.bool("deflate_on_oom");
        boolean stats = in.bool("statistics enabled");
        if (oom != deflateOnOom || stats != statsEnabled) {
            throw in.fail(String.format("the snapshot's balloon has deflate_on_oom %s and statistics %s, and %s has %s and %s", oom,
                    stats ? "on" : "off", name(), deflateOnOom, statsEnabled ? "on" : "off"));
        }
        int target = in.i32("target pages");
        if (target < 0) {
            throw in.fail("the balloon's target is " + Integer.toUnsignedString(target) + " pages, more than 2^31-1");
        }
        int actual = in.i32("actual pages");
        int interval = in.i32("statistics interval");
        if (stats ? interval <= 0 : interval != 0) {
            throw in.fail("the statistics interval is " + interval + " seconds, and statistics are " + (stats ? "on" : "off"));
        }
        restored = new Dynamic(target, actual, interval);
    }

    @Override
    protected void afterStateApplied(int status) {
        Dynamic d = restored;
        if (d != null) {
            restored = null;
            // No interrupt: the driver that saw this target is the one that runs on.
            synchronized (config) {
                ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).putInt(NUM_PAGES, d.targetPages());
            }
            writeConfig(ACTUAL, 4, Integer.toUnsignedLong(d.actualPages()));
            statsIntervalSeconds = d.statsIntervalSeconds();
        }
    }

    @Override
    protected SyscallProfile ioThreadProfile() {
        return SyscallProfile.BALLOON;
    }
}
