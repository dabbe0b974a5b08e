package dev.panamax.vmm;

import dev.panamax.boot.MpTable;
import dev.panamax.devices.pci.PciBus;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.ReadOnlyImageException;
import dev.panamax.storage.image.Images;
import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HugePageSize;
import dev.panamax.virtio.fs.VirtioFs;
import dev.panamax.virtio.net.VirtioNet;
import dev.panamax.virtio.rng.VirtioRng;
import dev.panamax.virtio.vsock.VirtioVsock;
import dev.panamax.vm.Vm;
import dev.panamax.x86.PhysicalLayout;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.IntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The rules a VM's resources follow, in one place for every way to describe a VM: the Java API,
 * the JSON config file, the REST API and {@code panamax run}'s options. Each check names the value
 * as its caller's user knows it ({@code name}) and throws {@link ConfigException}.
 */
public final class VmRules {
    private VmRules() {}

    private static final Pattern ID = Pattern.compile("[A-Za-z0-9_]{1,64}");
    private static final Pattern MAC = Pattern.compile("[0-9a-f]{2}(:[0-9a-f]{2}){5}");
    /** IFNAMSIZ less the terminating NUL. */
    private static final int MAX_DEVICE_NAME = 15;
    /** The PCI bus's slots but the host bridge's and the pvpanic device's, which every VM has. */
    public static final int MAX_PCI_DEVICES = PciBus.SLOTS - 2;

    public static int vcpuCount(long count, String name) {
        if (count < 1 || count > MpTable.MAX_CPUS) {
            throw new ConfigException(name, count + " vCPUs is out of range: a guest has 1 to " + MpTable.MAX_CPUS);
        }
        return (int) count;
    }

    public static long memoryMib(long mib, String name) {
        long minimum = PhysicalLayout.MINIMUM_MEMORY >> 20;
        if (mib < minimum) {
            throw new ConfigException(name, mib + " MiB of guest memory is too little; Linux needs at least " + minimum + " MiB");
        }
        long host = hostMemoryBytes();
        if (host > 0 && mib > host >> 20) {
            throw new ConfigException(name, mib + " MiB is more than this host's " + (host >> 20) + " MiB of RAM");
        }
        if (mib > 1L << 30) { // where the host's size is unknown: a bound that keeps bytes in a long
            throw new ConfigException(name, mib + " MiB is more than any host has");
        }
        return mib;
    }

    /** A host CPU list in Linux's format ({@code 0-3,8}), as {@code taskset -c} and cpusets take it. */
    public static CpuSet cpuList(String list, String name) {
        try {
            return CpuSet.parse(list);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(name, e.getMessage());
        }
    }

    private static final Pattern AFFINITY_ENTRY = Pattern.compile("(\\d{1,4}|io)@\\[([^\\]]*)\\]");

    /**
     * {@code run}'s affinity entries: {@code 0@[2],1@[3-4],io@[0-1]}, a vCPU index or {@code io} (the
     * device I/O threads) at a host CPU list in brackets, each once.
     */
    public static CpuPinning cpuPinning(String entries, String name) {
        Map<Integer, CpuSet> vcpus = new HashMap<>();
        CpuSet io = null;
        for (String entry : splitOutsideBrackets(entries)) {
            Matcher m = AFFINITY_ENTRY.matcher(entry);
            if (!m.matches()) {
                throw new ConfigException(name, "'" + entry + "' is not an affinity entry: write VCPU@[CPUS] or io@[CPUS],"
                        + " e.g. 0@[2],1@[3],io@[0-1]");
            }
            CpuSet cpus;
            try {
                cpus = CpuSet.parse(m.group(2));
            } catch (IllegalArgumentException e) {
                throw new ConfigException(name, "in " + entry + ", " + e.getMessage());
            }
            if (m.group(1).equals("io")) {
                if (io != null) {
                    throw new ConfigException(name, "the I/O threads are given CPUs twice (io@[...]); give them once");
                }
                io = cpus;
            } else if (vcpus.put(Integer.parseInt(m.group(1)), cpus) != null) {
                throw new ConfigException(name, "vCPU " + m.group(1) + " is given CPUs twice; give each vCPU once");
            }
        }
        return new CpuPinning(vcpus, io);
    }

