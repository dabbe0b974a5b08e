package dev.panamax.devices;

import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.vm.state.Stateful;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * Measures how long the guest took to reach user space: the guest's init writes {@value #MAGIC}
 * to port {@value #PORT} (through {@code /dev/port}) and the first such write records the time
 * since this process started. Other values and later writes are ignored; reads return 0.
 *
 * <p>The guest cannot tell one boot timer from another, so its saved state is empty: the time to
 * user space is a measurement of the process that booted the guest, and a restored VM's timer
 * measures nothing until a guest that boots again writes the mark.
 */
public final class BootTimer implements PortIoDevice, Stateful {

    public static final int PORT = 0x440;
    public static final int PORT_COUNT = 1;
    public static final int MAGIC = 123;

    private final Clock clock;
    private final Instant processStart;
    private final AtomicReference<Duration> bootTime = new AtomicReference<>();
    private final List<Consumer<Duration>> listeners = new CopyOnWriteArrayList<>();

    /** A timer measuring from this process's start. */
    public BootTimer() {
        this(Clock.systemUTC(), processStart());
    }

    public BootTimer(Clock clock, Instant processStart) {
        this.clock = Objects.requireNonNull(clock, "clock");
        this.processStart = Objects.requireNonNull(processStart, "processStart");
    }

    /**
     * A system property that, when set, is the instant (ms since the epoch) to count as this process's
     * start: a standby JVM's, started ahead of its run, counts from the run's request.
     */
    public static final String PROCESS_START_PROPERTY = "panamax.processStart";

    /** When this process started, as the OS reports it, or else when the JVM says it did. */
    public static Instant processStart() {
        String given = System.getProperty(PROCESS_START_PROPERTY);
        if (given != null) {
            return Instant.ofEpochMilli(Long.parseLong(given));
        }
        // ProcessHandle's start instant builds on the boot time, which Linux gives in whole seconds;
        // the process's age from /proc (clock ticks of 10 ms against the uptime) is exact to 10 ms.
        try {
            String stat = Files.readString(Path.of("/proc/self/stat"));
            String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            long startTicks = Long.parseLong(fields[19]); // field 22, starttime, counting from field 3
            double uptime = Double.parseDouble(Files.readString(Path.of("/proc/uptime")).split(" ")[0]);
            return Instant.now().minusMillis(Math.round((uptime - startTicks / 100.0) * 1000));
        } catch (IOException | RuntimeException e) {
            return Instant.ofEpochMilli(ManagementFactory.getRuntimeMXBean().getStartTime());
        }
    }

    /**
     * Calls {@code listener} with the time to user space once the guest reports it (at once if it
     * already has), on the vCPU thread that wrote the port.
     */
    public void addListener(Consumer<Duration> listener) {
        Objects.requireNonNull(listener, "listener");
        listeners.add(listener);
        Duration done = bootTime.get();
        if (done != null && listeners.remove(listener)) {
            listener.accept(done);
        }
    }

    /** The time from process start to the guest's mark, once the guest has written it. */
    public Optional<Duration> timeToUserSpace() {
        return Optional.ofNullable(bootTime.get());
    }

    /** Writes nothing: the guest sees no state here. */
    @Override
    public void saveState(StateWriter out) {}

    /** Checks that the state is empty, as this class writes it. */
    @Override
    public void restoreState(StateReader in) {
        in.end();
    }

    @Override
    public int in(int offset, int size) {
        return 0;
    }

    @Override
    public void out(int offset, int size, int value) {
        if (offset != 0 || (value & 0xFF) != MAGIC) {
            return;
        }
        Duration elapsed = Duration.between(processStart, clock.instant());
        if (bootTime.compareAndSet(null, elapsed)) {
            for (Consumer<Duration> listener : listeners) {
                if (listeners.remove(listener)) { // each listener hears it once, even racing addListener
                    listener.accept(elapsed);
                }
            }
        }
    }
}
