package dev.panamax.cli;

import dev.panamax.api.Balloon;
import dev.panamax.api.Drive;
import dev.panamax.api.HugePages;
import dev.panamax.api.NetworkInterface;
import dev.panamax.api.RateLimiter;
import dev.panamax.api.IncomingMigrationOptions;
import dev.panamax.api.MigrationListener;
import dev.panamax.api.RestoreOptions;
import dev.panamax.api.SharedFolder;
import dev.panamax.api.TokenBucket;
import dev.panamax.api.VirtualMachine;
import dev.panamax.api.VirtualMachineException;
import dev.panamax.cli.common.UserError;
import dev.panamax.control.ApiFault;
import dev.panamax.control.ApiServer;
import dev.panamax.control.ControlPlane;
import dev.panamax.control.LogOutput;
import dev.panamax.control.LoggerConfig;
import dev.panamax.control.VmConfig;
import dev.panamax.demo.KvmAcceleration;
import dev.panamax.guest.DebianPackages;
import dev.panamax.guest.GuestImages;
import dev.panamax.guest.MissingIngredientException;
import dev.panamax.guest.PanamaxCache;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RigException;
import dev.panamax.rig.RigSession;
import dev.panamax.rig.RunResult;
import dev.panamax.sys.HugePageSize;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.VmRules;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code panamax run}: boots a Linux guest with its serial console on the terminal. */
@Command(name = "run", mixinStandardHelpOptions = true, description = {
    "Boot a Linux guest with its serial console on the terminal.",
    "Without --kernel, boots the built-in tiny guest (built on first use, then cached).",
    "Where this host's KVM only emulates, runs the VM inside the nested KVM rig."})
final class RunCommand implements Callable<Integer> {

    @Option(names = "--kernel", paramLabel = "PATH", description = "vmlinux (PVH or 64-bit entry) or bzImage")
    Path kernel;

    @Option(names = "--initrd", paramLabel = "PATH", description = "initial ramdisk (default: the built-in one with the built-in kernel)")
    Path initrd;

    @Option(names = "--cmdline", paramLabel = "TEXT", defaultValue = "",
            description = "appended to \"" + VirtualMachine.BASE_COMMAND_LINE + "\"")
    String cmdline;

    @Option(names = "--cpus", paramLabel = CpuOption.SYNTAX, defaultValue = "" + VirtualMachine.DEFAULT_CPUS,
            description = "vCPUs (default: ${DEFAULT-VALUE}), optionally each pinned to host CPUs and the device I/O threads too,"
                    + " e.g. 2,affinity=0@[2],1@[3],io@[0-1]")
    String cpus;

    @Option(names = "--memory", paramLabel = MemorySize.SYNTAX, defaultValue = VirtualMachine.DEFAULT_MEMORY_MIB + "M",
            description = "guest RAM, e.g. 512M or 2G (default: ${DEFAULT-VALUE}); hugepages=2M or 1G maps it from the host's"
                    + " reserved huge pages (echo N > /proc/sys/vm/nr_hugepages)")
    String memory;

    @Option(names = "--config", paramLabel = "FILE",
            description = "the VM as JSON in Firecracker's schema (boot-source, machine-config, drives, network-interfaces),"
                    + " instead of --kernel, --initrd, --cmdline, --cpus and --memory")
    Path config;

    @Option(names = "--track-dirty-pages", description = "track the pages the guest writes, for diff snapshots (panamax snapshot --diff)")
    boolean trackDirtyPages;

    @Option(names = "--no-seccomp", description = "no seccomp filters on the vCPU and device I/O threads (they are on by default;"
            + " README, \"Seccomp\", lists what each thread may call)")
    boolean noSeccomp;

    @Option(names = "--restore", paramLabel = "DIR",
            description = "restore the VM a snapshot saved in DIR (panamax snapshot) instead of booting one; it runs on from where it stood")
    Path restoreDir;

    @Option(names = "--incoming", paramLabel = "tcp:HOST:PORT|unix:PATH",
            description = "wait there for a VM that panamax migrate sends, instead of booting one; it runs on from where it stood")
    String incoming;

    @Option(names = "--net-override", paramLabel = "ID=TAP",
            description = "with --restore or --incoming: network interface ID uses the host's tap TAP instead of the saved one; repeatable")
    List<String> netOverrides = new ArrayList<>();

    @Option(names = "--eager-memory", description = "with --restore: read all of guest memory before the guest runs, not page by page")
    boolean eagerMemory;

    @Option(names = "--api-sock", paramLabel = "PATH",
            description = "also serve the REST API on a new Unix socket at PATH (state, pause and resume, Ctrl-Alt-Del, metrics)")
    Path apiSocket;

    @Option(names = "--disk", paramLabel = DiskOption.SYNTAX,
            description = "a disk image (raw, qcow2, vhd, vmdk, vdi or vhdx, this one read-only) as a virtio-blk device; repeatable. The guest names disks /dev/vda,"
                    + " /dev/vdb, ... virtio-mmio ones first, the root one first; ID is its serial (default disk0, disk1, ...);"
                    + " the format is detected unless given (an image in a format Panamax cannot read, such as QED, is refused;"
                    + " format=raw gives the guest any file's bytes);"
                    + " bw=RATE (bytes a second, e.g. 10M) and iops=N limit its traffic. A comma in PATH is written twice (,,)")
    List<String> diskSpecs = new ArrayList<>();

    @Option(names = "--net", paramLabel = NetOption.SYNTAX,
            description = "a virtio-net device on the host's tap NAME (created if missing; needs CAP_NET_ADMIN), on a tap"
                    + " descriptor N this process inherited, or on a user-mode network that passt provides (no privileges: DHCP,"
                    + " DNS, outbound connections), started for it or already listening at socket PATH; repeatable;"
                    + " MAC as six hex pairs (default: random)")
    List<String> netSpecs = new ArrayList<>();

    @Option(names = "--vsock", paramLabel = "cid=N,uds=PATH",
            description = "a virtio-vsock device for guest CID N (3 to 4294967294), with Firecracker's host side: host programs"
                    + " connect to the Unix socket PATH and write CONNECT <port> to reach the guest's listener on that port;"
                    + " the guest's connections to host port P go to the Unix socket PATH_P. A comma in PATH is written twice (,,)")
    String vsockSpec;

