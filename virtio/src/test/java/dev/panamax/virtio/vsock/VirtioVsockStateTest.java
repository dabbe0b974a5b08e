package dev.panamax.virtio.vsock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.panamax.sys.MappedMemory;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioTestDriver;
import dev.panamax.vm.GuestMemory;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** virtio-vsock saved and restored as Firecracker does it: identity only, no connections, a transport reset for the guest. */
class VirtioVsockStateTest {
    static final long CID = 7;

    @TempDir
    Path dir;
    GuestMemory memory;
    final List<VirtioVsock> devices = new ArrayList<>();

    @BeforeEach
    void setUp() {
        memory = new GuestMemory();
        memory.addRegion(0, MappedMemory.anonymous(8 << 20));
    }

    @AfterEach
    void tearDown() {
        devices.forEach(VirtioVsock::close);
        memory.close();
    }

    VirtioVsock device(long cid, Path uds) {
        VirtioVsock vsock = new VirtioVsock("vsock0", cid, uds, VsockGuest.QUEUE_SIZE);
        devices.add(vsock);
        return vsock;
    }

    static byte[] saved(VirtioVsock vsock) {
        vsock.quiesce();
        StateWriter out = new StateWriter();
        vsock.saveState(out);
        return out.toByteArray();
    }

    static void restore(VirtioVsock vsock, byte[] state) {
        StateReader in = new StateReader(state, "the snapshot");
        vsock.restoreState(in);
        in.end();
    }

    static String connectLine(Path uds, int port) throws Exception {
        try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(uds))) {
            channel.write(ByteBuffer.wrap(("CONNECT " + port + "\n").getBytes(StandardCharsets.US_ASCII)));
            return VirtioVsockTest.readLine(channel);
        }
    }

    @Test
    void aRestoredDeviceTellsTheGuestOfATransportResetOnceAndTakesNewConnections() throws Exception {
        Path uds = dir.resolve("v.sock");
        VirtioVsock vsock = device(CID, uds);
        VsockGuest guest = new VsockGuest(vsock, new VirtioTestDriver(vsock, memory));
        guest.start();
        guest.listening.add(5000);
        CompletableFuture<String> first = CompletableFuture.supplyAsync(() -> {
            try {
                return connectLine(uds, 5000);
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
        guest.pumpUntil(first::isDone, "the first connection");
        assertThat(first.join()).startsWith("OK ");
        guest.pump();
        byte[] state = saved(vsock);
        assertThat(guest.transportResets).isZero();
        vsock.close();

        VirtioVsock fresh = device(CID, uds);
        guest.continueOn(fresh);
        restore(fresh, state);
        assertThat(fresh.status() & VirtioDevice.DRIVER_OK).isNotZero();
        guest.pumpUntil(() -> guest.transportResets == 1, "the transport reset event");
        guest.connections.clear(); // as Linux does on the event
        CompletableFuture<String> second = CompletableFuture.supplyAsync(() -> {
            try {
                return connectLine(uds, 5000);
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
        guest.pumpUntil(second::isDone, "a connection after the restore");
        assertThat(second.join()).startsWith("OK ")
                .as("a host port the snapshot's connection had: a late packet of it would end the new one").isNotEqualTo(first.join());
        assertThat(guest.transportResets).as("once").isEqualTo(1);
        assertThat(guest.problems).isEmpty();
    }

    @Test
    void aDeviceRestoredBeforeItsDriverRanSendsNoEvent() {
        Path uds = dir.resolve("v.sock");
        VirtioVsock vsock = device(CID, uds);
        VirtioTestDriver driver = new VirtioTestDriver(vsock, memory);
        byte[] state = saved(vsock);
        vsock.close();
        VirtioVsock fresh = device(CID, uds);
        fresh.connect(memory, driver.interrupts());
        restore(fresh, state);
        assertThat(fresh.transportResetPending()).isFalse();
    }

    String refusal(VirtioVsock saved, VirtioVsock other) {
        VirtioTestDriver driver = new VirtioTestDriver(saved, memory);
        driver.start(VsockGuest.QUEUE_SIZE);
        byte[] state = saved(saved);
        other.connect(memory, driver.interrupts());
        Throwable thrown = catchThrowable(() -> restore(other, state));
        assertThat(thrown).isInstanceOf(StateFormatException.class);
        assertThat(other.status()).as("nothing applied").isZero();
        assertThat(other.transportResetPending()).isFalse();
        return thrown.getMessage();
    }

    @Test
    void anotherGuestCidIsRefusedNamingBoth() {
        assertThat(refusal(device(CID, dir.resolve("a.sock")), device(9, dir.resolve("b.sock"))))
                .isEqualTo("section identity of the snapshot: the snapshot's virtio-vsock (vsock0) has guest CID 7, and this VM's has 9");
    }

    @Test
    void anotherSocketPathIsRefusedNamingBoth() {
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        assertThat(refusal(device(CID, a), device(CID, b))).isEqualTo("section identity of the snapshot: the snapshot's virtio-vsock (vsock0) has its socket at "
                + a + ", and this VM's at " + b);
    }
}
