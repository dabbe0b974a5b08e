package dev.panamax.api;

import dev.panamax.vmm.MachineConfig;
import java.nio.file.Path;
import java.util.List;

/**
 * What a VM was built from, in the API's terms: for a VM that came from elsewhere, a snapshot
 * ({@link VirtualMachine#snapshotConfiguration}) or a live migration ({@link VirtualMachine#configuration}).
 *
 * @param initrd null when none
 * @param vsockUdsPath with {@code vsockGuestCid}, the vsock device; null when there is none
 * @param entropy the entropy device's rate limiter (a limiter of nothing when unlimited); null when there is no entropy device
 * @param balloon null when there is none
 * @param sharedFolders the shared folders, in the order they were given
 */
public record Configuration(Path kernel, Path initrd, String commandLine, int cpus, long memoryMib, List<Drive> drives,
        List<NetworkInterface> networkInterfaces, long vsockGuestCid, Path vsockUdsPath, RateLimiter entropy, Balloon balloon,
        List<SharedFolder> sharedFolders) {
    public Configuration {
        drives = List.copyOf(drives);
        networkInterfaces = List.copyOf(networkInterfaces);
        sharedFolders = List.copyOf(sharedFolders);
    }

    static Configuration of(MachineConfig c) {
        List<Drive> drives = c.drives().stream()
                .map(d -> new Drive(d.id(), d.image(), d.readOnly(), d.root(), d.mmio() ? Transport.MMIO : Transport.PCI,
                        limiter(RateLimiter.ofDevice(d.rateLimit())), d.format() == null ? null : DiskFormat.valueOf(d.format().name())))
                .toList();
        List<NetworkInterface> nics = c.nics().stream()
                .map(n -> new NetworkInterface(n.id(), n.tapName(), n.tapFd(), n.passtSocket(), n.guestMac())
                        .withRateLimiters(limiter(RateLimiter.ofDevice(n.rxRateLimit())), limiter(RateLimiter.ofDevice(n.txRateLimit()))))
                .toList();
        return new Configuration(c.kernel(), c.initrd(), c.commandLine(), c.cpus(), c.memoryMib(), drives, nics,
                c.vsock() == null ? 0 : c.vsock().guestCid(), c.vsock() == null ? null : c.vsock().udsPath(),
                c.entropy() == null ? null : RateLimiter.ofDevice(c.entropy().rateLimit()),
                c.balloon() == null ? null : new Balloon(c.balloon().amountMib(), c.balloon().deflateOnOom(), c.balloon().statsIntervalSeconds()),
                c.shares().stream().map(s -> new SharedFolder(s.directory(), s.tag(), s.readOnly(), SharedFolder.Cache.valueOf(s.cache().name())))
                        .toList());
    }

    /** null for a limiter of nothing, as a configuration leaves an unlimited drive's or interface's limiter out. */
    private static RateLimiter limiter(RateLimiter limiter) {
        return limiter.bandwidth() == null && limiter.ops() == null ? null : limiter;
    }
}