    @Option(names = "--entropy", arity = "0..1", fallbackValue = "", paramLabel = "bw=RATE,ops=N",
            description = "a virtio-rng device: the guest's /dev/hwrng gives the host's random bytes (getrandom); bw=RATE"
                    + " (bytes a second, e.g. 1K) and ops=N (requests a second) limit it; --entropy alone: no limit")
    String entropySpec;

    @Option(names = "--share", paramLabel = "DIR[,tag=T][,readonly][,cache=MODE]",
            description = "share the host directory DIR with the guest over virtio-fs (repeatable); the guest mounts it with"
                    + " mount -t virtiofs T /mnt/T, which the built-in initramfs does by itself. T: 1-36 of A-Z a-z 0-9 . _ -;"
                    + " default: DIR's name if it is such a tag and still free, else shareN. MODE, what the guest caches:"
                    + " auto (default; names and attributes for 1 s, data until the file changes), none (nothing: the host's"
                    + " changes show at once, no MAP_SHARED mmap) or always (for a day: for a DIR only the guest changes)."
                    + " A comma in DIR is written twice (,,). A snapshot keeps what the guest holds of DIR by paths, not DIR's files")
    List<String> shareSpecs = new ArrayList<>();

    @Option(names = "--balloon", paramLabel = "MIB[,deflate-on-oom][,stats=SECONDS]",
            description = "a virtio-balloon device that starts by taking MIB MiB from the guest and giving them back to the host"
                    + " (Firecracker's balloon; its size changes through the API: PATCH /balloon); deflate-on-oom lets the guest"
                    + " take pages back rather than kill a process; stats=SECONDS asks the guest for its memory statistics that"
                    + " often (GET /balloon/statistics). Not with hugepages")
    String balloonSpec;

    @Mixin
    ConsoleOption console;

    @Option(names = "--boot-protocol", paramLabel = "P", defaultValue = "AUTO",
            description = "AUTO (PVH for a vmlinux with the note, else 64-bit), PVH or LINUX64")
    VirtualMachine.BootProtocol protocol;

    @Option(names = "--timeout", paramLabel = "SECONDS", description = "kill the guest after this long")
    Long timeoutSeconds;

    @Option(names = "--boot-time", description = "print the time from process start until the guest's /init reports user space")
    boolean bootTime;

    @Option(names = "--no-rig", description = "never move into the nested KVM rig, even where KVM only emulates")
    boolean noRig;

    @Option(names = "--uid", paramLabel = "UID",
            description = "once the VM's files, devices and sockets are open, and before the guest runs, become user UID (a number)"
                    + " for good: no capabilities, no supplementary groups, no_new_privs; with --gid. Only root may name another user")
    String uid;

    @Option(names = "--gid", paramLabel = "GID", description = "the group (a number) --uid gives the VM")
    String gid;

    @Spec
    CommandSpec spec;

    /** The config file's {@code logger}, or null. */
    private LoggerConfig fileLogger;

    /** What {@code --uid} and {@code --gid} ask for, or null: made once the VM's resources are open, before the guest runs. */
    private PrivilegeDrop privileges;

    /** The options that describe the VM itself, which a config file replaces. */
    private static final List<String> VM_OPTIONS = List.of("--kernel", "--initrd", "--cmdline", "--cpus", "--memory", "--disk",
            "--net", "--track-dirty-pages", "--vsock", "--share", "--entropy", "--balloon");

    @Override
    public Integer call() throws IOException {
        privileges = PrivilegeDrop.parse(uid, gid);
        if (restoreDir != null && incoming != null) {
            throw new UserError("--restore and --incoming do not go together: a VM comes from a snapshot or from a migration");
        }
        if (restoreDir != null) {
            return restore();
        }
        if (eagerMemory && incoming != null) {
            throw new UserError("--eager-memory goes with --restore: a migrated VM's memory arrives whole");
        }
        if (incoming != null) {
            return receive();
        }
        if (!netOverrides.isEmpty() || eagerMemory) {
            throw new UserError("--net-override and --eager-memory go with --restore");
        }
        VmConfig vm = vmConfig();
        if (movesIntoRig()) {
            for (NetworkInterface n : vm.networkInterfaces()) {
                if (NetOption.format(n).isEmpty()) {
                    throw new UserError("network interface " + n.id() + " is on this process's "
                            + (n.tapDescriptor() >= 0 ? "tap descriptor " + n.tapDescriptor() : "passt socket " + n.passtSocket())
                            + ", and on this host (whose KVM only emulates) the VM would run inside the nested KVM rig, which"
                            + " cannot reach it; use tap=NAME or user there, or a host with hardware KVM");
                }
            }
            if (vm.vsock() != null) {
                throw new UserError("--vsock: on this host (whose KVM only emulates) the VM would run inside the nested KVM rig,"
                        + " whose sockets host programs cannot reach; use --no-rig, or a host with hardware KVM");
            }
            for (SharedFolder s : vm.sharedFolders()) {
                if (s.path().toAbsolutePath().normalize().getNameCount() == 0) {
                    throw new UserError("shared folder " + s.tag() + ": the VM would run inside the nested KVM rig (this host's KVM"
                            + " only emulates), which never shares / itself; share a directory below it");
                }
            }
            sayWhyInRig();
            return runInRig(vm);
        }
        return runHere(vm);
    }

    /**
     * Whether the VM runs inside the rig: unless {@code --no-rig}, where this host's KVM only emulates.
     * {@code --api-sock} is refused there: the API would be inside the rig, out of reach.
     */
    private boolean movesIntoRig() {
        if (noRig) {
            return false;
        }
        if (KvmAcceleration.detect().hardware()) {
            return false;
        }
        if (apiSocket != null) {
            throw new UserError("--api-sock serves the API from the process that runs the VM, and on this host (whose KVM"
                    + " only emulates) that process would be inside the nested KVM rig, out of this host's reach; run"
                    + " panamax run --no-rig --api-sock ... and its API clients inside the rig (panamax rig -- COMMAND),"
                    + " or on a host with hardware KVM");
        }
        return true;
    }

