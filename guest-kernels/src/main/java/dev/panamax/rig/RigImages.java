package dev.panamax.rig;

import dev.panamax.guest.Busybox;
import dev.panamax.guest.DebianKernel;
import dev.panamax.guest.DebianPackages;
import dev.panamax.guest.Initramfs;
import dev.panamax.guest.PanamaxCache;
import dev.panamax.guest.Progress;
import dev.panamax.guest.Resources;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * The rig's L1 kernel and initramfs: Debian's stock {@code linux-image-amd64} kernel (downloaded and
 * unpacked, never installed), the modules that give it 9p, kvm_amd, tun, a bridge (two taps of one
 * network in {@code LiveMigrationTest}) and vhost-vsock (the peer of Panamax's vsock in {@code
 * vsock-vs-qemu.sh}), a static busybox and
 * {@code rig-init.sh}. Cached in {@code <cache>/rig/<kernel-package>_<version>-<busybox-version>-<hash>/}.
 */
public final class RigImages {
    static final String KERNEL_METAPACKAGE = "linux-image-amd64";
    /** Loaded in this order (dependencies first); virtio_console carries the control port. */
    static final List<String> MODULES = List.of("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
            "virtio_pci", "virtio_console", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p", "irqbypass", "ccp", "kvm",
            "kvm-amd", "tun", "llc", "stp", "bridge", "dummy", "vsock", "vmw_vsock_virtio_transport_common", "vhost_iotlb", "vhost", "vhost_vsock");

    /** The L1 kernel ({@code vmlinuz}) and base initramfs. */
    public record Images(Path kernel, Path initramfs) {}

    private RigImages() {}

    public static Images ensure() {
        String kernelPackage = DebianPackages.dependencyOf(KERNEL_METAPACKAGE);
        String kernelVersion = DebianPackages.candidateVersion(kernelPackage);
        Path busybox = Busybox.ensure();
        String init = Resources.text(RigImages.class, "rig-init.sh");
        String key = kernelPackage + "_" + kernelVersion + "-" + DebianPackages.installedVersion("busybox-static") + "-"
                + PanamaxCache.hash(init + MODULES, 12);
        Path entry = PanamaxCache.dir("rig", key);
        Path dir = PanamaxCache.entry(entry, out -> {
            DebianKernel.Unpacked kernel = DebianKernel.unpacked(kernelPackage, KERNEL_METAPACKAGE);
            Progress.say("packing the rig's initramfs into " + entry);
            Files.copy(kernel.vmlinuz(), out.resolve("vmlinuz"));
            Path modules = kernel.modules();
            try (Initramfs cpio = Initramfs.create(out.resolve("initramfs.cpio.gz"))) {
                for (String d : List.of("rig", "rig/modules", "dev", "proc", "sys", "tmp", "usr", "etc", "root", "run", "var"))
                    cpio.directory(d);
                cpio.charDevice("dev/console", 5, 1);
                cpio.file("rig/busybox", 0755, busybox);
                int order = 10;
                for (String name : MODULES) {
                    Optional<Path> ko = findModule(modules, name);
                    if (ko.isPresent()) {
                        cpio.file("rig/modules/" + order++ + "-" + name + ".ko", 0644, ko.get());
                    } else if (!DebianKernel.builtIn(modules, name)) {
                        throw new IOException("kernel module " + name + " is neither in " + modules + " nor built in");
                    }
                }
                cpio.file("init", 0755, init.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }
        });
        return new Images(dir.resolve("vmlinuz"), dir.resolve("initramfs.cpio.gz"));
    }

    private static Optional<Path> findModule(Path modules, String name) throws IOException {
        try (Stream<Path> s = Files.walk(modules.resolve("kernel"))) {
            return s.filter(p -> p.getFileName().toString().equals(name + ".ko")).findFirst();
        }
    }
}
