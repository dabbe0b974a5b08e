package dev.panamax.vmm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.boot.LinuxBoot;
import dev.panamax.boot.SyntheticKernels;
import dev.panamax.rig.UsesKvm;
import dev.panamax.storage.image.Images;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import dev.panamax.vm.state.StateFile;
import dev.panamax.vm.state.StateWriter;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Live migration between two VMs in this process, over a Unix socket, on this host's /dev/kvm: a
 * guest program that keeps incrementing counters in memory runs while its memory is copied, and
 * goes on at the destination from where it stood. Every fault before the commit (a connection cut
 * at each step, a corrupted message, a destination that refuses or does not answer, a protocol
 * version mismatch) leaves the guest running at the source with its disk, and nothing at the
 * destination.
 */
@UsesKvm
class MigrationTest {
    private static final long COUNTER = 0x2000000;
    private static final Duration SHORT = Duration.ofSeconds(5);

    @TempDir Path dir;
    private final ByteArrayOutputStream console = new ByteArrayOutputStream();
    private final List<VmBuilder.Machine> machines = new ArrayList<>();
    private final List<AutoCloseable> closeables = new ArrayList<>();
    private Path disk;

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : closeables.reversed()) {
            c.close();
        }
        for (VmBuilder.Machine m : machines) {
            m.vm().close();
        }
    }

    /** A running VM with 64 MiB, two vCPUs, a writable disk and an entropy device, whose guest runs {@link SyntheticKernels#pageSweep}. */
    private VmBuilder.Machine source(int sweepEnd) throws IOException {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImageRunning(SyntheticKernels.pageSweep(sweepEnd)));
        disk = dir.resolve("disk.img");
        Files.write(disk, new byte[1 << 20]);
        MachineConfig config = new MachineConfig(kernel, null, "quiet", 1, 64, LinuxBoot.Protocol.AUTO,
                List.of(new DriveConfig("data", disk, false, false, false)), List.of(), null, List.of(), CpuPinning.NONE, null,
                new EntropyConfig(dev.panamax.virtio.ratelimit.RateLimit.NONE), null);
        VmBuilder.Machine machine = VmBuilder.build(config, console);
        machines.add(machine);
        machine.vm().start();
        awaitCounterAbove(machine.vm(), 10);
        return machine;
    }

    private static long counter(Vm vm) {
        return vm.memory().readLong(COUNTER);
    }

    private static void awaitCounterAbove(Vm vm, long value) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (counter(vm) <= value) {
            assertThat(System.nanoTime()).as("the guest's counter passing " + value).isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    /** What the destinations said, a line each. */
    private final List<String> destinationLog = new java.util.concurrent.CopyOnWriteArrayList<>();

    /** A destination listening at {@code name} in the test's directory, receiving on another thread. */
    private CompletableFuture<VmBuilder.Machine> destination(String name, MigrationDestination.Options options) throws IOException {
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(dir.resolve(name)));
        closeables.add(server);
        CompletableFuture<VmBuilder.Machine> received = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("destination").start(() -> {
            try {
                VmBuilder.Machine m = MigrationDestination.receive(server, options, console, destinationLog::add);
                machines.add(m);
                received.complete(m);
            } catch (Throwable e) {
                received.completeExceptionally(e);
            }
        });
        return received;
    }

    /**
     * To the destination at {@code name} through a link slower than the test's guest dirties memory
     * (whatever this machine's speed), with a 1 ms target and at most 2 rounds after the first copy.
     */
    private MigrationSource.Options overASlowLink(String name, boolean refuseLongerDowntime) throws IOException {
        closeables.add(new MigrationProxy(dir.resolve("slow.sock"), dir.resolve(name), MigrationProxy.Fault.SLOW, MigrationWire.Type.MEMORY));
        return new MigrationSource.Options(MigrationAddress.parse("unix:" + dir.resolve("slow.sock")), Duration.ofMillis(1), 2,
                refuseLongerDowntime, SHORT);
    }

    private MigrationSource.Options to(String name) {
        return new MigrationSource.Options(MigrationAddress.parse("unix:" + dir.resolve(name)), Duration.ofMillis(300), 30, false, SHORT);
    }

    private static Throwable failure(CompletableFuture<?> f) {
        try {
            f.get(30, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (Exception e) {
            throw new AssertionError("the destination did not end: " + e, e);
        }
        throw new AssertionError("the destination took the VM");
    }

    /** Whether some process (this test's source or destination) holds the disk image locked against writers. */
    private boolean diskLocked() throws IOException {
        try {
            Images.open(disk, Images.OpenOptions.readWrite().withLock()).close();
            return false;
        } catch (IOException e) {
            if (e.getMessage().contains("in use")) {
                return true;
            }
            throw e;
        }
    }

    @Test
    void aRunningGuestGoesOnAtTheDestinationFromWhereItStood() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());

        MigrationSource migration = new MigrationSource(source, to("dest.sock"));
        MigrationSource.Progress done = migration.run();
        VmBuilder.Machine target = received.get(30, TimeUnit.SECONDS);

        assertThat(done.phase()).isEqualTo(MigrationSource.Phase.COMPLETED);
        assertThat(done.bytesSent()).as("at least the guest's code page and counter page").isGreaterThan(8192);
        assertThat(source.vm().awaitExit(SHORT)).get().extracting(VmExit::reason).isEqualTo(VmExit.Reason.MIGRATED);
        long stoppedAt = counter(source.vm());
        assertThat(target.vm().state()).isEqualTo(Vm.State.RUNNING);
        awaitCounterAbove(target.vm(), stoppedAt + 1000);
        assertThat(target.config().drives()).extracting(DriveConfig::image).containsExactly(disk);
        assertThat(diskLocked()).as("the destination holds the disk").isTrue();
        target.vm().pause();
        assertThat(sameMemoryButTheCounter(source.vm(), target.vm())).as("every other page of guest memory").isTrue();
        assertThat(destinationLog).anySatisfy(line -> assertThat(line).startsWith("rehearsed building and restoring the VM in "));
        assertThat(logIndex("built the VM in ")).as("the VM built before the memory came").isLessThan(logIndex("receiving a VM "));
        assertThat(logIndex("opened the disks and network in ")).as("its disk opened once the state came")
                .isGreaterThan(logIndex("round 0: "));
    }

    /** Where the first of the destinations' log lines that starts with {@code start} stands among them. */
    private int logIndex(String start) {
        List<String> lines = List.copyOf(destinationLog);
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).startsWith(start)) {
                return i;
            }
        }
        throw new AssertionError("no destination log line starts with '" + start + "': " + lines);
    }

    /**
     * The rehearsal builds copies of the VM beside the running source, which holds its disk and its
     * vsock socket: it succeeds, and leaves the disk to the source and the socket where it was.
     */
    @Test
    void theRehearsalBuildsBesideTheSourceAndLeavesItsDiskAndSocketAlone() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        Path socket = dir.resolve("vsock.sock");
        Files.createFile(socket); // stands for the source's listening socket: a copy that bound this path would fail
        MachineConfig config = source.config();
        MachineConfig withVsock = new MachineConfig(config.kernel(), config.initrd(), config.commandLine(), 2, config.memoryMib(),
                config.protocol(), config.drives(), config.nics(), new VsockConfig(3, socket), List.of(), CpuPinning.NONE, null,
                config.entropy(), config.balloon());
        List<String> log = new ArrayList<>();

        MigrationRehearsal.saveAndRestore(withVsock, dev.panamax.vm.MemoryMap.of(source.vm().memory()), log::add);

        assertThat(log).singleElement().asString().startsWith("rehearsed building and restoring the VM in ");
        assertThat(diskLocked()).as("the source still holds its disk").isTrue();
        assertThat(socket).isRegularFile();
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
    }

    /** What a waiting destination does before any source comes: a rehearsal on a VM of every device kind, which must succeed. */
    @Test
    void theWarmUpRehearsesOnAVmWithADeviceOfEachKind() {
        List<String> log = new ArrayList<>();
        MigrationRehearsal.warmUp(log::add);
        assertThat(log).singleElement().asString().startsWith("rehearsed building and restoring the VM in ");
    }

    /**
     * A guest that dirties 16 MiB on every pass, stopped after the round limit: the destination,
     * left paused, holds exactly the memory the source's guest stopped with, every page of the
     * last rounds included; resumed, it goes on sweeping.
     */
    @Test
    void theDestinationHoldsExactlyTheMemoryTheSourceStoppedWith() throws Exception {
        VmBuilder.Machine source = source(0x3000000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults().withStayPaused(true));
        MigrationSource.Options options = new MigrationSource.Options(MigrationAddress.parse("unix:" + dir.resolve("dest.sock")),
                Duration.ofMillis(1), 2, false, SHORT);
        new MigrationSource(source, options).run();
        VmBuilder.Machine target = received.get(30, TimeUnit.SECONDS);
        assertThat(target.vm().state()).isEqualTo(Vm.State.PAUSED);
        assertThat(mismatch(source.vm(), target.vm(), -1)).as("the first guest address where the memories differ").isEqualTo(-1);
        long passes = counter(target.vm());
        target.vm().resume();
        awaitCounterAbove(target.vm(), passes + 2);
    }

    private static boolean sameMemoryButTheCounter(Vm a, Vm b) {
        return mismatch(a, b, COUNTER) == -1;
    }

    /** The first guest address where the two VMs' memories differ, outside the quadword at {@code except} (-1: none); -1 if none. */
    private static long mismatch(Vm a, Vm b, long except) {
        List<GuestMemory.Region> ra = a.memory().regions();
        List<GuestMemory.Region> rb = b.memory().regions();
        assertThat(rb).extracting(GuestMemory.Region::guestAddress).isEqualTo(ra.stream().map(GuestMemory.Region::guestAddress).toList());
        for (int i = 0; i < ra.size(); i++) {
            var x = ra.get(i).backing().segment();
            var y = rb.get(i).backing().segment();
            long base = ra.get(i).guestAddress();
            long offset = 0;
            while (offset < x.byteSize()) {
                long m = x.asSlice(offset).mismatch(y.asSlice(offset));
                if (m == -1) {
                    break;
                }
                long address = base + offset + m;
                if (except < 0 || address < except || address >= except + 8) {
                    return address;
                }
                offset += m + 1;
            }
        }
        return -1;
    }

    /** A cut connection at each step before the commit: the source's guest runs on with its disk; the destination ends. */
    @ParameterizedTest
    @EnumSource(value = MigrationWire.Type.class, names = {"HELLO", "CONFIG", "MEMORY", "ROUND_END", "STATE"})
    void aConnectionCutBeforeTheCommitLeavesTheGuestRunningAtTheSource(MigrationWire.Type cutAt) throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        closeables.add(new MigrationProxy(dir.resolve("proxy.sock"), dir.resolve("dest.sock"), MigrationProxy.Fault.CUT_BEFORE, cutAt));

        MigrationSource migration = new MigrationSource(source, to("proxy.sock"));
        assertThatThrownBy(migration::run).isInstanceOf(MigrationException.class).hasMessageContaining("the guest runs on here");
        assertThat(migration.progress().phase()).isEqualTo(MigrationSource.Phase.FAILED);
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
        awaitCounterAbove(source.vm(), counter(source.vm()) + 1000);
        assertThat(failure(received)).isInstanceOf(MigrationException.class).hasMessageContaining("connection");
        assertThat(diskLocked()).as("the source holds its disk again").isTrue();
    }

    /**
     * The commit lost on its way: the destination never runs the guest, and the source, which
     * cannot know, keeps it paused until told to resume it, which works once the destination let go.
     */
    @Test
    void aCommitLostOnItsWayLeavesTheGuestPausedAtTheSourceUntilResumedThere() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        closeables.add(new MigrationProxy(dir.resolve("proxy.sock"), dir.resolve("dest.sock"), MigrationProxy.Fault.CUT_BEFORE,
                MigrationWire.Type.GO));

        MigrationSource migration = new MigrationSource(source, to("proxy.sock"));
        assertThatThrownBy(migration::run).isInstanceOf(MigrationException.class).hasMessageContaining("answer was lost");
        assertThat(migration.progress().phase()).isEqualTo(MigrationSource.Phase.COMMIT_UNCONFIRMED);
        assertThat(failure(received)).hasMessageContaining("connection");
        assertThat(source.vm().state()).isEqualTo(Vm.State.PAUSED);
        assertThat(diskLocked()).as("nobody holds the disk").isFalse();

        migration.resumeHere();
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
        awaitCounterAbove(source.vm(), counter(source.vm()) + 1000);
        assertThat(diskLocked()).as("the source holds its disk again").isTrue();
    }

    @Test
    void aLostAnswerToTheCommitLeavesTheGuestRunningAtTheDestinationOnly() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        closeables.add(new MigrationProxy(dir.resolve("proxy.sock"), dir.resolve("dest.sock"), MigrationProxy.Fault.CUT_ANSWER_AFTER,
                MigrationWire.Type.GO));

        MigrationSource migration = new MigrationSource(source, to("proxy.sock"));
        assertThatThrownBy(migration::run).isInstanceOf(MigrationException.class).hasMessageContaining("may run there now")
                .hasMessageContaining("stays paused here");
        VmBuilder.Machine target = received.get(30, TimeUnit.SECONDS);
        assertThat(source.vm().state()).as("the source after the commit").isEqualTo(Vm.State.PAUSED);
        long stoppedAt = counter(source.vm());
        awaitCounterAbove(target.vm(), stoppedAt + 1000);
        assertThat(counter(source.vm())).isEqualTo(stoppedAt);
        assertThatThrownBy(migration::resumeHere).as("the destination holds the disk").isInstanceOf(MigrationException.class)
                .hasMessageContaining("still held by another process");
        assertThat(source.vm().state()).isEqualTo(Vm.State.PAUSED);
    }

    @Test
    void aCorruptedMessageIsRefusedAndTheGuestRunsOnAtTheSource() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        closeables.add(new MigrationProxy(dir.resolve("proxy.sock"), dir.resolve("dest.sock"), MigrationProxy.Fault.CORRUPT,
                MigrationWire.Type.MEMORY));

        assertThatThrownBy(new MigrationSource(source, to("proxy.sock"))::run).isInstanceOf(MigrationException.class)
                .hasMessageContaining("is corrupt").hasMessageContaining("the guest runs on here");
        assertThat(failure(received)).hasMessageContaining("MEMORY message from the source is corrupt");
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
    }

    @Test
    void aDestinationThatDoesNotAnswerEndsTheMigrationAfterTheTimeout() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        ServerSocketChannel silent = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        silent.bind(UnixDomainSocketAddress.of(dir.resolve("silent.sock")));
        closeables.add(silent);
        MigrationSource.Options options = new MigrationSource.Options(MigrationAddress.parse("unix:" + dir.resolve("silent.sock")),
                Duration.ofMillis(300), 30, false, Duration.ofSeconds(1));
        assertThatThrownBy(new MigrationSource(source, options)::run).isInstanceOf(MigrationException.class)
                .hasMessageContaining("sent nothing for 1 s").hasMessageContaining("the guest runs on here");
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
    }

    @Test
    void noDestinationListeningIsAClearError() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        assertThatThrownBy(new MigrationSource(source, to("nobody.sock"))::run).isInstanceOf(MigrationException.class)
                .hasMessageContaining("cannot reach the destination").hasMessageContaining("--incoming");
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
    }

    @Test
    void aSourceOfAnotherProtocolVersionIsRefused() throws Exception {
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        try (SocketChannel fake = SocketChannel.open(UnixDomainSocketAddress.of(dir.resolve("dest.sock")));
                MigrationWire wire = new MigrationWire(fake, "the destination")) {
            wire.send(MigrationWire.Type.HELLO, MigrationWire.hello(99, StateFile.VERSION));
            assertThatThrownBy(() -> wire.receive(SHORT, "an answer")).isInstanceOf(MigrationException.class)
                    .hasMessageContaining("protocol version 99, and this destination " + MigrationWire.VERSION);
        }
        assertThat(failure(received)).hasMessageContaining("version 99");
    }

    /** Before any memory moves: a source of another Panamax version once passed HELLO and failed only at STATE. */
    @Test
    void aSourceOfAnotherStateFormatIsRefusedAtItsHello() throws Exception {
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        try (SocketChannel fake = SocketChannel.open(UnixDomainSocketAddress.of(dir.resolve("dest.sock")));
                MigrationWire wire = new MigrationWire(fake, "the destination")) {
            wire.send(MigrationWire.Type.HELLO, MigrationWire.hello(MigrationWire.VERSION, StateFile.VERSION - 1));
            assertThatThrownBy(() -> wire.receive(SHORT, "an answer")).isInstanceOf(MigrationException.class)
                    .hasMessageContaining("state format version " + (StateFile.VERSION - 1) + ", and this destination reads " + StateFile.VERSION);
        }
        assertThat(failure(received)).hasMessageContaining("state format version");
    }

    @Test
    void aDiskThatIsNotAtTheSamePathHereIsRefusedBeforeTheSourceStops() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        Files.move(disk, dir.resolve("moved.img")); // the source keeps its open file; a destination finds nothing there
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        assertThatThrownBy(new MigrationSource(source, to("dest.sock"))::run).isInstanceOf(MigrationException.class)
                .hasMessageContaining("refuses this VM").hasMessageContaining("drive data: " + disk + " does not exist")
                .hasMessageContaining("the guest runs on here");
        assertThat(failure(received)).hasMessageContaining("drive data");
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
    }

    /**
     * A guest that dirties 16 MiB on every pass, over a link slower than that (so that how fast this
     * machine runs the guest does not matter), against a 1 ms target.
     */
    @Test
    void aGuestDirtyingFasterThanTheLinkEndsAtTheRoundLimitWithItsLongerDowntimeReported() throws Exception {
        VmBuilder.Machine source = source(0x3000000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        MigrationSource.Options options = overASlowLink("dest.sock", false);
        MigrationSource.Progress done = new MigrationSource(source, options).run();
        assertThat(done.phase()).isEqualTo(MigrationSource.Phase.COMPLETED);
        assertThat(done.round()).as("the rounds sent before the guest stopped").isEqualTo(3);
        assertThat(done.expectedDowntimeMillis()).isGreaterThan(1);
        assertThat(done.downtimeMillis()).isPositive();
        assertThat(received.get(30, TimeUnit.SECONDS).vm().state()).isEqualTo(Vm.State.RUNNING);
    }

    @Test
    void aLongerDowntimeCanBeRefusedAndTheGuestRunsOn() throws Exception {
        VmBuilder.Machine source = source(0x3000000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        MigrationSource.Options options = overASlowLink("dest.sock", true);
        assertThatThrownBy(new MigrationSource(source, options)::run).isInstanceOf(MigrationException.class)
                .hasMessageContaining("dirties memory faster than the connection carries it").hasMessageContaining("the guest runs on here");
        assertThat(failure(received)).hasMessageContaining("cancelled");
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);

        // The rounds took the dirty log: a diff snapshot now would miss their pages, and is refused until a full one.
        source.vm().pause();
        assertThatThrownBy(() -> VmSnapshot.create(source, new VmSnapshot.Create(dir.resolve("d.state"), dir.resolve("d.mem"),
                VmSnapshot.Kind.DIFF))).isInstanceOf(IllegalStateException.class).hasMessageContaining("take a full snapshot now");
        VmSnapshot.create(source, new VmSnapshot.Create(dir.resolve("f.state"), dir.resolve("f.mem"), VmSnapshot.Kind.FULL));
        VmSnapshot.create(source, new VmSnapshot.Create(dir.resolve("d.state"), dir.resolve("d.mem"), VmSnapshot.Kind.DIFF));
        assertThat(dir.resolve("d.state")).exists();
    }

    @Test
    void aCancelBeforeTheCommitLeavesTheGuestRunningAtTheSource() throws Exception {
        VmBuilder.Machine source = source(0x3000000);
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        MigrationSource.Options options = new MigrationSource.Options(MigrationAddress.parse("unix:" + dir.resolve("dest.sock")),
                Duration.ofMillis(1), 10_000, false, SHORT);
        MigrationSource migration = new MigrationSource(source, options);
        CompletableFuture<MigrationSource.Progress> run = CompletableFuture.supplyAsync(() -> {
            try {
                return migration.run();
            } catch (MigrationException e) {
                throw new java.util.concurrent.CompletionException(e);
            }
        });
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (migration.progress().round() < 2) {
            assertThat(System.nanoTime()).as("the migration reaching round 2").isLessThan(deadline);
            Thread.sleep(10);
        }
        migration.cancel();
        assertThatThrownBy(() -> run.get(30, TimeUnit.SECONDS)).hasCauseInstanceOf(MigrationException.class)
                .hasMessageContaining("cancelled");
        assertThat(migration.progress().phase()).isEqualTo(MigrationSource.Phase.CANCELLED);
        assertThat(source.vm().state()).isEqualTo(Vm.State.RUNNING);
        assertThat(failure(received)).hasMessageContaining("cancelled");
    }

    @Test
    void malformedMemoryRunsAreRefused() throws Exception {
        VmBuilder.Machine source = source(0x2001000);
        // A source that says the right things, then sends pages outside the guest's memory.
        CompletableFuture<VmBuilder.Machine> received = destination("dest.sock", MigrationDestination.Options.defaults());
        try (SocketChannel fake = SocketChannel.open(UnixDomainSocketAddress.of(dir.resolve("dest.sock")));
                MigrationWire wire = new MigrationWire(fake, "the destination")) {
            wire.send(MigrationWire.Type.HELLO, MigrationWire.hello(MigrationWire.VERSION, StateFile.VERSION));
            wire.expect(MigrationWire.Type.ACK, SHORT, "hello");
            StateWriter config = new StateWriter();
            source.vm().pause();
            config.section("machine", out -> VmSnapshot.writeMachine(out, source, VmSnapshot.Kind.FULL, ""));
            config.section("memory", out -> dev.panamax.vm.MemoryMap.of(source.vm().memory()).saveState(out));
            config.section("cpuid", out -> out.i32(0));
            wire.send(MigrationWire.Type.CONFIG, config.toByteArray());
            wire.expect(MigrationWire.Type.ACK, SHORT, "config");
            ByteBuffer run = ByteBuffer.allocate(16 + 4096).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).putInt(1).putInt(0);
            wire.send(MigrationWire.Type.MEMORY, run.position(0));
        }
        assertThat(failure(received)).hasMessageContaining("outside the guest's memory");
    }
}