    /** Says why the VM runs inside the rig, once the move is decided. */
    static void sayWhyInRig() {
        KvmAcceleration acceleration = KvmAcceleration.detect();
        // A host with no KVM at all runs the guest in the rig too: QEMU's software CPU needs none.
        System.err.println(acceleration.kind() == KvmAcceleration.Kind.UNAVAILABLE
                ? "panamax: " + acceleration.detail() + "; the VM runs inside the nested KVM rig instead"
                : "panamax: this host's KVM only emulates (" + Math.round(acceleration.nanosPerIteration())
                        + " ns per loop iteration), so the VM runs inside the nested KVM rig");
    }

    /** The VM the options or the config file describe, checked by the rules the REST API uses too. */
    private VmConfig vmConfig() {
        try {
            VmConfig vm = noSeccomp ? describedVm().withoutSeccomp() : describedVm();
            // The rig shares this host's /usr, not its dpkg database: install on the host, before any move into the rig
            // (which runs with --no-rig). Without the package, starting passt fails with the fix in its message.
            if (!noRig && vm.networkInterfaces().stream().anyMatch(NetworkInterface::startsPasst)) {
                DebianPackages.ensureInstalled("passt");
            }
            return vm;
        } catch (ConfigException | MissingIngredientException e) {
            throw new UserError(e.getMessage());
        }
    }

    /** The VM as the config file or the options describe it. */
    private VmConfig describedVm() {
        if (config != null) {
            for (String option : VM_OPTIONS) {
                if (spec.commandLine().getParseResult().hasMatchedOption(option)) {
                    throw new UserError("--config and " + option + " do not go together: the config file describes the whole VM");
                }
            }
            VmConfig.ConfigFile file = VmConfig.readFile(config);
            fileLogger = file.logger();
            return file.vm();
        }
        MemorySize.WithPages memorySpec = MemorySize.parseWithPages(memory, "--memory");
        long memoryBytes = memorySpec.bytes();
        if (memoryBytes % (1 << 20) != 0) {
            throw new UserError("--memory must be a whole number of MiB, not " + memory);
        }
        if (kernel == null && initrd != null) {
            throw new UserError("--initrd needs --kernel (the built-in kernel comes with its own initramfs)");
        }
        CpuOption.Parsed cpuSpec = CpuOption.parse(cpus);
        int vcpus = cpuSpec.count();
        long memoryMib = VmRules.memoryMib(memoryBytes >> 20, "--memory");
        VmRules.memoryOnHugePages(memoryMib, hugePageSize(memorySpec.hugePages()), "--memory " + memory);
        VmRules.commandLine(cmdline, "--cmdline");
        Path k = kernel != null ? VmRules.bootFile(kernel.toString(), "--kernel") : GuestImages.defaultVmlinux();
        Path i = kernel != null ? (initrd == null ? null : VmRules.bootFile(initrd.toString(), "--initrd"))
                : GuestImages.defaultInitramfs();
        List<Drive> drives = new ArrayList<>();
        for (String disk : diskSpecs) {
            drives.add(DiskOption.parse(disk, drives.size()));
        }
        VmConfig.checkDrives(drives, n -> "--disk " + diskSpecs.get(n));
        List<NetworkInterface> interfaces = new ArrayList<>();
        for (String net : netSpecs) {
            interfaces.add(NetOption.parse(net, interfaces.size()));
        }
        VmConfig.checkNetworkInterfaces(interfaces, n -> "--net " + netSpecs.get(n));
        VmConfig.Vsock vsock = vsockSpec == null ? null : parseVsock(vsockSpec);
        VmConfig.Entropy entropy = entropySpec == null ? null : parseEntropy(entropySpec);
        List<SharedFolder> shares = parseShares(shareSpecs);
        // The built-in initramfs mounts what panamax.shares lists; another kernel's initramfs is the user's to tell.
        String bootArgs = kernel == null ? withShareMounts(cmdline, shares) : cmdline;
        VmConfig vm = new VmConfig(new VmConfig.BootSource(k, i, bootArgs.isEmpty() ? null : bootArgs),
                new VmConfig.MachineConfig(vcpus, memoryMib, trackDirtyPages, cpuSpec.affinity(), memorySpec.hugePages()), drives,
                interfaces, vsock, shares, entropy, balloonSpec == null ? null : parseBalloon(balloonSpec), null);
        if (vm.balloon() != null) {
            VmRules.balloonAmount(vm.balloon().amountMib(), memoryMib, "--balloon " + balloonSpec);
            if (memorySpec.hugePages() != HugePages.NONE) {
                throw new UserError("--balloon: a balloon cannot give back 4 KiB pages of memory on huge pages (--memory " + memory
                        + "); leave one of them out");
            }
        }
        List<String> options = new ArrayList<>(List.of("--disk", "--net"));
        if (vsock != null) {
            options.add("--vsock");
        }
        if (!shares.isEmpty()) {
            options.add("--share");
        }
        if (entropy != null) {
            options.add("--entropy");
        }
        if (vm.balloon() != null) {
            options.add("--balloon");
        }
        vm.checkPciDevices(String.join(", ", options.subList(0, options.size() - 1)) + " and " + options.getLast());
        return vm;
    }

    private static HugePageSize hugePageSize(HugePages pages) {
        return switch (pages) {
            case NONE -> null;
            case SIZE_2M -> HugePageSize.SIZE_2M;
            case SIZE_1G -> HugePageSize.SIZE_1G;
        };
    }

    /** A tag {@code run} accepts: it goes on the kernel command line, where /init reads it (see guest-kernels' init.sh). */
    private static final Pattern SHARE_TAG = Pattern.compile("[A-Za-z0-9._-]{1,36}");
    /** Where the built-in initramfs mounts a share: {@code /mnt/TAG}. */
    static final String SHARE_MOUNT_PARENT = "/mnt/";

    /** Each {@code --share DIR[,tag=T][,readonly][,cache=MODE]}, checked alone and together. */
    static List<SharedFolder> parseShares(List<String> specs) {
        List<SharedFolder> shares = new ArrayList<>();
        for (String spec : specs) {
            shares.add(parseShare(spec, shares));
        }
        VmConfig.checkSharedFolders(shares, n -> "--share " + specs.get(n));
        return List.copyOf(shares);
    }

