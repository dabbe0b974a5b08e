package dev.panamax.api;

import java.util.Map;
import java.util.Objects;

/**
 * What a VM's vCPUs and devices did from its start until the moment {@link VirtualMachine#metrics()}
 * was called: counts that only grow. Each count is the one Firecracker reports under the name in
 * its Javadoc (in the group named there), so that the numbers mean the same in both VMMs.
 *
 * @param vcpus              the exits of all vCPUs together (group {@code vcpu})
 * @param drives             per drive id, in the configuration's order (groups {@code block_ID})
 * @param networkInterfaces  per interface id, in the configuration's order (groups {@code net_ID})
 * @param consoleOutputBytes bytes the guest wrote to its serial console ({@code uart.write_count}:
 *                           one write per byte, as the 16550A takes them)
 * @param vsock              the vsock device's counts, or null when the VM has none (group {@code vsock})
 */
public record VmMetrics(Vcpus vcpus, Map<String, Block> drives, Map<String, Net> networkInterfaces, long consoleOutputBytes,
        Vsock vsock) {
    public VmMetrics {
        Objects.requireNonNull(vcpus, "vcpus");
        drives = Map.copyOf(drives);
        networkInterfaces = Map.copyOf(networkInterfaces);
    }

    /**
     * vCPU exits by kind.
     *
     * @param exits     every return from KVM_RUN, of any kind (Panamax's own)
     * @param ioIn      {@code exit_io_in}: port reads
     * @param ioOut     {@code exit_io_out}: port writes
     * @param mmioRead  {@code exit_mmio_read}
     * @param mmioWrite {@code exit_mmio_write}
     * @param hlt       HLT exits (Panamax's own {@code exit_hlt}; a vCPU ends at one, as no in-kernel irqchip wakes it)
     * @param shutdown  KVM_EXIT_SHUTDOWN, a triple fault (Panamax's own {@code exit_shutdown})
     * @param failures  {@code failures}: as Firecracker counts them, the exits that end a vCPU other than
     *                  the guest's own power-off, reset or panic: HLT, shutdown, entry failures, internal
     *                  errors, unexpected exits and a device failing an access
     */
    public record Vcpus(long exits, long ioIn, long ioOut, long mmioRead, long mmioWrite, long hlt, long shutdown, long failures) {}

    /**
     * One drive.
     *
     * @param readCount       {@code read_count}: reads done
     * @param readBytes       {@code read_bytes}
     * @param writeCount      {@code write_count}: writes done
     * @param writeBytes      {@code write_bytes}
     * @param flushCount      {@code flush_count}
     * @param invalidRequests {@code invalid_reqs_count}: requests refused for what they asked (outside the disk,
     *                        not whole sectors, a write to a read-only disk, an unknown type)
     * @param ioErrors        {@code execute_fails}: requests the disk failed
     * @param throttledEvents {@code rate_limiter_throttled_events}: times the rate limiter held the requests back
     */
    public record Block(long readCount, long readBytes, long writeCount, long writeBytes, long flushCount, long invalidRequests,
            long ioErrors, long throttledEvents) {}

    /**
     * One network interface; {@code rx} is toward the guest, {@code tx} from it, bytes without the virtio-net header.
     *
     * @param rxPackets   {@code rx_packets_count}
     * @param rxBytes     {@code rx_bytes_count}
     * @param rxDropped   frames for the guest dropped (Panamax's own {@code rx_dropped}: malformed, or larger than the guest's buffers)
     * @param rxThrottled {@code rx_rate_limiter_throttled}
     * @param txPackets   {@code tx_packets_count}
     * @param txBytes     {@code tx_bytes_count}
     * @param txDropped   frames from the guest dropped (Panamax's own {@code tx_dropped}: malformed, or refused by the host end)
     * @param txThrottled {@code tx_rate_limiter_throttled}
     */
    public record Net(long rxPackets, long rxBytes, long rxDropped, long rxThrottled, long txPackets, long txBytes, long txDropped,
            long txThrottled) {}

    /**
     * The vsock device.
     *
     * @param rxBytes {@code rx_bytes_count}: stream bytes given to the guest
     * @param txBytes {@code tx_bytes_count}: stream bytes taken from the guest
     * @param dropped packets from the guest dropped unanswered (Panamax's own {@code tx_dropped})
     * @param reset   packets from the guest answered with RST for breaking the protocol (Panamax's own {@code tx_reset})
     * @param refused connections refused for want of room (Panamax's own {@code conns_refused})
     */
    public record Vsock(long rxBytes, long txBytes, long dropped, long reset, long refused) {}
}
