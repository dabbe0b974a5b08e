package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A connected, non-blocking Unix stream socket as a plain descriptor, so that a device thread can
 * wait for it in a {@link Poller} beside its eventfds (a JDK {@code SocketChannel} hides its
 * descriptor). {@link #read} and {@link #write} allocate nothing; each may be called from one thread
 * at a time, the two from different threads.
 */
public final class UnixStream extends Fd {
    private static final int PATH_BYTES = (int) IoAbi.SOCKADDR_UN.select(PathElement.groupElement("sun_path")).byteSize();

    /** {@link #read}'s answer when nothing is waiting. */
    public static final int NOTHING = 0;
    /** {@link #read}'s answer at the end of the stream: the peer closed its side. */
    public static final int END = -1;

    private final Path path;
    // Freed by the GC, not by close(): the I/O thread may still be in read() when another thread closes.
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment readState = Libc.allocateCallState(arena);
    private final MemorySegment writeState = Libc.allocateCallState(arena);

    private UnixStream(int fd, Path path) {
        super(fd, "unix socket " + path);
        this.path = path;
    }

    /**
     * Connects to the listening socket at {@code path}.
     *
     * @throws NativeCallException from connect, e.g. ENOENT when nothing is bound there or
     *         ECONNREFUSED when nothing listens there
     */
    public static UnixStream connect(Path path) {
        return connect(path, false);
    }

    /**
     * The same, but null where nothing listens at {@code path} yet: no socket there, one not
     * listening, or one whose backlog is full (its owner still starting, or busy).
     */
    public static UnixStream connectIfListening(Path path) {
        return connect(path, true);
    }

    private static UnixStream connect(Path path, boolean nullIfNotListening) {
        byte[] name = path.toString().getBytes(StandardCharsets.UTF_8);
        if (name.length >= PATH_BYTES) {
            throw new IllegalArgumentException("the socket path " + path + " is longer than the " + (PATH_BYTES - 1)
                    + " bytes a Unix socket address holds: use a shorter one");
        }
        int fd = Libc.socket(IoAbi.AF_UNIX, IoAbi.SOCK_STREAM | IoAbi.SOCK_NONBLOCK | IoAbi.SOCK_CLOEXEC);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment address = call.allocate(IoAbi.SOCKADDR_UN);
            address.set(JAVA_SHORT, 0, (short) IoAbi.AF_UNIX);
            MemorySegment.copy(name, 0, address, JAVA_BYTE, 2, name.length);
            MemorySegment state = Libc.allocateCallState(call);
            if (Libc.connectRaw(state, fd, address) < 0) {
                int errno = Libc.errno(state);
                if (nullIfNotListening && (errno == Libc.ENOENT || errno == Libc.ECONNREFUSED || errno == Libc.EAGAIN)) {
                    Libc.close(fd);
                    return null;
                }
                throw new NativeCallException("connect(" + path + ")", errno);
            }
            return new UnixStream(fd, path);
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /** The path connected to. */
    public Path path() {
        return path;
    }

    /**
     * Reads at most {@code count} bytes into the start of {@code buffer}; returns how many, {@link
     * #NOTHING} when none are waiting, or {@link #END} when the peer closed its side.
     */
    public int read(MemorySegment buffer, int count) throws NativeIoException {
        while (true) {
            long n = Libc.readRaw(readState, fd(), buffer, count);
            if (n > 0) {
                return (int) n;
            }
            if (n == 0) {
                return count == 0 ? NOTHING : END;
            }
            int errno = Libc.errno(readState);
            if (errno == Libc.EAGAIN) {
                return NOTHING;
            }
            if (errno != Libc.EINTR) {
                throw new NativeIoException("read(" + path + ")", errno);
            }
        }
    }

    /**
     * Writes as much as the socket takes now of the first {@code count} bytes of {@code buffer};
     * returns how many (0 when it is full). Never raises SIGPIPE: a closed peer is an exception.
     *
     * @throws NativeIoException when the peer is gone (EPIPE, ECONNRESET) or the send fails otherwise
     */
    public int write(MemorySegment buffer, int count) throws NativeIoException {
        while (true) {
            long n = Libc.sendRaw(writeState, fd(), buffer, count, IoAbi.MSG_NOSIGNAL);
            if (n >= 0) {
                return (int) n;
            }
            int errno = Libc.errno(writeState);
            if (errno == Libc.EAGAIN) {
                return 0;
            }
            if (errno != Libc.EINTR) {
                throw new NativeIoException("send(" + path + ")", errno);
            }
        }
    }
}