    /** One {@code --share}; {@code earlier} are the shares before it, whose tags a default tag avoids. */
    static SharedFolder parseShare(String spec, List<SharedFolder> earlier) {
        String[] parts = OptionSettings.split(spec).toArray(String[]::new);
        String tag = null;
        boolean readOnly = false;
        SharedFolder.Cache cache = null;
        for (int p = 1; p < parts.length; p++) {
            String setting = parts[p];
            if (setting.equals("readonly")) {
                if (readOnly) {
                    throw new UserError("--share " + spec + ": readonly is given twice");
                }
                readOnly = true;
            } else if (setting.startsWith("tag=")) {
                if (tag != null) {
                    throw new UserError("--share " + spec + ": tag is given twice");
                }
                tag = setting.substring(4);
                if (!SHARE_TAG.matcher(tag).matches()) {
                    throw new UserError("--share " + spec + ": '" + tag + "' is not a tag run accepts: use 1 to 36 of A-Z a-z 0-9 . _ -");
                }
            } else if (setting.startsWith("cache=")) {
                if (cache != null) {
                    throw new UserError("--share " + spec + ": cache is given twice");
                }
                try {
                    cache = SharedFolder.Cache.of(setting.substring(6));
                } catch (IllegalArgumentException e) {
                    throw new UserError("--share " + spec + ": " + e.getMessage());
                }
            } else {
                throw new UserError("--share " + spec + ": unknown setting '" + setting + "'; write DIR[,tag=T][,readonly][,cache=MODE]");
            }
        }
        Path dir = VmRules.shareDirectory(parts[0], readOnly, "--share " + spec);
        if (tag == null) {
            tag = defaultShareTag(dir, earlier);
        }
        return new SharedFolder(dir, tag, readOnly, cache == null ? SharedFolder.Cache.AUTO : cache);
    }

    /** The directory's own name when it is a tag {@code run} accepts and no earlier share has it, else {@code shareN}. */
    static String defaultShareTag(Path dir, List<SharedFolder> earlier) {
        Path name = dir.toAbsolutePath().normalize().getFileName();
        String tag = name == null ? "" : name.toString();
        if (SHARE_TAG.matcher(tag).matches() && earlier.stream().noneMatch(s -> s.tag().equals(tag))) {
            return tag;
        }
        return "share" + earlier.size();
    }

    /** {@code cmdline} with {@code panamax.shares=TAG:/mnt/TAG,...} before it, which the built-in initramfs's /init mounts. */
    static String withShareMounts(String cmdline, List<SharedFolder> shares) {
        if (shares.isEmpty()) {
            return cmdline;
        }
        StringBuilder line = new StringBuilder("panamax.shares=");
        for (int n = 0; n < shares.size(); n++) {
            String tag = shares.get(n).tag();
            line.append(n == 0 ? "" : ",").append(tag).append(':').append(SHARE_MOUNT_PARENT).append(tag);
        }
        return cmdline.isEmpty() ? line.toString() : line + " " + cmdline;
    }

    /** The {@code --share} that gives {@code share} again, inside the rig: the directory by its absolute path. */
    static String formatShare(SharedFolder share) {
        return OptionSettings.escape(share.path().toAbsolutePath().toString()) + ",tag=" + share.tag() + (share.readOnly() ? ",readonly" : "")
                + (share.cache() == SharedFolder.Cache.AUTO ? "" : ",cache=" + share.cache().value());
    }

    /** {@code --entropy[=bw=RATE,ops=N]}: each setting at most once; none, no limit. */
    static VmConfig.Entropy parseEntropy(String text) {
        TokenBucket bandwidth = null;
        TokenBucket ops = null;
        String option = "--entropy " + text;
        for (String part : text.isEmpty() ? new String[0] : text.split(",", -1)) {
            if (part.startsWith("bw=") && bandwidth == null) {
                bandwidth = TokenBucket.perSecond(DiskOption.rate(option, part.substring(3), true));
            } else if (part.startsWith("ops=") && ops == null) {
                ops = TokenBucket.perSecond(DiskOption.rate(option, part.substring(4), false));
            } else {
                throw new UserError(option + ": " + (part.startsWith("bw=") || part.startsWith("ops=") ? part.substring(0, part.indexOf('='))
                        + " is given twice" : "unknown setting '" + part + "'") + "; write bw=RATE,ops=N, either or both, or nothing");
            }
        }
        return new VmConfig.Entropy(bandwidth == null && ops == null ? null : new RateLimiter(bandwidth, ops));
    }

    /** {@code --entropy} again, for the copy of a command run in the rig. */
    static String formatEntropy(VmConfig.Entropy entropy) {
        RateLimiter limiter = entropy.rateLimiter();
        List<String> settings = new ArrayList<>();
        if (limiter != null && limiter.bandwidth() != null) {
            settings.add("bw=" + limiter.bandwidth().size());
        }
        if (limiter != null && limiter.ops() != null) {
            settings.add("ops=" + limiter.ops().size());
        }
        return "--entropy=" + String.join(",", settings);
    }

    /** {@code --balloon MIB[,deflate-on-oom][,stats=SECONDS]}: the size first, then each setting at most once. */
    static Balloon parseBalloon(String text) {
        String[] parts = text.split(",", -1);
        if (!parts[0].matches("[0-9]{1,9}")) {
            throw new UserError("--balloon " + text + ": the balloon's size in MiB comes first, not '" + parts[0]
                    + "'; write MIB[,deflate-on-oom][,stats=SECONDS]");
        }
        boolean deflateOnOom = false;
        Integer stats = null;
        for (int i = 1; i < parts.length; i++) {
            String setting = parts[i];
            if (setting.equals("deflate-on-oom") && !deflateOnOom) {
                deflateOnOom = true;
            } else if (setting.startsWith("stats=") && stats == null && setting.substring(6).matches("[0-9]{1,9}")) {
                stats = VmRules.balloonStatsInterval(Long.parseLong(setting.substring(6)), "--balloon stats");
            } else {
                throw new UserError("--balloon " + text + ": '" + setting + "' is not a setting (or is given twice);"
                        + " write MIB[,deflate-on-oom][,stats=SECONDS]");
            }
        }
        return new Balloon(Long.parseLong(parts[0]), deflateOnOom, stats == null ? 0 : stats);
    }

