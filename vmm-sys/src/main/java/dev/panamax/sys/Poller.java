package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;

/**
 * An epoll instance: a device thread waits here for any of its descriptors at once, for example a
 * tap's readability together with the eventfds that carry queue notifications and the request to
 * stop. Each descriptor is registered with a token of the caller's choosing, which {@link #await}
 * reports back. {@link #await} belongs to one thread and allocates nothing; registration may be
 * changed from any thread.
 */
public final class Poller extends Fd {
    /** Interest in, and report of, data to read (or a peer's end of stream). */
    public static final int READABLE = IoAbi.EPOLLIN;
    /** Interest in, and report of, room to write. */
    public static final int WRITABLE = IoAbi.EPOLLOUT;
    /** Reported without being asked for: the peer hung up or the descriptor has an error. */
    public static final int HANGUP = IoAbi.EPOLLHUP | IoAbi.EPOLLERR;

    private static final long EVENTS = IoAbi.EPOLL_EVENT.byteOffset(PathElement.groupElement("events"));
    private static final long DATA = IoAbi.EPOLL_EVENT.byteOffset(PathElement.groupElement("data"));

    // Freed by the GC, not by close(): another thread may close while the owner still waits.
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment ready;
    private final MemorySegment waitState = Libc.allocateCallState(arena);
    private final int capacity;

    private Poller(int fd, int capacity) {
        super(fd, "epoll");
        this.capacity = capacity;
        this.ready = arena.allocate(IoAbi.EPOLL_EVENT, capacity);
    }

    /** A new epoll instance that reports up to {@code capacity} ready descriptors per {@link #await}. */
    public static Poller create(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("a poller needs room for at least one event, not " + capacity);
        }
        return new Poller(Libc.epollCreate(), capacity);
    }

    /** Watches {@code fd} for {@code events} ({@link #READABLE}, {@link #WRITABLE} or both), reported as {@code token}. */
    public void add(Fd fd, int events, int token) {
        control(IoAbi.EPOLL_CTL_ADD, fd, events, token, "ADD");
    }

    /** Changes what {@code fd} is watched for, and its token. */
    public void modify(Fd fd, int events, int token) {
        control(IoAbi.EPOLL_CTL_MOD, fd, events, token, "MOD");
    }

    /** Stops watching {@code fd}. */
    public void remove(Fd fd) {
        control(IoAbi.EPOLL_CTL_DEL, fd, 0, 0, "DEL");
    }

    private void control(int op, Fd fd, int events, int token, String opName) {
        if ((events & ~(READABLE | WRITABLE)) != 0) {
            throw new IllegalArgumentException("events must be READABLE and/or WRITABLE, not 0x" + Integer.toHexString(events));
        }
        try (Arena call = Arena.ofConfined()) {
            MemorySegment event = call.allocate(IoAbi.EPOLL_EVENT);
            event.set(JAVA_INT, EVENTS, events);
            event.set(JAVA_LONG_UNALIGNED, DATA, token);
            Libc.epollCtl(fd(), op, fd.fd(), event, opName + ", " + fd);
        }
    }

    /**
     * Waits until a watched descriptor is ready or {@code timeoutMillis} pass (-1: no limit, 0: just
     * look); returns how many are ready, 0 on timeout or when a signal interrupted the wait. Their
     * tokens and events are {@link #token(int)} and {@link #events(int)} for 0 to the count less one.
     */
    public int await(int timeoutMillis) {
        int count = Libc.epollWaitRaw(waitState, fd(), ready, capacity, timeoutMillis);
        if (count >= 0) {
            return count;
        }
        int errno = Libc.errno(waitState);
        if (errno == Libc.EINTR) {
            return 0;
        }
        throw new NativeCallException("epoll_wait", errno);
    }

    /** The token of the {@code i}th ready descriptor of the last {@link #await}. */
    public int token(int i) {
        return (int) ready.get(JAVA_LONG_UNALIGNED, IoAbi.EPOLL_EVENT.byteSize() * i + DATA);
    }

    /** What the {@code i}th ready descriptor is ready for: {@link #READABLE}, {@link #WRITABLE}, {@link #HANGUP} bits. */
    public int events(int i) {
        return ready.get(JAVA_INT, IoAbi.EPOLL_EVENT.byteSize() * i + EVENTS);
    }
}