    /** {@code text} split at the commas that are not inside brackets. */
    public static List<String> splitOutsideBrackets(String text) {
        List<String> parts = new ArrayList<>();
        int depth = 0;
        int start = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '[') {
                depth++;
            } else if (c == ']') {
                depth--;
            } else if (c == ',' && depth == 0) {
                parts.add(text.substring(start, i));
                start = i + 1;
            }
        }
        parts.add(text.substring(start));
        return parts;
    }

    /** A pinning for a VM of {@code vcpuCount} vCPUs: each pinned vCPU exists. */
    public static CpuPinning cpuPinning(CpuPinning pinning, int vcpuCount, String name) {
        for (int vcpu : new TreeSet<>(pinning.vcpus().keySet())) {
            if (vcpu < 0 || vcpu >= vcpuCount) {
                throw new ConfigException(name, "vCPU " + vcpu + " does not exist: the VM has " + count(vcpuCount, "vCPU")
                        + ", numbered 0 to " + (vcpuCount - 1));
            }
        }
        return pinning;
    }

    /** Every CPU {@code pinning} names is online on this host now ({@code /sys/devices/system/cpu/online}). */
    public static void cpusOnline(CpuPinning pinning, String name) {
        if (pinning.isNone()) {
            return;
        }
        CpuSet online;
        try {
            online = CpuSet.online();
        } catch (IOException e) {
            throw new ConfigException(name, "cannot tell which host CPUs are online: " + e.getMessage());
        }
        for (int vcpu : new TreeSet<>(pinning.vcpus().keySet())) {
            requireOnline(pinning.vcpus().get(vcpu), online, "vCPU " + vcpu, name);
        }
        if (pinning.ioThreads() != null) {
            requireOnline(pinning.ioThreads(), online, "the I/O threads", name);
        }
    }

    private static void requireOnline(CpuSet cpus, CpuSet online, String whose, String name) {
        CpuSet offline = cpus.minus(online);
        if (!offline.isEmpty()) {
            throw new ConfigException(name, String.format("host CPU%s %s of %s %s not online; this host's online CPUs are %s (%s)",
                    offline.stream().count() == 1 ? "" : "s", offline, whose, offline.stream().count() == 1 ? "is" : "are", online,
                    CpuSet.ONLINE));
        }
    }

    /** Firecracker's {@code huge_pages}: {@code None} (null here), {@code 2M}, or Panamax's {@code 1G}. */
    public static HugePageSize hugePages(String value, String name) {
        if (value.equals("None")) {
            return null;
        }
        HugePageSize size = HugePageSize.ofLabel(value);
        if (size == null) {
            throw new ConfigException(name, "'" + value + "' is not a huge page size: give None, 2M or 1G");
        }
        return size;
    }

    /** Guest memory of {@code mib} on {@code hugePages} (null: ordinary pages) is a whole number of them. */
    public static void memoryOnHugePages(long mib, HugePageSize hugePages, String name) {
        if (hugePages != null && (mib << 20) % hugePages.bytes() != 0) {
            throw new ConfigException(name, String.format("%d MiB is not a multiple of the %s huge page size; give a multiple of %d MiB",
                    mib, hugePages.label(), hugePages.bytes() >> 20));
        }
    }

    /** The host has {@code hugePages} and enough of them free now for {@code mib} of guest memory. */
    public static void hugePagesAvailable(long mib, HugePageSize hugePages, String name) {
        if (hugePages == null) {
            return;
        }
        try {
            hugePages.requireAvailable(mib << 20);
        } catch (IllegalStateException e) {
            throw new ConfigException(name, e.getMessage());
        }
    }

    /** A kernel or initrd: an existing, readable regular file. */
    public static Path bootFile(String path, String name) {
        Path p = path(path, name);
        if (!Files.exists(p)) {
            throw new ConfigException(name, p + " does not exist");
        }
        if (Files.isDirectory(p)) {
            throw new ConfigException(name, p + " is a directory, not a file");
        }
        if (!Files.isRegularFile(p)) {
            throw new ConfigException(name, p + " is not a regular file");
        }
        if (!Files.isReadable(p)) {
            throw new ConfigException(name, "cannot read " + p + " (check its permissions)");
        }
        return p;
    }

    /** A kernel command line (or the part appended to Panamax's): one line of text. */
    public static String commandLine(String line, String name) {
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            if (c < 0x20 || c == 0x7f) {
                throw new ConfigException(name, String.format("has a control character (U+%04X) at index %d;"
                        + " a kernel command line is one line of printable text", (int) c, i));
            }
        }
        return line;
    }

    /** A drive's or network interface's id. */
    public static String id(String id, String name) {
        if (!ID.matcher(id).matches()) {
            throw new ConfigException(name, "'" + id + "' is not a valid id: use 1 to 64 letters, digits or underscores");
        }
        return id;
    }

    /**
     * A drive's image: an existing regular file the VMM can read, and write unless the drive is
     * read-only; with no format given, one whose contents are in a format Panamax reads ({@link Images#probe}).
     */
    public static Path diskImage(Path image, ImageFormat format, boolean readOnly, String name) {
        if (!Files.exists(image)) {
            throw new ConfigException(name, image + " does not exist; give the path of a disk image file");
        }
        if (!Files.isRegularFile(image)) {
            throw new ConfigException(name, image + " is not a regular file; give the path of a disk image file");
        }
        if (!Files.isReadable(image)) {
            throw new ConfigException(name, "cannot read " + image + " (check its permissions)");
        }
        if (!readOnly && !Files.isWritable(image)) {
            throw new ConfigException(name, "cannot write " + image + "; make it writable or make the drive read-only");
        }
        try {
            ImageFormat f = format != null ? format : Images.probe(image);
            if ((f == ImageFormat.VMDK || f == ImageFormat.VHDX) && !readOnly) {
                // Only monolithicSparse VMDK is written, and no VHDX: the others are refused here, not when the VM starts.
                Images.open(image, Images.OpenOptions.readWrite().withFormat(f).withoutBacking()).close();
            }
        } catch (InvalidImageException | ReadOnlyImageException e) {
            throw new ConfigException(name, e.getMessage());
        } catch (IOException e) {
            throw new ConfigException(name, "cannot read " + image + " (" + e.getMessage() + ")");
        }
        return image;
    }

    public static Path diskImage(String image, ImageFormat format, boolean readOnly, String name) {
        return diskImage(path(image, name), format, readOnly, name);
    }

    /** A host network device (TAP) name, by the kernel's rules for interface names. */
    public static String hostDeviceName(String device, String name) {
        boolean valid = !device.isEmpty() && device.getBytes(StandardCharsets.UTF_8).length <= MAX_DEVICE_NAME
                && !device.equals(".") && !device.equals("..")
                && device.chars().noneMatch(c -> c == '/' || c == ':' || Character.isWhitespace(c) || c < 0x20);
        if (!valid) {
            throw new ConfigException(name, "'" + device + "' is not a network device name: use 1 to " + MAX_DEVICE_NAME
                    + " characters without '/', ':' or spaces");
        }
        return device;
    }

    /** A guest MAC address, six hex pairs separated by colons; returns it in lower case. */
    public static String macAddress(String mac, String name) {
        String m = mac.toLowerCase(Locale.ROOT);
        if (!MAC.matcher(m).matches()) {
            throw new ConfigException(name, "'" + mac + "' is not a MAC address: write six hex pairs, like 06:00:ac:10:00:02");
        }
        if ((Integer.parseInt(m.substring(0, 2), 16) & 1) != 0) {
            throw new ConfigException(name, mac + " is a multicast address; a network interface needs a unicast one"
                    + " (an even first byte, like 06)");
        }
        if (m.equals("00:00:00:00:00:00")) {
            throw new ConfigException(name, "00:00:00:00:00:00 is not a usable MAC address");
        }
        return m;
    }

    /**
     * The drives of one VM together: distinct ids, at most one root device, and no image written
     * through one drive while another uses it. A clash is reported at the later drive, named by {@code nameOf(index)}.
     */
    public static void drives(List<DriveConfig> drives, IntFunction<String> nameOf) {
        Map<String, DriveConfig> byId = new HashMap<>();
        Map<Path, DriveConfig> byImage = new HashMap<>();
        DriveConfig root = null;
        int mmio = 0;
        for (int i = 0; i < drives.size(); i++) {
            DriveConfig d = drives.get(i);
            if (d.mmio() && ++mmio > DeviceManager.MAX_MMIO_DEVICES) {
                throw new ConfigException(nameOf.apply(i), "a VM has at most " + DeviceManager.MAX_MMIO_DEVICES
                        + " virtio-mmio devices; put this drive on PCI");
            }
            if (byId.putIfAbsent(d.id(), d) != null) {
                throw new ConfigException(nameOf.apply(i), "another drive is already called '" + d.id() + "'; drive ids must be unique");
            }
            if (d.root()) {
                if (root != null) {
                    throw new ConfigException(nameOf.apply(i), "drive '" + root.id() + "' is the root device already;"
                            + " only one drive can be the root device");
                }
                root = d;
            }
            if (root != null && !root.mmio() && mmio > 0) {
                throw new ConfigException(nameOf.apply(i), "root drive '" + root.id() + "' is on PCI, but Linux probes virtio-mmio"
                        + " drives first, so it would not be /dev/vda; put the root drive on virtio-mmio too, or every drive on PCI");
            }
            DriveConfig other = byImage.putIfAbsent(realPath(d.image()), d);
            if (other != null && !(other.readOnly() && d.readOnly())) {
                throw new ConfigException(nameOf.apply(i), "drive '" + d.id() + "' uses the image " + d.image() + " that drive '"
                        + other.id() + "' uses, and one of them may write it; give each a copy, or make both read-only");
            }
        }
    }

    /** The network interfaces of one VM together: distinct ids, host ends (taps, tap descriptors, passt sockets) and guest MACs. */
    public static void networkInterfaces(List<NicConfig> interfaces, IntFunction<String> nameOf) {
        Map<String, NicConfig> byId = new HashMap<>();
        Map<String, NicConfig> byHostEnd = new HashMap<>();
        Map<String, NicConfig> byMac = new HashMap<>();
        for (int i = 0; i < interfaces.size(); i++) {
            NicConfig n = interfaces.get(i);
            if (byId.putIfAbsent(n.id(), n) != null) {
                throw new ConfigException(nameOf.apply(i), "another network interface is already called '" + n.id()
                        + "'; interface ids must be unique");
            }
            String host = n.hostEnd();
            NicConfig other = host == null ? null : byHostEnd.putIfAbsent(host, n);
            if (other != null) {
                throw new ConfigException(nameOf.apply(i), "network interface '" + other.id() + "' uses " + host
                        + " already; give each interface its own");
            }
            if (n.guestMac() != null) {
                other = byMac.putIfAbsent(n.guestMac().toLowerCase(Locale.ROOT), n);
                if (other != null) {
                    throw new ConfigException(nameOf.apply(i), "network interface '" + other.id() + "' has the MAC address "
                            + n.guestMac() + " already; give each interface its own");
                }
            }
        }
    }

    /**
     * The devices of one VM on PCI (its drives there, and every network interface) together: a bus
     * slot each, and MSI-X vectors from the VM's {@link Vm#MAX_MSI_VECTORS}, one per queue and one
     * more: a drive has a queue per vCPU, a network interface {@link VirtioNet#QUEUE_COUNT}.
     *
     * @param name what the user calls the VM's devices
     */
    public static void pciDevices(int vcpus, int pciDrives, int networkInterfaces, String name) {
        pciDevices(vcpus, pciDrives, networkInterfaces, false, name);
    }

    /** {@link #pciDevices(int, int, int, String)} with a vsock device too, which has {@link VirtioVsock#QUEUE_COUNT} queues. */
    public static void pciDevices(int vcpus, int pciDrives, int networkInterfaces, boolean vsock, String name) {
        pciDevices(vcpus, pciDrives, networkInterfaces, vsock, 0, name);
    }

    /** The same with {@code shares} shared folders too, each a device of {@link VirtioFs#QUEUE_COUNT} queues. */
    public static void pciDevices(int vcpus, int pciDrives, int networkInterfaces, boolean vsock, int shares, String name) {
        pciDevices(vcpus, pciDrives, networkInterfaces, vsock, shares, false, false, name);
    }

    /** The same with an entropy device too, of {@link VirtioRng#QUEUE_COUNT} queue, and a balloon, of up to {@link #BALLOON_QUEUES}. */
    public static void pciDevices(int vcpus, int pciDrives, int networkInterfaces, boolean vsock, int shares, boolean entropy,
            boolean balloon, String name) {
        String what = count(pciDrives, "drive") + " on PCI and " + count(networkInterfaces, "network interface") + (vsock ? " and a vsock device" : "")
                + (shares > 0 ? " and " + count(shares, "shared folder") : "") + (entropy ? " and an entropy device" : "")
                + (balloon ? " and a balloon" : "");
        int devices = pciDrives + networkInterfaces + (vsock ? 1 : 0) + shares + (entropy ? 1 : 0) + (balloon ? 1 : 0);
        if (devices > MAX_PCI_DEVICES) {
            throw new ConfigException(name, what + " are " + devices + " PCI devices, more than the " + MAX_PCI_DEVICES
                    + " slots the bus has for them (of its " + (PciBus.SLOTS - 1) + ", one holds the pvpanic device); put drives on virtio-mmio");
        }
        long vectors = (long) pciDrives * (vcpus + 1) + (long) networkInterfaces * (VirtioNet.QUEUE_COUNT + 1)
                + (vsock ? VirtioVsock.QUEUE_COUNT + 1 : 0) + (long) shares * (VirtioFs.QUEUE_COUNT + 1)
                + (entropy ? VirtioRng.QUEUE_COUNT + 1 : 0) + (balloon ? BALLOON_QUEUES + 1 : 0);
        if (vectors > Vm.MAX_MSI_VECTORS) {
            throw new ConfigException(name, "with " + count(vcpus, "vCPU") + ", " + what + " need " + vectors + " MSI-X vectors"
                    + " (a drive on PCI one per vCPU and one more, a network interface " + (VirtioNet.QUEUE_COUNT + 1)
                    + (vsock ? ", the vsock device " + (VirtioVsock.QUEUE_COUNT + 1) : "")
                    + (shares > 0 ? ", a shared folder " + (VirtioFs.QUEUE_COUNT + 1) : "")
                    + (entropy ? ", the entropy device " + (VirtioRng.QUEUE_COUNT + 1) : "")
                    + (balloon ? ", the balloon " + (BALLOON_QUEUES + 1) : "")
                    + "), more than a VM's " + Vm.MAX_MSI_VECTORS + "; use fewer vCPUs, or put drives on virtio-mmio");
        }
    }

    /** The balloon's queues with statistics: inflate, deflate, stats. */
    static final int BALLOON_QUEUES = 3;
    /** The longest statistics interval: a day. */
    public static final int MAX_STATS_INTERVAL_SECONDS = 86_400;

    /**
     * A balloon's rules: a target no larger than guest memory (Firecracker's), a statistics interval
     * from 0 (none) to {@link #MAX_STATS_INTERVAL_SECONDS}, and ordinary pages: memory on hugetlb
     * pages cannot give back the balloon's 4 KiB pages (as in Firecracker, which refuses the pair).
     *
     * @param name how the user knows the balloon ({@code balloon}, {@code --balloon})
     */
    public static void balloon(BalloonConfig balloon, long memoryMib, HugePageSize hugePages, String name) {
        balloonAmount(balloon.amountMib(), memoryMib, name + ".amount_mib");
        balloonStatsInterval(balloon.statsIntervalSeconds(), name + ".stats_polling_interval_s");
        if (hugePages != null) {
            throw new ConfigException(name, "a balloon cannot give back 4 KiB pages of memory on " + hugePages.label()
                    + " huge pages; leave the balloon out, or use ordinary pages");
        }
    }

    /** A balloon's target: 0 to the guest's memory, in MiB. */
    public static long balloonAmount(long amountMib, long memoryMib, String name) {
        if (amountMib < 0 || amountMib > memoryMib) {
            throw new ConfigException(name, amountMib + " MiB is not a balloon size for a guest of " + memoryMib
                    + " MiB: use 0 to " + memoryMib);
        }
        return amountMib;
    }

    /** A statistics interval: 0 (none) to a day, in seconds. */
    public static int balloonStatsInterval(long seconds, String name) {
        if (seconds < 0 || seconds > MAX_STATS_INTERVAL_SECONDS) {
            throw new ConfigException(name, seconds + " is not a statistics interval: use 0 (no statistics) to "
                    + MAX_STATS_INTERVAL_SECONDS + " seconds");
        }
        return (int) seconds;
    }

    /** The longest name {@code <uds_path>_<port>} adds: an underscore and a port of 10 digits. */
    static final int LONGEST_PORT_SUFFIX = "_4294967295".length();
    /** A Unix socket address holds 108 bytes with its terminating NUL. */
    static final int MAX_SOCKET_PATH = 107;
    /** The longest vsock socket path: its port sockets must fit a Unix socket address too. */
    public static final int MAX_VSOCK_PATH = MAX_SOCKET_PATH - LONGEST_PORT_SUFFIX;

    /** A vsock guest CID: 0 to 2 are taken (hypervisor, local, host), 2^32-1 means any. */
    public static long vsockGuestCid(long cid, String name) {
        if (cid < VirtioVsock.MIN_GUEST_CID || cid > VirtioVsock.MAX_GUEST_CID) {
            throw new ConfigException(name, Long.toUnsignedString(cid) + " is not a guest CID: use " + VirtioVsock.MIN_GUEST_CID + " to "
                    + VirtioVsock.MAX_GUEST_CID + " (0 to 2 are the hypervisor's, the local and the host's, 4294967295 means any)");
        }
        return cid;
    }

    /**
     * A vsock device's Unix socket path: short enough that {@code <path>_<port>} fits a socket
     * address ({@link #MAX_VSOCK_PATH} bytes), in a directory that exists.
     */
    public static Path vsockSocketPath(String path, String name) {
        Path p = path(path, name);
        int bytes = path.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > MAX_VSOCK_PATH) {
            throw new ConfigException(name, p + " is " + bytes + " bytes long; a vsock socket path may have " + MAX_VSOCK_PATH
                    + " so that its port sockets (<path>_<port>) fit a Unix socket address: use a shorter one");
        }
        Path parent = p.toAbsolutePath().getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            throw new ConfigException(name, "the directory of " + p + " does not exist");
        }
        return p;
    }

    /** The most shared folders a VM has: each is a PCI device with its own FUSE server. */
    public static final int MAX_SHARES = 8;

    /** A shared folder's tag, which the guest mounts: 1 to 36 bytes of UTF-8 without NUL. */
    public static String shareTag(String tag, String name) {
        String problem = VirtioFs.tagProblem(tag);
        if (problem != null) {
            throw new ConfigException(name, problem);
        }
        return tag;
    }

    /** A shared folder's host directory: an existing directory the VMM can read, and write unless the share is read-only. */
    public static Path shareDirectory(String path, boolean readOnly, String name) {
        return shareDirectory(path(path, name), readOnly, name);
    }

    public static Path shareDirectory(Path directory, boolean readOnly, String name) {
        if (!Files.exists(directory)) {
            throw new ConfigException(name, directory + " does not exist; give the path of a directory to share");
        }
        if (!Files.isDirectory(directory)) {
            throw new ConfigException(name, directory + " is not a directory; a shared folder is a directory");
        }
        if (!Files.isReadable(directory) || !Files.isExecutable(directory)) {
            throw new ConfigException(name, "cannot read " + directory + " (check its permissions)");
        }
        if (!readOnly && !Files.isWritable(directory)) {
            throw new ConfigException(name, "cannot write " + directory + "; make it writable or share it read-only");
        }
        return directory;
    }

    /** The shared folders of one VM together: at most {@link #MAX_SHARES}, each tag once. A clash is reported at the later share. */
    public static void shares(List<ShareConfig> shares, IntFunction<String> nameOf) {
        Set<String> tags = new HashSet<>();
        for (int i = 0; i < shares.size(); i++) {
            if (i == MAX_SHARES) {
                throw new ConfigException(nameOf.apply(i), "a VM has at most " + MAX_SHARES + " shared folders; share a common parent directory instead");
            }
            if (!tags.add(shares.get(i).tag())) {
                throw new ConfigException(nameOf.apply(i), "another shared folder has the tag '" + shares.get(i).tag()
                        + "' already; tags must be unique");
            }
        }
    }

    /**
     * How a caller's user knows the values of a whole {@link MachineConfig}, for {@link #machine}'s
     * messages: a drive's and a network interface's own values are named after their ids.
     */
    public record Wording(String cpus, String memory, String commandLine, String driveId, String networkInterfaceId, String devices,
            String cpuAffinity, String hugePages) {
        public Wording(String cpus, String memory, String commandLine, String driveId, String networkInterfaceId, String devices) {
            this(cpus, memory, commandLine, driveId, networkInterfaceId, devices, "CPU affinity", "huge pages");
        }
    }

    /**
     * Every rule for a whole machine, in the order a user would fix them: the machine, then each
     * drive, then each interface. The host's resources are checked too, as the VM is about to be
     * built: the pinned CPUs online, the huge pages free.
     */
    public static void machine(MachineConfig c, Wording names) {
        vcpuCount(c.cpus(), names.cpus());
        memoryMib(c.memoryMib(), names.memory());
        cpuPinning(c.pinning(), c.cpus(), names.cpuAffinity());
        cpusOnline(c.pinning(), names.cpuAffinity());
        memoryOnHugePages(c.memoryMib(), c.hugePages(), names.hugePages());
        hugePagesAvailable(c.memoryMib(), c.hugePages(), names.hugePages());
        commandLine(c.commandLine(), names.commandLine());
        List<DriveConfig> drives = c.drives();
        for (DriveConfig d : drives) {
            id(d.id(), names.driveId());
            diskImage(d.image(), d.format(), d.readOnly(), "drive " + d.id());
        }
        drives(drives, i -> "drive " + drives.get(i).id());
        List<NicConfig> nics = c.nics();
        for (NicConfig n : nics) {
            id(n.id(), names.networkInterfaceId());
            if (n.tapName() != null) {
                hostDeviceName(n.tapName(), "network interface " + n.id() + " host device");
            }
            if (n.guestMac() != null) {
                macAddress(n.guestMac(), "network interface " + n.id() + " guest MAC");
            }
        }
        networkInterfaces(nics, i -> "network interface " + nics.get(i).id());
        if (c.vsock() != null) {
            vsockGuestCid(c.vsock().guestCid(), "vsock guest CID");
            vsockSocketPath(c.vsock().udsPath().toString(), "vsock socket path");
        }
        List<ShareConfig> shares = c.shares();
        for (ShareConfig s : shares) {
            shareTag(s.tag(), "shared folder " + s.directory() + " tag");
            shareDirectory(s.directory(), s.readOnly(), "shared folder " + s.tag());
        }
        shares(shares, i -> "shared folder " + shares.get(i).tag());
        if (c.balloon() != null) {
            balloon(c.balloon(), c.memoryMib(), c.hugePages(), "balloon");
        }
        pciDevices(c.cpus(), (int) drives.stream().filter(d -> !d.mmio()).count(), nics.size(), c.vsock() != null, shares.size(),
                c.entropy() != null, c.balloon() != null, names.devices());
    }

    private static String count(long n, String thing) {
        return n + " " + thing + (n == 1 ? "" : "s");
    }

    private static Path path(String path, String name) {
        if (path.isEmpty()) {
            throw new ConfigException(name, "the path is empty");
        }
        try {
            return Path.of(path);
        } catch (InvalidPathException e) {
            throw new ConfigException(name, "'" + path + "' is not a usable path: " + e.getReason());
        }
    }

    private static Path realPath(Path p) {
        try {
            return p.toRealPath();
        } catch (IOException e) {
            return p.toAbsolutePath().normalize(); // a vanished image fails when the VM opens it
        }
    }

    /** The host's RAM in bytes, from /proc/meminfo; 0 when unknown. */
    private static long hostMemoryBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    return Long.parseLong(line.replaceAll("\\D+", "")) << 10;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // unknown: no limit but the absolute one
        }
        return 0;
    }
}