    /** {@code --vsock cid=N,uds=PATH}, each setting once, both required. */
    static VmConfig.Vsock parseVsock(String text) {
        Long cid = null;
        String uds = null;
        for (String setting : OptionSettings.split(text)) {
            int eq = setting.indexOf('=');
            String key = eq < 0 ? setting : setting.substring(0, eq);
            String value = eq < 0 ? null : setting.substring(eq + 1);
            switch (key) {
                case "cid" -> {
                    if (cid != null || value == null || value.isEmpty() || value.length() > 19
                            || !value.chars().allMatch(c -> c >= '0' && c <= '9')) {
                        throw new UserError("--vsock " + text + ": " + (cid != null ? "cid is given twice" : "cid must be a number, not '"
                                + (value == null ? "" : value) + "'"));
                    }
                    cid = VmRules.vsockGuestCid(Long.parseLong(value), "--vsock cid");
                }
                case "uds" -> {
                    if (uds != null || value == null || value.isEmpty()) {
                        throw new UserError("--vsock " + text + ": " + (uds != null ? "uds is given twice" : "uds needs a socket path"));
                    }
                    uds = value;
                }
                default -> throw new UserError("--vsock " + text + ": unknown setting '" + setting + "'; write cid=N,uds=PATH");
            }
        }
        if (cid == null || uds == null) {
            throw new UserError("--vsock " + text + ": " + (cid == null ? "cid" : "uds") + " is missing; write cid=N,uds=PATH");
        }
        return new VmConfig.Vsock(cid, VmRules.vsockSocketPath(uds, "--vsock uds"));
    }

    /** Runs the VM in this process. */
    private int runHere(VmConfig config) throws IOException {
        if (privileges != null) {
            privileges.prepare();
        }
        try (LogOutput _ = fileLogger == null ? null : installLog(fileLogger);
             OutputStream out = console.open();
             VirtualMachine vm = build(config, out);
             ControlPlane plane = ControlPlane.forVm(vm, config, Panamax.version());
             ApiServer api = apiSocket == null ? null : ServeCommand.startApi(apiSocket, plane)) {
            if (config.metricsPath() != null) {
                try {
                    plane.configureMetrics(config.metricsPath(), "metrics.metrics_path");
                } catch (ApiFault e) {
                    throw new UserError(e.getMessage());
                }
            }
            if (api != null) {
                System.err.println("panamax: serving the API on " + api.socket());
            }
            if (bootTime) {
                vm.onUserSpace(t -> System.err.printf("panamax: guest user space reached %d ms after process start; %s%n",
                        t.toMillis(), ProcessMemory.read(vm)));
                System.err.printf("panamax: vCPUs start %d ms after process start%n", ProcessMemory.sinceProcessStart().toMillis());
            }
            // The built-in initramfs's /init prints panamax.run's status; run ends with it.
            AtomicInteger reported = new AtomicInteger(-1);
            if (GuestImages.isBuiltInInitramfs(config.bootSource().initrd())) {
                vm.addConsoleLineListener(line -> GuestImages.exitStatusLine(line).ifPresent(reported::set));
            }
            // Everything the VM uses is open now: the kernel loaded, images locked, taps attached, passt started, the console, log,
            // metrics and API socket.
            if (privileges != null) {
                privileges.apply();
            }
            vm.start();
            int status = awaitGuest(vm);
            return withReportedStatus(status, reported.get() < 0 ? OptionalInt.empty() : OptionalInt.of(reported.get()));
        }
    }

    /** Makes the config file's {@code logger} the VMM's log, or says in one line why it cannot. */
    static LogOutput installLog(LoggerConfig logger) {
        try {
            LogOutput log = LogOutput.install(logger, ControlPlane.INSTANCE_ID);
            System.getLogger(RunCommand.class.getName()).log(System.Logger.Level.INFO, "Running " + ControlPlane.APP_NAME + " v"
                    + Panamax.version()); // Firecracker's first line
            return log;
        } catch (IOException e) {
            throw new UserError("logger.log_path: " + e.getMessage());
        }
    }

    /** Refuses the options that describe a VM, for {@code option}, whose VM comes whole from {@code where}. */
    private void refuseVmOptions(String option, String where) {
        for (String vmOption : VM_OPTIONS) {
            if (spec.commandLine().getParseResult().hasMatchedOption(vmOption)) {
                throw new UserError(option + " and " + vmOption + " do not go together: " + where + " holds the whole VM");
            }
        }
        if (config != null) {
            throw new UserError(option + " and --config do not go together: " + where + " holds the whole VM");
        }
    }

    /** The {@code --net-override ID=TAP} options, checked, by interface id. */
    private Map<String, String> networkOverrides() {
        Map<String, String> overrides = new LinkedHashMap<>();
        for (String override : netOverrides) {
            int eq = override.indexOf('=');
            if (eq <= 0) {
                throw new UserError("--net-override " + override + ": write it as ID=TAP, e.g. net0=tap1");
            }
            try {
                overrides.put(VmRules.id(override.substring(0, eq), "--net-override " + override),
                        VmRules.hostDeviceName(override.substring(eq + 1), "--net-override " + override));
            } catch (ConfigException e) {
                throw new UserError(e.getMessage());
            }
        }
        return overrides;
    }

