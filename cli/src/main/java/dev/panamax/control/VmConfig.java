package dev.panamax.control;

import dev.panamax.api.Balloon;
import dev.panamax.api.Configuration;
import dev.panamax.api.CpuAffinity;
import dev.panamax.api.DiskFormat;
import dev.panamax.api.Drive;
import dev.panamax.api.HugePages;
import dev.panamax.api.NetworkInterface;
import dev.panamax.api.RateLimiter;
import dev.panamax.api.RestoreOptions;
import dev.panamax.api.SharedFolder;
import dev.panamax.api.TokenBucket;
import dev.panamax.api.Transport;
import dev.panamax.api.VirtualMachine;
import dev.panamax.api.VirtualMachineException;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HugePageSize;
import dev.panamax.virtio.fs.CacheMode;
import dev.panamax.virtio.ratelimit.BucketSpec;
import dev.panamax.virtio.ratelimit.RateLimit;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.CpuPinning;
import dev.panamax.vmm.DriveConfig;
import dev.panamax.vmm.NicConfig;
import dev.panamax.vmm.ShareConfig;
import dev.panamax.vmm.VmRules;
import dev.panamax.vmm.VmSnapshot;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.IntFunction;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A VM's pre-boot resources in Firecracker's JSON schema: the one parser and validator for both
 * {@code panamax run --config FILE} and the REST API's {@code PUT} requests, so that a config file
 * and a sequence of API calls describe the same VM. Every error names the JSON path of the value.
 *
 * <p>File layout (as Firecracker's {@code --config-file} and {@code GET /vm/config}):
 * <pre>{@code
 * {"boot-source": {"kernel_image_path": "vmlinux", "initrd_path": "initrd", "boot_args": "quiet"},
 *  "machine-config": {"vcpu_count": 2, "mem_size_mib": 256},
 *  "drives": [{"drive_id": "rootfs", "path_on_host": "rootfs.ext4", "is_root_device": true, "is_read_only": false}],
 *  "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"}]}
 * }</pre>
 * A drive's {@code rate_limiter} and an interface's {@code rx_rate_limiter} and {@code tx_rate_limiter}
 * are Firecracker's {@code RateLimiter}: {@code {"bandwidth": {"size": 10485760, "refill_time": 1000},
 * "ops": {"size": 500, "one_time_burst": 1000, "refill_time": 1000}}}.
 * Panamax's own keys: a drive's {@code transport} ({@code "pci"} or {@code "mmio"}) and {@code format}
 * ({@code "raw"}, {@code "qcow2"}, {@code "vhd"}, {@code "vmdk"}, {@code "vdi"} or {@code "vhdx"}; detected when left out, and an image
 * in a format Panamax cannot read, such as QED, refused; {@code "raw"} reads any file as the disk's bytes), and a network
 * interface's {@code backend} ({@code "tap"} or {@code "user"}, passt's user-mode network) with, in
 * place of {@code host_dev_name}, {@code tap_fd} (a tap descriptor the process inherited) or {@code
 * passt_socket} (a passt already running).
 * Panamax's own top-level key {@code shared-folders} lists host directories the guest mounts with
 * virtio-fs: {@code [{"path": "/srv/data", "tag": "data", "read_only": true, "cache": "auto"}]}, with
 * {@code cache} one of {@code "auto"} (the default), {@code "none"} and {@code "always"}.
 * Firecracker's top-level {@code logger} ({@link LoggerConfig}) sets the VMM's log, as {@code PUT /logger} does.
 * Keys that Firecracker knows but Panamax does not implement are accepted only with the value
 * that asks for nothing (null, false, "None"...), so that Firecracker's clients work unchanged.
 *
 * @param bootSource the kernel, initrd and boot arguments
 * @param machineConfig vCPUs and memory
 * @param drives block devices, in order
 * @param networkInterfaces network devices, in order
 * @param vsock the vsock device, or null
 * @param sharedFolders host directories for the guest (virtio-fs), in order
 * @param entropy the entropy device (virtio-rng), or null
 * @param balloon the memory balloon, or null
 * @param metricsPath the config file's {@code metrics.metrics_path}: the file or named pipe Firecracker's
 *     metrics lines go to, or null for none (as in Firecracker, not part of the VM: neither {@link #toJson()}
 *     nor a snapshot keeps it)
 */
public record VmConfig(BootSource bootSource, MachineConfig machineConfig, List<Drive> drives, List<NetworkInterface> networkInterfaces,
        Vsock vsock, List<SharedFolder> sharedFolders, Entropy entropy, Balloon balloon,
        Path metricsPath) {

    /** The largest config file read. */
    public static final int MAX_FILE_BYTES = 1 << 20;

    /** How the config file and the REST API name a VM's devices together, in messages about them all. */
    public static final String DEVICES = "drives and network-interfaces";

    public VmConfig {
        Objects.requireNonNull(bootSource, "bootSource");
        Objects.requireNonNull(machineConfig, "machineConfig");
        drives = List.copyOf(drives);
        networkInterfaces = List.copyOf(networkInterfaces);
        sharedFolders = List.copyOf(sharedFolders);
    }

    /** A VM without an entropy device or a balloon, whose metrics go nowhere. */
    public VmConfig(BootSource bootSource, MachineConfig machineConfig, List<Drive> drives, List<NetworkInterface> networkInterfaces,
            Vsock vsock, List<SharedFolder> sharedFolders) {
        this(bootSource, machineConfig, drives, networkInterfaces, vsock, sharedFolders, null, null, null);
    }

    /** A VM without shared folders. */
    public VmConfig(BootSource bootSource, MachineConfig machineConfig, List<Drive> drives, List<NetworkInterface> networkInterfaces,
            Vsock vsock) {
        this(bootSource, machineConfig, drives, networkInterfaces, vsock, List.of());
    }

    /** A VM without a vsock device or shared folders. */
    public VmConfig(BootSource bootSource, MachineConfig machineConfig, List<Drive> drives, List<NetworkInterface> networkInterfaces) {
        this(bootSource, machineConfig, drives, networkInterfaces, null);
    }

    /**
     * {@code vsock}: Firecracker's {@code VsockDeviceConfig} (its {@code vsock_id} is accepted and
     * not kept: a VM has one vsock device).
     */
    public record Vsock(long guestCid, Path udsPath) {
        public Vsock {
            Objects.requireNonNull(udsPath, "udsPath");
        }
    }

    /**
     * {@code entropy}: Firecracker's {@code EntropyDeviceConfig}, a virtio-rng device.
     *
     * @param rateLimiter its {@code rate_limiter}, or null for none
     */
    public record Entropy(RateLimiter rateLimiter) {}

    /**
     * {@code boot-source}.
     *
     * @param initrd null for none
     * @param bootArgs appended to {@link VirtualMachine#BASE_COMMAND_LINE}; null for nothing
     */
    public record BootSource(Path kernel, Path initrd, String bootArgs) {
        public BootSource {
            Objects.requireNonNull(kernel, "kernel");
        }
    }

    /**
     * {@code machine-config}.
     *
     * @param cpuAffinity Panamax's {@code cpu_affinity}: the host CPUs of the vCPU and I/O threads
     * @param hugePages Firecracker's {@code huge_pages}
     * @param seccomp Panamax's {@code seccomp}: whether the vCPU and device I/O threads have seccomp filters (default true)
     */
    public record MachineConfig(int vcpuCount, long memSizeMib, boolean trackDirtyPages, CpuAffinity cpuAffinity, HugePages hugePages,
            boolean seccomp) {
        public static final MachineConfig DEFAULT = new MachineConfig(VirtualMachine.DEFAULT_CPUS, VirtualMachine.DEFAULT_MEMORY_MIB, false);

        public MachineConfig {
            Objects.requireNonNull(cpuAffinity, "cpuAffinity");
            Objects.requireNonNull(hugePages, "hugePages");
        }

        /** Seccomp filters on. */
        public MachineConfig(int vcpuCount, long memSizeMib, boolean trackDirtyPages, CpuAffinity cpuAffinity, HugePages hugePages) {
            this(vcpuCount, memSizeMib, trackDirtyPages, cpuAffinity, hugePages, true);
        }

        /** Nothing pinned, ordinary pages. */
        public MachineConfig(int vcpuCount, long memSizeMib, boolean trackDirtyPages) {
            this(vcpuCount, memSizeMib, trackDirtyPages, CpuAffinity.NONE, HugePages.NONE);
        }
    }

    /** Parts of Firecracker's configuration that Panamax does not have. */
    private static final List<String> FIRECRACKER_ONLY = List.of("cpu-config", "memory-hotplug",
            "mmds-config", "pmem", "serial");
    private static final Set<String> TOP_KEYS = Stream.concat(
            Stream.of("boot-source", "machine-config", "drives", "network-interfaces", "vsock", "shared-folders", "metrics", "logger",
                    "entropy", "balloon"),
            FIRECRACKER_ONLY.stream())
            .collect(Collectors.toSet());

    /**
     * The configuration of the VM a snapshot restores, with the restore's network overrides, as
     * {@code GET /vm/config} shows it: read from the snapshot's state file, and checked as the restore
     * checks it.
     *
     * @throws dev.panamax.api.VirtualMachineException when the state file is malformed
     * @throws IOException when it cannot be read
     */
    public static VmConfig ofSnapshot(RestoreOptions restore) throws IOException {
        return of(VirtualMachine.snapshotConfiguration(restore), restore.trackDirtyPages());
    }

    /** A VM's configuration (one restored or received by a migration) as {@code GET /vm/config} shows it. */
    public static VmConfig of(Configuration c, boolean trackDirtyPages) {
        RateLimiter entropy = c.entropy();
        return new VmConfig(new BootSource(c.kernel(), c.initrd(), c.commandLine().isEmpty() ? null : c.commandLine()),
                new MachineConfig(c.cpus(), c.memoryMib(), trackDirtyPages), c.drives(), c.networkInterfaces(),
                c.vsockUdsPath() == null ? null : new Vsock(c.vsockGuestCid(), c.vsockUdsPath()), List.of(),
                entropy == null ? null : new Entropy(entropy.bandwidth() == null && entropy.ops() == null ? null : entropy),
                c.balloon(), null);
    }

    /**
     * A whole config file: the VM, and the VMM's log when the file has Firecracker's {@code logger}.
     *
     * @param logger null when the file has none
     */
    public record ConfigFile(VmConfig vm, LoggerConfig logger) {
        public ConfigFile {
            Objects.requireNonNull(vm, "vm");
        }
    }

    /** Reads a config file's VM; its {@code logger} is checked but only {@link #readFile} gives it. */
    public static VmConfig read(Path file) {
        return readFile(file).vm();
    }

    /** Reads a config file. */
    public static ConfigFile readFile(Path file) {
        String name = file.toString();
        byte[] bytes;
        try {
            if (Files.size(file) > MAX_FILE_BYTES) {
                throw new ConfigException(name, "the config file is larger than " + (MAX_FILE_BYTES >> 10) + " KiB");
            }
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new ConfigException(name, "cannot read the config file: " + (Files.exists(file) ? e.getMessage() : "it does not exist"));
        }
        return parseFile(utf8(bytes, name), name);
    }

    /** Parses a whole config document's VM; {@code source} names it in messages about malformed JSON. */
    public static VmConfig parse(String json, String source) {
        return parseFile(json, source).vm();
    }

    /** Parses a whole config document; {@code source} names it in messages about malformed JSON. */
    public static ConfigFile parseFile(String json, String source) {
        JsonObject top = JsonObject.of(Json.parse(json, source), "");
        top.allowOnly(TOP_KEYS);
        for (String absent : FIRECRACKER_ONLY) {
            top.onlyInert(absent, null, "Panamax has no " + absent + " (a part of Firecracker it lacks)");
        }
        if (!top.has("boot-source")) {
            throw new ConfigException("boot-source", "is required: a VM needs a kernel (kernel_image_path)");
        }
        BootSource boot = bootSource(top.get("boot-source"), "boot-source");
        MachineConfig machine = top.has("machine-config") ? machineConfig(top.get("machine-config"), "machine-config") : MachineConfig.DEFAULT;
        List<Drive> drives = new ArrayList<>();
        List<Object> driveJson = top.optionalArray("drives");
        for (int i = 0; i < driveJson.size(); i++) {
            drives.add(drive(driveJson.get(i), "drives[" + i + "]"));
        }
        checkDrives(drives, i -> "drives[" + i + "]");
        List<NetworkInterface> interfaces = new ArrayList<>();
        List<Object> interfaceJson = top.optionalArray("network-interfaces");
        for (int i = 0; i < interfaceJson.size(); i++) {
            interfaces.add(networkInterface(interfaceJson.get(i), "network-interfaces[" + i + "]"));
        }
        checkNetworkInterfaces(interfaces, i -> "network-interfaces[" + i + "]");
        Vsock vsock = top.has("vsock") && top.get("vsock") != null ? vsock(top.get("vsock"), "vsock") : null;
        List<SharedFolder> shares = top.has("shared-folders") ? sharedFolders(top.get("shared-folders"), "shared-folders") : List.of();
        Entropy entropy = top.has("entropy") && top.get("entropy") != null ? entropy(top.get("entropy"), "entropy") : null;
        Path metricsPath = top.has("metrics") && top.get("metrics") != null ? metrics(top.get("metrics"), "metrics") : null;
                Balloon balloon = top.has("balloon") && top.get("balloon") != null ? balloon(top.get("balloon"), "balloon") : null;
        VmConfig config = new VmConfig(boot, machine, drives, interfaces, vsock, shares, entropy, balloon, metricsPath);
        config.checkBalloon();
        config.checkPciDevices(DEVICES);
        return new ConfigFile(config, top.has("logger") ? LoggerConfig.parse(top.get("logger"), "logger") : null);
    }

    /** Firecracker's {@code Metrics} at {@code path}: {@code {"metrics_path": PATH}}, a file or named pipe. */
    public static Path metrics(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("metrics_path"));
        String value = o.string("metrics_path");
        if (value.isEmpty()) {
            throw new ConfigException(o.path("metrics_path"), "is empty; give the path of a file or a named pipe");
        }
        try {
            return Path.of(value);
        } catch (InvalidPathException e) {
            throw new ConfigException(o.path("metrics_path"), Json.quote(value) + " is not a file path: " + e.getReason());
        }
    }

    /**
     * Firecracker's {@code Balloon} object at {@code path}: {@code amount_mib} and {@code
     * deflate_on_oom} required, {@code stats_polling_interval_s} optional (default 0, no
     * statistics). Its size against guest memory is {@link #checkBalloon}'s, once both are known.
     */
    public static Balloon balloon(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("amount_mib", "deflate_on_oom", "stats_polling_interval_s"));
        long amount = o.integer("amount_mib");
        if (amount < 0) {
            throw new ConfigException(o.path("amount_mib"), amount + " is not a balloon size: use 0 MiB or more");
        }
        boolean deflateOnOom = o.bool("deflate_on_oom");
        int interval = o.has("stats_polling_interval_s")
                ? VmRules.balloonStatsInterval(o.integer("stats_polling_interval_s"), o.path("stats_polling_interval_s")) : 0;
        return new Balloon(amount, deflateOnOom, interval);
    }

    /** Firecracker's {@code BalloonUpdate} at {@code path} ({@code PATCH /balloon}): the new {@code amount_mib}. */
    public static long balloonUpdate(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("amount_mib"));
        long amount = o.integer("amount_mib");
        if (amount < 0) {
            throw new ConfigException(o.path("amount_mib"), amount + " is not a balloon size: use 0 MiB or more");
        }
        return amount;
    }

    /** Firecracker's {@code BalloonStatsUpdate} at {@code path} ({@code PATCH /balloon/statistics}): the new interval. */
    public static int balloonStatsUpdate(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("stats_polling_interval_s"));
        return VmRules.balloonStatsInterval(o.integer("stats_polling_interval_s"), o.path("stats_polling_interval_s"));
    }

    /** The balloon's rules against the machine: no larger than guest memory, not on huge pages. */
    public void checkBalloon() {
        if (balloon != null) {
            VmRules.balloonAmount(balloon.amountMib(), machineConfig.memSizeMib(), "balloon.amount_mib");
            if (machineConfig.hugePages() != HugePages.NONE) {
                throw new ConfigException("balloon", "a balloon cannot give back 4 KiB pages of memory on " + machineConfig.hugePages().label()
                        + " huge pages (machine-config.huge_pages); leave the balloon out, or use ordinary pages");
            }
        }
    }

    /** {@link VmRules#pciDevices}: whether this VM's devices on PCI fit its bus and its interrupt vectors. */
    public void checkPciDevices(String name) {
        VmRules.pciDevices(machineConfig.vcpuCount(), (int) drives.stream().filter(d -> d.transport() == Transport.PCI).count(),
                networkInterfaces.size(), vsock != null, sharedFolders.size(), entropy != null, balloon != null,
                name);
    }

    /** {@link VmRules#shares} for the Java API's shared folders: at most {@link VmRules#MAX_SHARES}, each tag once. */
    public static void checkSharedFolders(List<SharedFolder> shares, IntFunction<String> nameOf) {
        VmRules.shares(shares.stream().map(s -> new ShareConfig(s.path(), s.tag(), s.readOnly(), CacheMode.valueOf(s.cache().name())))
                .toList(), nameOf);
    }

    /**
     * Panamax's {@code shared-folders} at {@code path}: an array (null for none) of objects with
     * {@code path} (an existing directory), {@code tag} (1 to 36 bytes, unique) and an optional
     * {@code read_only} (default false) and {@code cache} ({@code "auto"}, the default, {@code "none"}
     * or {@code "always"}).
     */
    public static List<SharedFolder> sharedFolders(Object json, String path) {
        if (json == null) {
            return List.of();
        }
        if (!(json instanceof List<?> list)) {
            throw new ConfigException(path, "expected an array of shared folders, not " + Json.describe(json));
        }
        List<SharedFolder> shares = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            shares.add(sharedFolder(list.get(i), path + "[" + i + "]"));
        }
        checkSharedFolders(shares, i -> path + "[" + i + "]");
        return List.copyOf(shares);
    }

    /** One {@code shared-folders} entry at {@code path}. */
    public static SharedFolder sharedFolder(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("path", "tag", "read_only", "cache"));
        String tag = VmRules.shareTag(o.string("tag"), o.path("tag"));
        boolean readOnly = o.optionalBool("read_only", false);
        String cacheName = o.optionalString("cache");
        SharedFolder.Cache cache;
        try {
            cache = cacheName == null ? SharedFolder.Cache.AUTO : SharedFolder.Cache.of(cacheName);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(o.path("cache"), e.getMessage());
        }
        return new SharedFolder(VmRules.shareDirectory(o.string("path"), readOnly, o.path("path")), tag, readOnly, cache);
    }

    /** {@link VmRules#drives} for the Java API's drives: the rules the drives of one VM follow together. */
    public static void checkDrives(List<Drive> drives, IntFunction<String> nameOf) {
        VmRules.drives(drives.stream().map(d -> new DriveConfig(d.id(), d.path(), d.readOnly(), d.root(), d.transport() == Transport.MMIO))
                .toList(), nameOf);
    }

    /** {@link VmRules#networkInterfaces} for the Java API's network interfaces. */
    public static void checkNetworkInterfaces(List<NetworkInterface> interfaces, IntFunction<String> nameOf) {
        VmRules.networkInterfaces(interfaces.stream()
                .map(n -> new NicConfig(n.id(), n.hostDevice(), n.tapDescriptor(), n.passtSocket(), n.guestMac())).toList(), nameOf);
    }

    /** {@code bytes} as UTF-8, refusing malformed input rather than replacing it. */
    public static String utf8(byte[] bytes, String source) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new ConfigException(source, "is not UTF-8 text");
        }
    }

    /** Firecracker's {@code BootSource} object at {@code path}. */
    public static BootSource bootSource(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("kernel_image_path", "initrd_path", "boot_args"));
        Path kernel = VmRules.bootFile(o.string("kernel_image_path"), o.path("kernel_image_path"));
        String initrd = o.optionalString("initrd_path");
        String bootArgs = o.optionalString("boot_args");
        return new BootSource(kernel, initrd == null ? null : VmRules.bootFile(initrd, o.path("initrd_path")),
                bootArgs == null ? null : VmRules.commandLine(bootArgs, o.path("boot_args")));
    }

    /**
     * Firecracker's {@code MachineConfiguration} object at {@code path}, with Panamax's {@code
     * cpu_affinity}: {@code {"vcpus": {"0": "2", "1": "3-4"}, "io_threads": "0-1"}}, host CPU lists
     * in Linux's format by vCPU index, each part optional.
     */
    public static MachineConfig machineConfig(Object json, String path) {
        JsonObject o = JsonObject.of(json, path)
                .allowOnly(Set.of("vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "cpu_template", "huge_pages", "cpu_affinity",
                        "seccomp"));
        o.onlyInert("smt", false, "Panamax gives each vCPU a core of its own, without SMT");
        o.onlyInert("cpu_template", "None", "Panamax has no CPU templates");
        int vcpus = VmRules.vcpuCount(o.integer("vcpu_count"), o.path("vcpu_count"));
        long memoryMib = VmRules.memoryMib(o.integer("mem_size_mib"), o.path("mem_size_mib"));
        HugePages hugePages = HugePages.NONE;
        if (o.has("huge_pages")) {
            HugePageSize size = VmRules.hugePages(o.string("huge_pages"), o.path("huge_pages"));
            VmRules.memoryOnHugePages(memoryMib, size, o.path("mem_size_mib"));
            hugePages = size == null ? HugePages.NONE : size == HugePageSize.SIZE_2M ? HugePages.SIZE_2M : HugePages.SIZE_1G;
        }
        CpuAffinity affinity = o.has("cpu_affinity") ? cpuAffinity(o.get("cpu_affinity"), o.path("cpu_affinity"), vcpus) : CpuAffinity.NONE;
        return new MachineConfig(vcpus, memoryMib, o.optionalBool("track_dirty_pages", false), affinity, hugePages,
                o.optionalBool("seccomp", true));
    }

    /** Panamax's {@code cpu_affinity} object at {@code path}, for a VM of {@code vcpuCount} vCPUs. */
    static CpuAffinity cpuAffinity(Object json, String path, int vcpuCount) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("vcpus", "io_threads"));
        Map<Integer, CpuSet> vcpus = new LinkedHashMap<>();
        if (o.has("vcpus")) {
            JsonObject byIndex = JsonObject.of(o.get("vcpus"), o.path("vcpus"));
            for (String key : byIndex.keys()) {
                if (!key.matches("\\d{1,4}")) {
                    throw new ConfigException(byIndex.path(key), "'" + key + "' is not a vCPU index: the keys are vCPU numbers, 0 to "
                            + (vcpuCount - 1));
                }
                vcpus.put(Integer.parseInt(key), VmRules.cpuList(byIndex.string(key), byIndex.path(key)));
            }
        }
        CpuSet io = o.has("io_threads") ? VmRules.cpuList(o.string("io_threads"), o.path("io_threads")) : null;
        CpuPinning pinning = VmRules.cpuPinning(new CpuPinning(vcpus, io), vcpuCount, path);
        return toApi(pinning);
    }

    /** The pinning as the Java API holds it. */
    public static CpuAffinity toApi(CpuPinning pinning) {
        Map<Integer, Set<Integer>> vcpus = new LinkedHashMap<>();
        pinning.vcpus().forEach((vcpu, cpus) -> vcpus.put(vcpu, cpus.stream().boxed().collect(Collectors.toSet())));
        return new CpuAffinity(vcpus, pinning.ioThreads() == null ? Set.of() : pinning.ioThreads().stream().boxed().collect(Collectors.toSet()));
    }

    /** {@code cpu_affinity} as the config file and {@code GET /machine-config} write it. */
    static Map<String, Object> toJson(CpuAffinity affinity) {
        Map<String, Object> json = new LinkedHashMap<>();
        if (!affinity.vcpus().isEmpty()) {
            Map<String, Object> vcpus = new LinkedHashMap<>();
            new TreeMap<>(affinity.vcpus()).forEach((vcpu, cpus) -> vcpus.put(String.valueOf(vcpu), cpuList(cpus)));
            json.put("vcpus", vcpus);
        }
        if (!affinity.ioThreads().isEmpty()) {
            json.put("io_threads", cpuList(affinity.ioThreads()));
        }
        return json;
    }

    /** Host CPU numbers as a Linux CPU list ({@code 0-3,8}). */
    public static String cpuList(Set<Integer> cpus) {
        return CpuSet.of(cpus.stream().mapToInt(Integer::intValue).toArray()).toString();
    }

    /** Firecracker's {@code EntropyDeviceConfig} object at {@code path}: an optional {@code rate_limiter}. */
    public static Entropy entropy(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("rate_limiter"));
        return new Entropy(rateLimiter(o.get("rate_limiter"), o.path("rate_limiter")));
    }

    /** Firecracker's {@code VsockDeviceConfig} object at {@code path}: {@code guest_cid}, {@code uds_path}, an optional {@code vsock_id}. */
    public static Vsock vsock(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("guest_cid", "uds_path", "vsock_id"));
        if (o.has("vsock_id")) {
            o.string("vsock_id"); // Firecracker's, deprecated there: a string if present, else unused
        }
        long cid = VmRules.vsockGuestCid(o.integer("guest_cid"), o.path("guest_cid"));
        return new Vsock(cid, VmRules.vsockSocketPath(o.string("uds_path"), o.path("uds_path")));
    }

    /** Firecracker's {@code Drive} object at {@code path}. */
    public static Drive drive(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("drive_id", "path_on_host", "is_root_device", "is_read_only",
                "transport", "format", "partuuid", "cache_type", "io_engine", "rate_limiter", "socket"));
        o.onlyInert("partuuid", null, "Panamax makes the root drive /dev/vda and needs no partition UUID");
        o.onlyInert("cache_type", "Unsafe", "Panamax has one cache type");
        o.onlyInert("io_engine", "Sync", "Panamax has one I/O engine");
        o.onlyInert("socket", null, "Panamax has no vhost-user block devices");
        String id = VmRules.id(o.string("drive_id"), o.path("drive_id"));
        boolean root = o.bool("is_root_device");
        boolean readOnly = o.optionalBool("is_read_only", false);
        // Panamax's own key: Firecracker has only virtio-mmio, Panamax defaults to PCI.
        String transport = o.optionalString("transport");
        if (transport != null && !transport.equals("pci") && !transport.equals("mmio")) {
            throw new ConfigException(o.path("transport"), "'" + transport + "' is not a transport: use \"pci\" or \"mmio\"");
        }
        // Panamax's own key too: Firecracker's drives are raw files.
        String formatName = o.optionalString("format");
        ImageFormat format;
        try {
            format = formatName == null ? null : ImageFormat.parse(formatName);
        } catch (ImageRequestException e) {
            throw new ConfigException(o.path("format"), e.getMessage());
        }
        return new Drive(id, VmRules.diskImage(o.string("path_on_host"), format, readOnly, o.path("path_on_host")), readOnly, root,
                "mmio".equals(transport) ? Transport.MMIO : Transport.PCI, rateLimiter(o.get("rate_limiter"), o.path("rate_limiter")),
                diskFormat(format));
    }

    /** The image format an API drive's format names (null, probed: null). */
    public static ImageFormat imageFormat(DiskFormat format) {
        return format == null ? null : ImageFormat.valueOf(format.name());
    }

    /** The API's name for an image format (null, probed: null). */
    public static DiskFormat diskFormat(ImageFormat format) {
        return format == null ? null : DiskFormat.valueOf(format.name());
    }

    /**
     * Firecracker's {@code NetworkInterface} object at {@code path}, with Panamax's own key
     * {@code backend}: {@code "tap"} (the default, on {@code host_dev_name} or an inherited {@code
     * tap_fd}) or {@code "user"} (passt's user-mode network: started for the interface, or the one
     * listening at {@code passt_socket}).
     */
    public static NetworkInterface networkInterface(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("iface_id", "host_dev_name", "tap_fd", "passt_socket", "guest_mac",
                "backend", "mtu", "rx_rate_limiter", "tx_rate_limiter"));
        o.onlyInert("mtu", null, "Panamax does not advertise an MTU to the guest");
        String id = VmRules.id(o.string("iface_id"), o.path("iface_id"));
        RateLimiter rx = rateLimiter(o.get("rx_rate_limiter"), o.path("rx_rate_limiter"));
        RateLimiter tx = rateLimiter(o.get("tx_rate_limiter"), o.path("tx_rate_limiter"));
        return hostEnd(o, id).withRateLimiters(rx, tx);
    }

    /** The interface's id, host end and MAC: all of Firecracker's {@code NetworkInterface} but its rate limiters. */
    private static NetworkInterface hostEnd(JsonObject o, String id) {
        String backend = o.optionalString("backend");
        if (backend != null && !backend.equals("tap") && !backend.equals("user")) {
            throw new ConfigException(o.path("backend"), "'" + backend + "' is not a network backend: use \"tap\" (with host_dev_name)"
                    + " or \"user\" (passt's user-mode network)");
        }
        String mac = o.optionalString("guest_mac");
        mac = mac == null ? null : VmRules.macAddress(mac, o.path("guest_mac"));
        if ("user".equals(backend)) {
            for (String key : List.of("host_dev_name", "tap_fd")) {
                if (o.has(key)) {
                    throw new ConfigException(o.path(key), "a user-mode interface (\"backend\": \"user\") has no tap;"
                            + " leave " + key + " out, or make the backend \"tap\"");
                }
            }
            String socket = o.optionalString("passt_socket");
            if (socket != null && socket.isEmpty()) {
                throw new ConfigException(o.path("passt_socket"), "is empty: give the path of passt's socket, or leave it out to start one");
            }
            return socket == null ? NetworkInterface.user(id, mac) : NetworkInterface.passt(id, Path.of(socket), mac);
        }
        if (o.has("passt_socket")) {
            throw new ConfigException(o.path("passt_socket"), "passt_socket belongs to a user-mode interface: add \"backend\": \"user\"");
        }
        if (o.has("tap_fd")) {
            if (o.has("host_dev_name")) {
                throw new ConfigException(o.path("tap_fd"), "give a tap by name (host_dev_name) or by descriptor (tap_fd), not both");
            }
            long fd = o.integer("tap_fd");
            if (fd < 0 || fd > Integer.MAX_VALUE) {
                throw new ConfigException(o.path("tap_fd"), fd + " is not a file descriptor number");
            }
            return NetworkInterface.tapDescriptor(id, (int) fd, mac);
        }
        return NetworkInterface.tap(id, VmRules.hostDeviceName(o.string("host_dev_name"), o.path("host_dev_name")), mac);
    }

    /**
     * Firecracker's {@code RateLimiter} object at {@code path}: an optional {@code bandwidth} and
     * {@code ops}, each a {@link #tokenBucket token bucket}; null (absent) for no limit.
     */
    public static RateLimiter rateLimiter(Object json, String path) {
        if (json == null) {
            return null;
        }
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("bandwidth", "ops"));
        return new RateLimiter(o.has("bandwidth") ? tokenBucket(o.get("bandwidth"), o.path("bandwidth")) : null,
                o.has("ops") ? tokenBucket(o.get("ops"), o.path("ops")) : null);
    }

    /**
     * Firecracker's {@code TokenBucket} object at {@code path}: {@code size} and {@code refill_time}
     * (milliseconds) required, {@code one_time_burst} optional (default 0), each an integer from 0 up.
     */
    public static TokenBucket tokenBucket(Object json, String path) {
        JsonObject o = JsonObject.of(json, path).allowOnly(Set.of("size", "one_time_burst", "refill_time"));
        long size = nonNegative(o, "size", Long.MAX_VALUE);
        long burst = o.has("one_time_burst") ? nonNegative(o, "one_time_burst", Long.MAX_VALUE) : 0;
        long refill = nonNegative(o, "refill_time", TokenBucket.MAX_REFILL_TIME_MILLIS);
        return new TokenBucket(size, burst, refill);
    }

    private static long nonNegative(JsonObject o, String key, long max) {
        long value = o.integer(key);
        if (value < 0 || value > max) {
            throw new ConfigException(o.path(key), value + " is not an integer from 0 to " + max);
        }
        return value;
    }

    /** This config with {@code drive} in place of the drive of its id. */
    public VmConfig withDrive(Drive drive) {
        return new VmConfig(bootSource, machineConfig, drives.stream().map(d -> d.id().equals(drive.id()) ? drive : d).toList(),
                networkInterfaces, vsock, sharedFolders, entropy, balloon, metricsPath);
    }

    /** This config with {@code nic} in place of the network interface of its id. */
    public VmConfig withNetworkInterface(NetworkInterface nic) {
        return new VmConfig(bootSource, machineConfig, drives,
                networkInterfaces.stream().map(n -> n.id().equals(nic.id()) ? nic : n).toList(), vsock, sharedFolders, entropy, balloon,
                metricsPath);
    }

    /** This config with the seccomp filters off ({@code --no-seccomp}). */
    public VmConfig withoutSeccomp() {
        MachineConfig m = machineConfig;
        return new VmConfig(bootSource, new MachineConfig(m.vcpuCount(), m.memSizeMib(), m.trackDirtyPages(), m.cpuAffinity(), m.hugePages(), false),
                drives, networkInterfaces, vsock, sharedFolders, entropy, balloon, metricsPath);
    }

    /** This config with {@code b} as its balloon (its target changed by a PATCH). */
    public VmConfig withBalloon(Balloon b) {
        return new VmConfig(bootSource, machineConfig, drives, networkInterfaces, vsock, sharedFolders, entropy, b, metricsPath);
    }

    /** This config as the JSON a config file holds (and {@code GET /vm/config} answers). */
    public Map<String, Object> toJson() {
        return toJson(bootSource, machineConfig, drives, networkInterfaces, vsock, sharedFolders, entropy, balloon);
    }

    /** The same for a VM still being configured, whose boot source, vsock and entropy device may be missing (null). */
    static Map<String, Object> toJson(BootSource boot, MachineConfig machine, List<Drive> drives, List<NetworkInterface> interfaces,
            Vsock vsock, List<SharedFolder> shares, Entropy entropy, Balloon balloon) {
        Map<String, Object> json = new LinkedHashMap<>();
        if (boot != null) {
            json.put("boot-source", toJson(boot));
        }
        json.put("machine-config", toJson(machine));
        json.put("drives", drives.stream().map(VmConfig::toJson).toList());
        json.put("network-interfaces", interfaces.stream().map(VmConfig::toJson).toList());
        if (vsock != null) {
            json.put("vsock", toJson(vsock));
        }
        if (!shares.isEmpty()) {
            json.put("shared-folders", shares.stream().map(VmConfig::toJson).toList());
        }
        if (entropy != null) {
            json.put("entropy", toJson(entropy));
        }
        if (balloon != null) {
            json.put("balloon", toJson(balloon));
        }
        return json;
    }

    static Map<String, Object> toJson(Entropy entropy) {
        Map<String, Object> json = new LinkedHashMap<>();
        if (entropy.rateLimiter() != null) {
            json.put("rate_limiter", toJson(entropy.rateLimiter()));
        }
        return json;
    }

    /** Firecracker's {@code Balloon}, as {@code GET /balloon} answers and a config file holds it. */
    static Map<String, Object> toJson(Balloon balloon) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("amount_mib", balloon.amountMib());
        json.put("deflate_on_oom", balloon.deflateOnOom());
        json.put("stats_polling_interval_s", balloon.statsPollingIntervalSeconds());
        return json;
    }

    static Map<String, Object> toJson(SharedFolder share) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("path", share.path().toString());
        json.put("tag", share.tag());
        json.put("read_only", share.readOnly());
        json.put("cache", share.cache().value());
        return json;
    }

    static Map<String, Object> toJson(Vsock vsock) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("guest_cid", vsock.guestCid());
        json.put("uds_path", vsock.udsPath().toString());
        return json;
    }

    static Map<String, Object> toJson(BootSource boot) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("kernel_image_path", boot.kernel().toString());
        if (boot.initrd() != null) json.put("initrd_path", boot.initrd().toString());
        if (boot.bootArgs() != null) json.put("boot_args", boot.bootArgs());
        return json;
    }

    static Map<String, Object> toJson(MachineConfig machine) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("vcpu_count", machine.vcpuCount());
        json.put("mem_size_mib", machine.memSizeMib());
        json.put("smt", false);
        json.put("track_dirty_pages", machine.trackDirtyPages());
        if (machine.hugePages() != HugePages.NONE) {
            json.put("huge_pages", machine.hugePages().label());
        }
        if (!machine.cpuAffinity().isNone()) {
            json.put("cpu_affinity", toJson(machine.cpuAffinity()));
        }
        if (!machine.seccomp()) {
            json.put("seccomp", false);
        }
        return json;
    }

    static Map<String, Object> toJson(Drive drive) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("drive_id", drive.id());
        json.put("path_on_host", drive.path().toString());
        json.put("is_root_device", drive.root());
        json.put("is_read_only", drive.readOnly());
        if (drive.transport() == Transport.MMIO) {
            json.put("transport", "mmio");
        }
        if (drive.format() != null) {
            json.put("format", drive.format().name().toLowerCase(Locale.ROOT));
        }
        if (drive.rateLimiter() != null) {
            json.put("rate_limiter", toJson(drive.rateLimiter()));
        }
        return json;
    }

    static Map<String, Object> toJson(RateLimiter limiter) {
        Map<String, Object> json = new LinkedHashMap<>();
        if (limiter.bandwidth() != null) json.put("bandwidth", toJson(limiter.bandwidth()));
        if (limiter.ops() != null) json.put("ops", toJson(limiter.ops()));
        return json;
    }

    static Map<String, Object> toJson(TokenBucket bucket) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("size", bucket.size());
        json.put("one_time_burst", bucket.oneTimeBurst());
        json.put("refill_time", bucket.refillTimeMillis());
        return json;
    }

    static Map<String, Object> toJson(NetworkInterface nic) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("iface_id", nic.id());
        if (nic.hostDevice() != null) {
            json.put("host_dev_name", nic.hostDevice());
        } else if (nic.tapDescriptor() >= 0) {
            json.put("tap_fd", nic.tapDescriptor());
        } else {
            json.put("backend", "user");
            if (nic.passtSocket() != null) json.put("passt_socket", nic.passtSocket().toString());
        }
        if (nic.guestMac() != null) json.put("guest_mac", nic.guestMac());
        if (nic.rxRateLimiter() != null) json.put("rx_rate_limiter", toJson(nic.rxRateLimiter()));
        if (nic.txRateLimiter() != null) json.put("tx_rate_limiter", toJson(nic.txRateLimiter()));
        return json;
    }

    /** A builder for this VM; the caller adds the console and the boot protocol. */
    public VirtualMachine.Builder toBuilder() {
        VirtualMachine.Builder b = VirtualMachine.builder()
                .kernel(bootSource.kernel()).initrd(bootSource.initrd())
                .commandLine(bootSource.bootArgs() == null ? "" : bootSource.bootArgs())
                .cpus(machineConfig.vcpuCount()).memoryMib(machineConfig.memSizeMib()).trackDirtyPages(machineConfig.trackDirtyPages())
                .cpuAffinity(machineConfig.cpuAffinity()).hugePages(machineConfig.hugePages()).seccomp(machineConfig.seccomp());
        drives.forEach(b::drive);
        networkInterfaces.forEach(b::networkInterface);
        if (vsock != null) {
            b.vsock(vsock.guestCid(), vsock.udsPath());
        }
        sharedFolders.forEach(b::share);
        if (entropy != null) {
            b.entropy(entropy.rateLimiter());
        }
        b.balloon(balloon);
        return b;
    }
}