    /**
     * {@code --incoming ADDR}: waits for a migrated VM and runs it to its end. Where KVM only
     * emulates, the destination must run inside the rig, as its source does: refused here, saying how.
     */
    private int receive() throws IOException {
        refuseVmOptions("--incoming", "the migration");
        if (!noRig && !KvmAcceleration.detect().hardware()) {
            throw new UserError("--incoming: on this host (whose KVM only emulates) the VM would run inside the nested KVM rig, and"
                    + " its source must run beside it; run both there (panamax rig -- COMMAND) with --no-rig, or use hosts with"
                    + " hardware KVM");
        }
        IncomingMigrationOptions options = IncomingMigrationOptions.at(incoming);
        for (Map.Entry<String, String> o : networkOverrides().entrySet()) {
            options = options.networkOverride(o.getKey(), o.getValue());
        }
        // The VM is built when it arrives, as this process still may; the privileges go before the guest runs here. The API
        // socket is made after that (it needs the VM), as the user: its directory must let the user in.
        java.util.concurrent.atomic.AtomicReference<PrivilegeDrop.Refused> refused = new java.util.concurrent.atomic.AtomicReference<>();
        if (privileges != null) {
            privileges.prepare();
            checkApiSocketAfterDrop();
            options = options.whenBuilt(() -> {
                try {
                    privileges.apply();
                } catch (PrivilegeDrop.Refused e) {
                    refused.set(e);
                    throw e;
                }
            });
        }
        try (OutputStream out = console.open();
             MigrationListener listener = listen(options.console(out))) {
            System.err.println("panamax: waiting for a migration on " + incoming);
            VirtualMachine received;
            try {
                received = listener.accept();
            } catch (VirtualMachineException e) {
                if (refused.get() != null) {
                    throw refused.get(); // the source's guest runs on there
                }
                throw new UserError("the migration failed: " + e.getMessage());
            }
            try (VirtualMachine vm = received;
                 ApiServer api = apiSocket == null ? null
                         : ServeCommand.startApi(apiSocket, ControlPlane.forVm(vm, VmConfig.of(vm.configuration(), false), Panamax.version()))) {
                if (api != null) {
                    System.err.println("panamax: serving the API on " + api.socket());
                }
                return awaitGuest(vm);
            }
        }
    }

    private static MigrationListener listen(IncomingMigrationOptions options) throws IOException {
        try {
            return VirtualMachine.listenForMigration(options, line -> System.err.println("panamax: migration: " + line));
        } catch (VirtualMachineException e) {
            throw new UserError("--incoming " + options.address() + ": " + e.getMessage());
        } catch (IOException e) {
            throw new UserError(e.getMessage());
        }
    }

    /** {@code --restore DIR}: the snapshot checked here, then restored here or inside the rig. */
    private int restore() throws IOException {
        refuseVmOptions("--restore", "the snapshot");
        RestoreOptions options = RestoreOptions.of(restoreDir.resolve(SnapshotCommand.STATE_FILE), restoreDir.resolve(SnapshotCommand.MEMORY_FILE))
                .eagerMemory(eagerMemory)
                .resume(privileges == null); // with --uid the guest resumes only once the privileges are gone
        for (Map.Entry<String, String> o : networkOverrides().entrySet()) {
            options = options.networkOverride(o.getKey(), o.getValue());
        }
        List<Path> disks;
        VmConfig described; // what GET /vm/config answers
        try {
            disks = VirtualMachine.snapshotDisks(options);
            described = VmConfig.ofSnapshot(options);
        } catch (VirtualMachineException e) {
            throw new UserError(e.getMessage());
        } catch (NoSuchFileException e) {
            throw new UserError("--restore " + restoreDir + ": there is no " + e.getFile() + "; write a snapshot there with panamax snapshot");
        }
        if (movesIntoRig()) {
            sayWhyInRig();
            return restoreInRig(disks);
        }
        if (privileges != null) {
            privileges.prepare();
        }
        try (OutputStream out = console.open();
             VirtualMachine vm = restored(options.console(out));
             ApiServer api = apiSocket == null ? null : ServeCommand.startApi(apiSocket, ControlPlane.forVm(vm, described, Panamax.version()))) {
            if (api != null) {
                System.err.println("panamax: serving the API on " + api.socket());
            }
            if (privileges != null) {
                privileges.apply(); // the snapshot's files, disks and taps are open
                vm.resume();
            }
            if (bootTime) {
                System.err.printf("panamax: vCPUs resume %d ms after process start%n", ProcessMemory.sinceProcessStart().toMillis());
            }
            return awaitGuest(vm);
        }
    }

    private static VirtualMachine restored(RestoreOptions options) throws IOException {
        try {
            return VirtualMachine.restore(options);
        } catch (VirtualMachineException e) {
            throw new UserError(e.getMessage());
        } catch (NoSuchFileException e) {
            throw new UserError("there is no " + e.getFile() + ": a snapshot directory holds " + SnapshotCommand.STATE_FILE + " and "
                    + SnapshotCommand.MEMORY_FILE);
        }
    }

    /** The command that starts this Panamax in the rig's JVM, with the start-up cache {@code aot} unless null; the caller adds the arguments. */
    static List<String> panamaxInRig(Path aot) {
        List<String> argv = jvmInRig(aot);
        argv.add(Panamax.class.getName());
        return argv;
    }

    /** {@link #panamaxInRig} without the main class: the JVM a standby in the warm rig is started as. */
    static List<String> jvmInRig(Path aot) {
        List<String> argv = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        argv.addAll(Rig.JVM_OPTIONS);
        if (aot != null) {
            argv.add("-XX:AOTCache=" + aot);
        }
        argv.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path")));
        return argv;
    }

    /** Runs {@code run --no-rig --restore} inside the rig, with the snapshot and its disks shared. */
    private int restoreInRig(List<Path> disks) {
        Path dir = restoreDir.toAbsolutePath();
        List<String> argv = panamaxInRig(null);
        argv.addAll(List.of("run", "--no-rig", "--console", console.isNone() ? "none" : "stdio", "--restore", dir.toString()));
        addPrivileges(argv);
        if (timeoutSeconds != null) {
            argv.addAll(List.of("--timeout", timeoutSeconds.toString()));
        }
        if (eagerMemory) {
            argv.add("--eager-memory");
        }
        if (bootTime) {
            argv.add("--boot-time");
        }
        for (String override : netOverrides) {
            argv.addAll(List.of("--net-override", override));
        }
        Rig.Options options = Rig.Options.defaults().withVisible(dir, true);
        for (Path disk : disks) {
            options = options.withVisible(disk.toAbsolutePath().getParent(), false);
        }
        return inRig(options, argv);
    }

    /** {@code --uid} and {@code --gid} again, for the run inside the rig, which gives up its privileges there. */
    private void addPrivileges(List<String> argv) {
        if (privileges != null) {
            argv.addAll(List.of("--uid", Long.toString(privileges.uid()), "--gid", Long.toString(privileges.gid())));
        }
    }

    /**
     * With {@code --incoming}, the API socket is made once the VM has arrived, after the privileges are gone: refused now,
     * before any memory moves, when the user could not make it there.
     */
    private void checkApiSocketAfterDrop() throws IOException {
        if (apiSocket == null) {
            return;
        }
        Path dir = apiSocket.toAbsolutePath().getParent();
        if (Files.isDirectory(dir) && !privileges.mayWriteIn(dir)) {
            throw new UserError("--api-sock " + apiSocket + ": with --incoming and --uid the API socket is made once the VM has arrived,"
                    + " as uid " + privileges.uid() + ", gid " + privileges.gid() + ", which may not create files in " + dir
                    + "; put the socket in a directory that user may write");
        }
    }

    /** Waits for the guest of a started VM with the terminal's keys going to it; the exit status for how it ended. */
    private int awaitGuest(VirtualMachine vm) {
        VirtualMachine.Exit exit;
        try (TerminalInput keyboard = console.isStdio() ? TerminalInput.open() : null) {
            if (keyboard != null) {
                TerminalInput.feed(vm, keyboard.keys(vm::kill));
            }
            exit = vm.awaitExit(timeoutSeconds == null ? null : Duration.ofSeconds(timeoutSeconds)).orElse(null);
        }
        if (exit == null) {
            killWithin(vm, KILL_GRACE);
            System.err.println("panamax: the guest was still running after " + timeoutSeconds + " s; killed it. Its vCPUs and queues:");
            describeKilled(vm, System.err);
            return 124;
        }
        return exitStatus(exit);
    }

    /**
     * Where a VM killed at its timeout stood, one line per vCPU and virtio queue: for the report of a guest
     * that hangs (halted or spinning, and where; a request lost or stuck in a device). After the kill,
     * before the VM is closed.
     */
    static void describeKilled(VirtualMachine vm, PrintStream err) {
        vm.describeVcpus().forEach(line -> err.println("panamax:   " + line));
        vm.describeQueues().forEach(line -> err.println("panamax:   " + line));
    }

    /** Status of a {@code run} whose nested KVM rig failed under it (sysexits' EX_UNAVAILABLE). */
    static final int RIG_FAILED = 69;

    /** How long a kill at the timeout may take before the process ends without the VM. */
    static final Duration KILL_GRACE = Duration.ofSeconds(20);

    /**
     * Kills the VM; if its vCPUs have not all stopped within {@code grace} (one stuck outside guest
     * code, which a kick cannot reach), prints every thread's stack, for the bug report, and ends
     * the process with status 124 all the same: {@code --timeout} is a promise to whoever waits on it.
     */
    static void killWithin(VirtualMachine vm, Duration grace) {
        within(grace, vm::kill, () -> {
            StringBuilder dump = new StringBuilder("panamax: the VM did not stop within " + grace.toSeconds()
                    + " s of the kill at the timeout; ending the process. Its threads:\n");
            Thread.getAllStackTraces().forEach((t, stack) -> {
                dump.append("  \"").append(t.getName()).append("\" ").append(t.getState()).append('\n');
                for (StackTraceElement frame : stack) {
                    dump.append("      at ").append(frame).append('\n');
                }
            });
            System.err.print(dump);
            System.err.flush();
            Runtime.getRuntime().halt(124);
        });
    }

    /**
     * Runs {@code action}, and {@code overdue} on a watchdog thread if the action has not returned
     * within {@code grace}; returns the watchdog, which ends soon after the action does.
     */
    static Thread within(Duration grace, Runnable action, Runnable overdue) {
        CountDownLatch done = new CountDownLatch(1);
        Thread watchdog = Thread.ofPlatform().daemon().name("watchdog").start(() -> {
            try {
                if (!done.await(grace.toNanos(), TimeUnit.NANOSECONDS)) {
                    overdue.run();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            action.run();
        } finally {
            done.countDown();
        }
        return watchdog;
    }

    /** The VM, or a {@link UserError} saying why it cannot be built as described (anything else thrown is a bug). */
    private VirtualMachine build(VmConfig config, OutputStream out) {
        try {
            return config.toBuilder().console(out).bootProtocol(protocol).build();
        } catch (ConfigException | VirtualMachineException e) {
            throw new UserError(e.getMessage());
        }
    }

    /** The exit status for the way the guest ended: 0 for an orderly end, else 1 (and why, on stderr). */
    static int exitStatus(VirtualMachine.Exit exit) {
        if (exit.reason() == VirtualMachine.ExitReason.MIGRATED) {
            System.err.println("panamax: the VM " + exit + "; it runs on there");
        }
        if (!exit.clean()) {
            System.err.println("panamax: the guest failed: " + exit);
            return 1;
        }
        return 0;
    }

    /**
     * {@code run}'s status once the VM has ended with {@code vmStatus} ({@link #exitStatus}, or 124 at the timeout): the
     * status /init reported for {@code panamax.run} when the guest ended in order, else {@code vmStatus} (a crash
     * or a timeout outweighs what the command said; a guest that reported nothing keeps the VM's status).
     */
    static int withReportedStatus(int vmStatus, OptionalInt reported) {
        return vmStatus == 0 && reported.isPresent() ? reported.getAsInt() : vmStatus;
    }

    /**
     * An ahead-of-time cache (JDK 25) of the classes Panamax loads to boot a guest, for the JVM
     * inside the rig: on QEMU's software CPU that JVM takes about 9 s to reach its vCPUs, 2-3 s
     * less with the cache. Trained here, on the host, once per build of the class path (it is
     * keyed by the jars' sizes and times, and the rig JVMs' options); the JVM ignores a cache that
     * does not match.
     */
    static Optional<Path> aotCache(Path kernel, Path initrd) {
        StringBuilder key = new StringBuilder(Runtime.version().toString()).append(Rig.JVM_OPTIONS);
        String classPath = System.getProperty("java.class.path");
        for (String entry : classPath.split(java.io.File.pathSeparator)) {
            Path p = Path.of(entry);
            try {
                key.append(p.toAbsolutePath()).append(Files.size(p)).append(Files.getLastModifiedTime(p));
            } catch (IOException e) {
                key.append(entry);
            }
        }
        Path cache = PanamaxCache.root().resolve("aot").resolve("cli-" + PanamaxCache.hash(key.toString(), 16) + ".aot");
        if (Files.exists(cache)) {
            return Optional.of(cache);
        }
        System.err.println("panamax: preparing a start-up cache for the JVM inside the rig (once per build, a few seconds)");
        List<String> training = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-XX:AOTCacheOutput=" + cache, "-Xlog:aot=off", "-Xlog:cds=off"));
        training.addAll(Rig.JVM_OPTIONS);
        training.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-cp", classPath, Panamax.class.getName(),
                "run", "--no-rig", "--timeout", "1", "--console", "none", "--kernel", kernel.toString()));
        if (initrd != null) {
            training.addAll(List.of("--initrd", initrd.toString()));
        }
        try {
            Files.createDirectories(cache.getParent());
            Process p = new ProcessBuilder(training).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            if (!p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        } catch (IOException e) {
            return Optional.empty(); // a start-up cache is an optimization: boot without it
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
        if (!Files.exists(cache)) {
            return Optional.empty();
        }
        // Caches of earlier builds are useless now (about 20 MB each): keep only this one. The training JVM also
        // leaves an empty CACHE.config behind (its configuration file, emptied), one per build.
        try (var old = Files.newDirectoryStream(cache.getParent(), "cli-*.aot*")) {
            for (Path p : old) {
                if (!p.equals(cache)) {
                    Files.deleteIfExists(p);
                }
            }
        } catch (IOException e) {
            // leftovers only cost disk space
        }
        return Optional.of(cache);
    }

    /** Runs this same command inside the rig, where KVM is real, with the same console and exit status. */
    private int runInRig(VmConfig vm) {
        Path k = vm.bootSource().kernel().toAbsolutePath();
        Path i = vm.bootSource().initrd() == null ? null : vm.bootSource().initrd().toAbsolutePath();
        List<String> argv = panamaxInRig(aotCache(k, i).orElse(null));
        argv.addAll(List.of("run", "--no-rig", "--console", console.isNone() ? "none" : "stdio", "--boot-protocol", protocol.name()));
        addPrivileges(argv);
        if (timeoutSeconds != null) {
            argv.addAll(List.of("--timeout", timeoutSeconds.toString()));
        }
        if (bootTime) {
            argv.add("--boot-time");
        }
        if (noSeccomp) {
            argv.add("--no-seccomp");
        }
        // The rig sees the working tree and the cache; every other file the VM uses is shared by its directory.
        Rig.Options options = Rig.Options.defaults().withVisible(k.getParent(), true);
        if (i != null) {
            options = options.withVisible(i.getParent(), true);
        }
        if (config != null) {
            Path file = config.toAbsolutePath();
            argv.addAll(List.of("--config", file.toString()));
            options = options.withVisible(file.getParent(), true);
        } else {
            argv.addAll(List.of("--cmdline", cmdline, "--cpus", cpus, "--memory", memory, "--kernel", k.toString()));
            if (trackDirtyPages) {
                argv.add("--track-dirty-pages");
            }
            if (i != null) {
                argv.addAll(List.of("--initrd", i.toString()));
            }
            for (Drive d : vm.drives()) {
                argv.addAll(List.of("--disk", DiskOption.format(d)));
            }
            for (NetworkInterface n : vm.networkInterfaces()) {
                argv.addAll(List.of("--net", NetOption.format(n).orElseThrow()));
            }
            for (SharedFolder s : vm.sharedFolders()) {
                argv.addAll(List.of("--share", formatShare(s)));
            }
            if (vm.entropy() != null) {
                argv.add(formatEntropy(vm.entropy()));
            }
        }
        // A shared folder is shared with the rig at its own path, and from there with the guest.
        for (SharedFolder s : vm.sharedFolders()) {
            options = options.withVisible(s.path().toAbsolutePath().normalize(), s.readOnly());
        }
        for (Drive d : vm.drives()) {
            options = options.withVisible(d.path().toAbsolutePath().getParent(), d.readOnly());
        }
        return inRig(options, argv);
    }

    /**
     * Runs {@code argv} inside a rig with {@code options} (the warm one when it is on), the console and keyboard
     * passed through; its exit status. Ctrl-] ends the VM (a private rig stops with it, the warm one stays): status 0,
     * as a Ctrl-] here gives. A rig that fails under the VM (QEMU died or hung) ends this with one line and its
     * console's end on stderr, status {@link #RIG_FAILED}.
     */
    private int inRig(Rig.Options options, List<String> argv) {
        AtomicBoolean quit = new AtomicBoolean();
        try (OutputStream out = console.open(); RigSession rig = RigSession.open(options);
             TerminalInput keyboard = console.isStdio() ? TerminalInput.open() : null) {
            try {
                // argv is panamaxInRig's JVM, Panamax and its arguments: a warm rig may have a standby JVM for them.
                int main = argv.indexOf(Panamax.class.getName());
                RunResult result = rig.runProgram(argv.subList(0, main), Panamax.class.getName(), Standby.class.getName(),
                        argv.subList(main + 1, argv.size()),
                        timeoutSeconds == null ? Duration.ofDays(365) : Duration.ofSeconds(timeoutSeconds + 60),
                        out, keyboard == null ? null : keyboard.keys(() -> {
                            quit.set(true);
                            rig.interruptRun();
                        }));
                return quit.get() ? 0 : result.exitStatus();
            } catch (RigException e) {
                if (quit.get()) {
                    return 0;
                }
                throw e;
            }
        } catch (RigException e) {
            System.err.println("panamax: the nested KVM rig failed under the VM, which ended with it: " + e.getMessage());
            return RIG_FAILED;
        } catch (MissingIngredientException e) {
            throw new UserError(e.getMessage());
        } catch (IOException e) {
            throw new UserError("cannot write the console: " + e.getMessage());
        }
    }
}
