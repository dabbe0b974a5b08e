package dev.panamax.cli;

import static dev.panamax.cli.CliRun.panamax;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.api.Balloon;
import dev.panamax.api.RateLimiter;
import dev.panamax.api.SharedFolder;
import dev.panamax.api.TokenBucket;
import dev.panamax.boot.SyntheticKernels;
import dev.panamax.control.TestKernels;
import dev.panamax.control.VmConfig;
import dev.panamax.demo.KvmAcceleration;
import dev.panamax.rig.UsesKvm;
import dev.panamax.storage.image.Images;
import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HugePageSize;
import dev.panamax.vm.state.StateFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax run}'s bad input: one line naming the problem, exit status 2, before any guest runs. */
@UsesKvm
class RunCommandTest {
    @TempDir Path dir;

    private void assertRefused(String expected, String... args) {
        CliRun r = panamax(args);
        assertThat(r.status()).as(r.err()).isEqualTo(2);
        assertThat(r.err().strip()).startsWith("panamax: ").contains(expected).doesNotContain("\n").doesNotContain("Exception");
    }

    @Test
    void badKernelsAreRefused() throws Exception {
        Path text = Files.writeString(dir.resolve("notes.txt"), "not a kernel");
        Path farAway = SyntheticKernels.write(dir, "vmlinux", SyntheticKernels.vmlinux(true, 1L << 30));
        assertRefused("does not exist", "run", "--no-rig", "--kernel", dir.resolve("missing").toString());
        assertRefused("not a Linux kernel", "run", "--no-rig", "--kernel", text.toString());
        assertRefused("is a directory", "run", "--no-rig", "--kernel", dir.toString());
        assertRefused("needs memory up to 1025 MiB", "run", "--no-rig", "--kernel", farAway.toString(), "--memory", "64M");
        assertRefused("initrd", "run", "--no-rig", "--kernel", farAway.toString(), "--initrd", dir.resolve("nope").toString());
    }

    @Test
    void badSizesAndCountsAreRefused() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        assertRefused("--cpus: 0 vCPUs is out of range", "run", "--no-rig", "--kernel", kernel.toString(), "--cpus", "0");
        assertRefused("too little", "run", "--no-rig", "--kernel", kernel.toString(), "--memory", "8M");
        assertRefused("more than this host's", "run", "--no-rig", "--kernel", kernel.toString(), "--memory", "64T");
        assertRefused("'12Q' is not a size", "run", "--no-rig", "--kernel", kernel.toString(), "--memory", "12Q");
        assertRefused("whole number of MiB", "run", "--no-rig", "--kernel", kernel.toString(), "--memory", "1.5M");
        assertRefused("--console must be", "run", "--no-rig", "--kernel", kernel.toString(), "--console", "tcp:1");
        assertRefused("cannot connect the console", "run", "--no-rig", "--kernel", kernel.toString(), "--console",
                "socket:" + dir.resolve("nobody-listens"));
        assertRefused("--initrd needs --kernel", "run", "--initrd", kernel.toString());
    }

    @Test
    void badAffinitiesAndHugePagesAreRefusedBeforeBoot() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        String k = kernel.toString(); // (a --timeout ends the spinning guest, should a check let it boot)
        assertRefused("--cpus 2,affinity=5@[0]: vCPU 5 does not exist: the VM has 2 vCPUs, numbered 0 to 1",
                "run", "--no-rig", "--timeout", "20", "--kernel", k, "--cpus", "2,affinity=5@[0]");
        assertRefused("is not an affinity entry", "run", "--no-rig", "--timeout", "20", "--kernel", k, "--cpus", "2,affinity=0=[1]");
        int offline = CpuSet.online().stream().max().orElseThrow() + 1;
        assertRefused("host CPU " + offline + " of vCPU 0 is not online", "run", "--no-rig", "--timeout", "20", "--kernel", k, "--cpus",
                "1,affinity=0@[" + offline + "]");
        assertRefused("--memory 65M,hugepages=2M: 65 MiB is not a multiple of the 2M huge page size", "run", "--no-rig", "--timeout", "20", "--kernel", k,
                "--memory", "65M,hugepages=2M");
        long pages = Math.max(HugePageSize.SIZE_2M.availablePages() + 1, 16);
        assertRefused("> /proc/sys/vm/nr_hugepages", "run", "--no-rig", "--timeout", "20", "--kernel", k, "--memory", (pages * 2) + "M,hugepages=2M");
    }

    @Test
    void badDisksAreRefusedBeforeBoot() throws Exception {
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        Path image = Files.write(dir.resolve("disk.raw"), new byte[1 << 20]);
        String k = kernel.toString();
        assertRefused("does not exist; give the path of a disk image file", "run", "--no-rig", "--kernel", k, "--disk", dir.resolve("nope.raw").toString());
        assertRefused("is not a regular file", "run", "--no-rig", "--kernel", k, "--disk", dir.toString());
        assertRefused("the image path is missing", "run", "--no-rig", "--kernel", k, "--disk", ",readonly");
        assertRefused("unknown setting 'cache=none'", "run", "--no-rig", "--kernel", k, "--disk", image + ",cache=none");
        assertRefused("the transport is pci or mmio, not 'usb'", "run", "--no-rig", "--kernel", k, "--disk", image + ",transport=usb");
        assertRefused("is not a valid id", "run", "--no-rig", "--kernel", k, "--disk", image + ",id=no-dashes");
        assertRefused("another drive is already called 'boot'", "run", "--no-rig", "--kernel", k,
                "--disk", image + ",id=boot", "--disk", image + ",readonly,id=boot");
        assertRefused("one of them may write it", "run", "--no-rig", "--kernel", k, "--disk", image.toString(), "--disk", image.toString());
        assertRefused("Linux probes virtio-mmio drives first", "run", "--no-rig", "--kernel", k,
                "--disk", image + ",root", "--disk", image + ",readonly,transport=mmio");
        List<String> tooMany = new ArrayList<>(List.of("run", "--no-rig", "--kernel", k));
        for (int i = 0; i < 32; i++) {
            tooMany.addAll(List.of("--disk", image + ",readonly"));
        }
        assertRefused("--disk and --net: 32 drives on PCI and 0 network interfaces are 32 PCI devices, more than the 30 slots the bus has for them (of its 31, one holds the pvpanic device)",
                tooMany.toArray(String[]::new));
        assertRefused("--config and --disk do not go together", "run", "--no-rig", "--config", image.toString(), "--disk", image.toString());
        try (var _ = Images.open(image, Images.OpenOptions.readWrite().withLock())) {
            assertRefused("is in use by another process", "run", "--no-rig", "--kernel", k, "--disk", image.toString());
        }
    }

    /** A disk in a format Panamax cannot read is refused by name before boot (DiskOptionTest: and taken as raw when its format says so). */
    @Test
    void aDiskInAForeignFormatIsRefusedUnlessItsFormatIsGiven() throws Exception {
        String k = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage()).toString();
        byte[] header = new byte[1 << 20];
        System.arraycopy("QED\0".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, header, 0, 4);
        Path qed = Files.write(dir.resolve("disk.qed"), header);
        assertRefused("--disk " + qed + ": " + qed + " is a QED image (QEMU enhanced disk), which Panamax cannot read yet; convert it with"
                + " 'qemu-img convert -f qed -O qcow2 " + qed + " " + dir.resolve("disk.qcow2") + "' first",
                "run", "--no-rig", "--kernel", k, "--disk", qed.toString());
        assertRefused("is a QED image", "run", "--no-rig", "--kernel", k, "--disk", qed + ",readonly,root");
        assertRefused("--disk " + qed + ",format=qed: Panamax cannot read qed images yet; use raw, qcow2, vhd, vmdk, vdi or vhdx",
                "run", "--no-rig", "--kernel", k, "--disk", qed + ",format=qed");
        assertRefused("unknown image format 'floppy'", "run", "--no-rig", "--kernel", k, "--disk", qed + ",format=floppy");
        // VMDK is read, but only monolithicSparse is written: a writable drive of another kind is refused before boot.
        Path descriptor = Files.writeString(dir.resolve("flat.vmdk"), "version=1\ncreateType=\"monolithicFlat\"\n"
                + "RW 8 FLAT \"flat.bin\" 0\n");
        Files.write(dir.resolve("flat.bin"), new byte[4096]);
        assertRefused("--disk " + descriptor + ": " + descriptor + ": VMDK monolithicFlat images can only be opened read-only",
                "run", "--no-rig", "--kernel", k, "--disk", descriptor.toString());
        // VHDX is only read: a writable drive is refused before boot (a read-only one is taken).
        Path vhdx = dev.panamax.storage.VhdxFiles.write(dir.resolve("disk.vhdx"), new byte[1 << 20], 1 << 20, false);
        assertRefused("--disk " + vhdx + ": " + vhdx + ": VHDX images can only be opened read-only (attach the disk read-only,",
                "run", "--no-rig", "--kernel", k, "--disk", vhdx.toString());
        assertRefused("--disk " + vhdx + ",format=vhdx: " + vhdx + ": VHDX images can only be opened read-only",
                "run", "--no-rig", "--kernel", k, "--disk", vhdx + ",format=vhdx");
    }

    @Test
    void badNetworkInterfacesAreRefusedBeforeBoot() throws Exception {
        String k = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage()).toString();
        assertRefused("--net tap=tap0,mac=zz: MAC address 'zz' is not six pairs of hex digits", "run", "--no-rig", "--kernel", k,
                "--net", "tap=tap0,mac=zz");
        assertRefused("'bridge' is not a kind of NIC", "run", "--no-rig", "--kernel", k, "--net", "bridge=br0");
        assertRefused("network interface net0: cannot use tap fd 999: tap fd 999 is not open in this process", "run", "--no-rig",
                "--kernel", k, "--net", "tap,fd=999");
        assertRefused("network interface net0: cannot connect to passt at " + dir.resolve("no-passt"), "run", "--no-rig",
                "--kernel", k, "--net", "user,socket=" + dir.resolve("no-passt"));
        assertRefused("uses the tap descriptor 999 already", "run", "--no-rig", "--kernel", k, "--net", "tap,fd=999",
                "--net", "tap,fd=999");
        if (!KvmAcceleration.detect().hardware()) {
            // Here the VM would run in the rig, which has neither this process's descriptors nor its sockets.
            assertRefused("network interface net0 is on this process's tap descriptor 999", "run", "--kernel", k, "--net", "tap,fd=999");
            assertRefused("network interface net1 is on this process's passt socket", "run", "--kernel", k, "--net", "tap=tap0",
                    "--net", "user,socket=" + dir.resolve("no-passt"));
        }
        assertRefused("uses the host device tap0 already", "run", "--no-rig", "--kernel", k, "--net", "tap=tap0", "--net", "tap=tap0");
        assertRefused("--config and --net do not go together", "run", "--no-rig", "--config", k, "--net", "user");
        // lo is no tap, for root and anyone else alike
        assertRefused("network interface net0: cannot open tap lo", "run", "--no-rig", "--kernel", k, "--net", "tap=lo");
    }

    @Test
    void balloonOptionsAreParsedAndBadOnesRefusedBeforeBoot() throws Exception {
        assertThat(RunCommand.parseBalloon("128")).isEqualTo(new Balloon(128, false, 0));
        assertThat(RunCommand.parseBalloon("0,stats=5,deflate-on-oom")).isEqualTo(new Balloon(0, true, 5));
        String k = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage()).toString();
        assertRefused("--balloon x: the balloon's size in MiB comes first, not 'x'", "run", "--no-rig", "--kernel", k, "--balloon", "x");
        assertRefused("--balloon 1,stats=1,stats=2: 'stats=2' is not a setting (or is given twice)", "run", "--no-rig", "--kernel", k,
                "--balloon", "1,stats=1,stats=2");
        assertRefused("--balloon 1,oom: 'oom' is not a setting", "run", "--no-rig", "--kernel", k, "--balloon", "1,oom");
        assertRefused("--balloon stats: 90000 is not a statistics interval", "run", "--no-rig", "--kernel", k, "--balloon", "1,stats=90000");
        assertRefused("--balloon 300: 300 MiB is not a balloon size for a guest of 256 MiB: use 0 to 256", "run", "--no-rig", "--kernel",
                k, "--memory", "256M", "--balloon", "300");
        assertRefused("--balloon: a balloon cannot give back 4 KiB pages of memory on huge pages", "run", "--no-rig", "--kernel", k,
                "--memory", "256M,hugepages=2M", "--balloon", "16");
        assertRefused("--config and --balloon do not go together", "run", "--no-rig", "--config", k, "--balloon", "1");
    }

    @Test
    void badVsockOptionsAreRefusedBeforeBoot() throws Exception {
        String k = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage()).toString();
        Path uds = dir.resolve("v.sock");
        assertRefused("--vsock cid: 2 is not a guest CID: use 3 to 4294967294", "run", "--no-rig", "--kernel", k, "--vsock", "cid=2,uds=" + uds);
        assertRefused("--vsock cid=x,uds=" + uds + ": cid must be a number, not 'x'", "run", "--no-rig", "--kernel", k, "--vsock", "cid=x,uds=" + uds);
        assertRefused("--vsock cid=3: uds is missing; write cid=N,uds=PATH", "run", "--no-rig", "--kernel", k, "--vsock", "cid=3");
        assertRefused("--vsock cid=3,cid=4,uds=" + uds + ": cid is given twice", "run", "--no-rig", "--kernel", k, "--vsock",
                "cid=3,cid=4,uds=" + uds);
        assertRefused("unknown setting 'port=5'", "run", "--no-rig", "--kernel", k, "--vsock", "cid=3,uds=" + uds + ",port=5");
        assertRefused("--vsock uds: the directory of " + dir.resolve("no/v.sock") + " does not exist", "run", "--no-rig", "--kernel", k,
                "--vsock", "cid=3,uds=" + dir.resolve("no/v.sock"));
        assertRefused("a vsock socket path may have 96", "run", "--no-rig", "--kernel", k, "--vsock", "cid=3,uds=/tmp/" + "z".repeat(100));
        assertRefused("--config and --vsock do not go together", "run", "--no-rig", "--config", k, "--vsock", "cid=3,uds=" + uds);
        Files.writeString(uds, "");
        assertRefused("vsock: cannot make the vsock socket " + uds + ": " + uds + ": something is at the vsock socket path already",
                "run", "--no-rig", "--kernel", k, "--vsock", "cid=3,uds=" + uds);
        Files.delete(uds);
        if (!KvmAcceleration.detect().hardware()) {
            assertRefused("--vsock: on this host (whose KVM only emulates) the VM would run inside the nested KVM rig", "run",
                    "--kernel", k, "--vsock", "cid=3,uds=" + uds);
        }
    }

    @Test
    void theEntropyOptionTakesAnOptionalLimitAndIsGivenToTheRigsRunSo() throws Exception {
        assertThat(RunCommand.parseEntropy("")).isEqualTo(new VmConfig.Entropy(null));
        VmConfig.Entropy limited = RunCommand.parseEntropy("bw=1K,ops=20");
        assertThat(limited).isEqualTo(new VmConfig.Entropy(new RateLimiter(TokenBucket.perSecond(1024), TokenBucket.perSecond(20))));
        assertThat(RunCommand.parseEntropy("ops=5").rateLimiter()).isEqualTo(new RateLimiter(null, TokenBucket.perSecond(5)));
        assertThat(RunCommand.formatEntropy(limited)).isEqualTo("--entropy=bw=1024,ops=20");
        assertThat(RunCommand.formatEntropy(RunCommand.parseEntropy(""))).isEqualTo("--entropy=");
        assertThat(RunCommand.parseEntropy(RunCommand.formatEntropy(limited).substring("--entropy=".length()))).isEqualTo(limited);

        String k = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage()).toString();
        assertRefused("--entropy bw=1K,bw=2K: bw is given twice; write bw=RATE,ops=N, either or both, or nothing", "run", "--no-rig",
                "--kernel", k, "--entropy=bw=1K,bw=2K");
        assertRefused("--entropy speed=1: unknown setting 'speed=1'", "run", "--no-rig", "--kernel", k, "--entropy=speed=1");
        assertRefused("--entropy ops=1K: '1K' is not a rate: give requests a second, e.g. 500", "run", "--no-rig", "--kernel", k,
                "--entropy=ops=1K");
        assertRefused("--entropy bw=0: the rate '0' is 0 or too large", "run", "--no-rig", "--kernel", k, "--entropy", "bw=0");
        assertRefused("--config and --entropy do not go together", "run", "--no-rig", "--config", k, "--entropy");
    }

    @Test
    void badSharesAreRefusedBeforeBoot() throws Exception {
        String k = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage()).toString();
        Path data = Files.createDirectory(dir.resolve("data"));
        Path file = Files.writeString(dir.resolve("file"), "x");
        assertRefused("--share " + dir.resolve("none") + ": " + dir.resolve("none") + " does not exist; give the path of a directory to share",
                "run", "--no-rig", "--kernel", k, "--share", dir.resolve("none").toString());
        assertRefused("is not a directory; a shared folder is a directory", "run", "--no-rig", "--kernel", k, "--share", file.toString());
        assertRefused("--share ,readonly: the path is empty", "run", "--no-rig", "--kernel", k, "--share", ",readonly");
        assertRefused("--share " + data + ",mode=ro: unknown setting 'mode=ro'; write DIR[,tag=T][,readonly][,cache=MODE]", "run",
                "--no-rig", "--kernel", k, "--share", data + ",mode=ro");
        assertRefused("--share " + data + ",cache=loose: 'loose' is not a cache mode: use auto, none or always", "run", "--no-rig",
                "--kernel", k, "--share", data + ",cache=loose");
        assertRefused("'' is not a cache mode: use auto, none or always", "run", "--no-rig", "--kernel", k, "--share", data + ",cache=");
        assertRefused("'NONE' is not a cache mode", "run", "--no-rig", "--kernel", k, "--share", data + ",cache=NONE");
        assertRefused("--share " + data + ",cache=none,cache=none: cache is given twice", "run", "--no-rig", "--kernel", k, "--share",
                data + ",cache=none,cache=none");
        assertRefused("'a b' is not a tag run accepts: use 1 to 36 of A-Z a-z 0-9 . _ -", "run", "--no-rig", "--kernel", k,
                "--share", data + ",tag=a b");
        assertRefused("is not a tag run accepts", "run", "--no-rig", "--kernel", k, "--share", data + ",tag=" + "t".repeat(37));
        assertRefused("tag is given twice", "run", "--no-rig", "--kernel", k, "--share", data + ",tag=a,tag=b");
        assertRefused("readonly is given twice", "run", "--no-rig", "--kernel", k, "--share", data + ",readonly,readonly");
        assertRefused("--share " + dir + ",tag=data: another shared folder has the tag 'data' already; tags must be unique", "run",
                "--no-rig", "--kernel", k, "--share", data.toString(), "--share", dir + ",tag=data");
        List<String> tooMany = new ArrayList<>(List.of("run", "--no-rig", "--kernel", k));
        for (int i = 0; i < 9; i++) {
            tooMany.addAll(List.of("--share", data + ",readonly"));
        }
        assertRefused("a VM has at most 8 shared folders", tooMany.toArray(String[]::new));
        assertRefused("--config and --share do not go together", "run", "--no-rig", "--config", k, "--share", data.toString());
        if (!KvmAcceleration.detect().hardware()) {
            assertRefused("shared folder share0: the VM would run inside the nested KVM rig (this host's KVM only emulates), which never"
                    + " shares / itself", "run", "--kernel", k, "--share", "/,readonly");
        }
    }

    @Test
    void sharesGetTheirDirectorysNameAsDefaultTagAndTheBuiltInInitramfsMountsThemUnderMnt() throws Exception {
        Path data = Files.createDirectory(dir.resolve("data"));
        Path spaced = Files.createDirectory(dir.resolve("my files"));
        Path other = Files.createDirectories(dir.resolve("other/data"));
        List<SharedFolder> shares = RunCommand.parseShares(List.of(data.toString(), spaced + ",readonly", other.toString(),
                dir + ",tag=top.level-1,readonly"));
        assertThat(shares).containsExactly(new SharedFolder(data, "data", false), new SharedFolder(spaced, "share1", true),
                new SharedFolder(other, "share2", false), new SharedFolder(dir, "top.level-1", true));
        assertThat(RunCommand.withShareMounts("quiet", shares))
                .isEqualTo("panamax.shares=data:/mnt/data,share1:/mnt/share1,share2:/mnt/share2,top.level-1:/mnt/top.level-1 quiet");
        assertThat(RunCommand.withShareMounts("", shares.subList(0, 1))).isEqualTo("panamax.shares=data:/mnt/data");
        assertThat(RunCommand.withShareMounts("quiet", List.of())).isEqualTo("quiet");
        assertThat(RunCommand.formatShare(shares.get(1))).isEqualTo(spaced.toAbsolutePath() + ",tag=share1,readonly");
        assertThat(RunCommand.parseShares(List.of(RunCommand.formatShare(shares.get(1))))).as("what the rig's run is given")
                .containsExactly(shares.get(1));
        assertThat(RunCommand.defaultShareTag(Path.of("/"), List.of())).isEqualTo("share0");
        assertThat(RunCommand.defaultShareTag(dir.resolve("x".repeat(37)), List.of())).isEqualTo("share0");
    }

    @Test
    void aSharesCacheModeIsReadAndGivenToTheRigsRun() throws Exception {
        Path data = Files.createDirectory(dir.resolve("data"));
        Path docs = Files.createDirectory(dir.resolve("docs"));
        List<SharedFolder> shares = RunCommand.parseShares(List.of(data + ",cache=none", docs + ",cache=always,readonly,tag=d",
                dir + ",cache=auto,tag=top"));
        assertThat(shares).containsExactly(new SharedFolder(data, "data", false, SharedFolder.Cache.NONE),
                new SharedFolder(docs, "d", true, SharedFolder.Cache.ALWAYS), new SharedFolder(dir, "top", false, SharedFolder.Cache.AUTO));
        assertThat(RunCommand.formatShare(shares.get(0))).isEqualTo(data.toAbsolutePath() + ",tag=data,cache=none");
        assertThat(RunCommand.formatShare(shares.get(1))).isEqualTo(docs.toAbsolutePath() + ",tag=d,readonly,cache=always");
        assertThat(RunCommand.formatShare(shares.get(2))).as("auto, the default, is not written").isEqualTo(dir.toAbsolutePath() + ",tag=top");
        assertThat(RunCommand.parseShares(shares.stream().map(RunCommand::formatShare).toList())).as("what the rig's run is given")
                .containsExactlyElementsOf(shares);
    }

    @Test
    void badSnapshotsAreRefusedBeforeAnyVmIsBuilt() throws Exception {
        Path snap = Files.createDirectories(dir.resolve("snap"));
        Path kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        TestKernels.snapshotBeforeFirstInstruction(kernel, snap);
        byte[] good = Files.readAllBytes(snap.resolve("vm.state"));

        assertRefused("there is no " + dir.resolve("none"), "run", "--restore", dir.resolve("none").toString());
        assertRefused("--restore and --cpus do not go together", "run", "--restore", snap.toString(), "--cpus", "2");
        assertRefused("--net-override eth0: write it as ID=TAP", "run", "--restore", snap.toString(), "--net-override", "eth0");
        assertRefused("network overrides: the snapshot has no network interface eth0", "run", "--restore", snap.toString(),
                "--net-override", "eth0=tap0");
        assertRefused("--net-override and --eager-memory go with --restore", "run", "--eager-memory");
        Files.write(snap.resolve("vm.state"), java.util.Arrays.copyOf(good, good.length - 1));
        assertRefused("is truncated", "run", "--restore", snap.toString());
        byte[] version = good.clone();
        version[11] = 9;
        Files.write(snap.resolve("vm.state"), version);
        assertRefused("is in snapshot format version 9; this Panamax reads version " + StateFile.VERSION + " only", "run", "--restore",
                snap.toString());
        byte[] garbled = good.clone();
        garbled[good.length / 2] ^= 1;
        Files.write(snap.resolve("vm.state"), garbled);
        assertRefused("is corrupt: its checksum", "run", "--no-rig", "--restore", snap.toString());
        Files.write(snap.resolve("vm.state"), good);
        Files.write(snap.resolve("vm.mem"), new byte[4096]);
        assertRefused("which is only 0x1000 bytes", "run", "--no-rig", "--restore", snap.toString());
    }

    @Test
    void theTimeoutsWatchdogActsOnlyWhenTheKillOutlastsItsGrace() throws InterruptedException {
        CountDownLatch release = new CountDownLatch(1);
        AtomicBoolean overdue = new AtomicBoolean();
        Thread watchdog = RunCommand.within(Duration.ofMillis(50), () -> {
            try {
                release.await(30, TimeUnit.SECONDS); // a kill that hangs until the watchdog has acted (or gives up)
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }, () -> {
            overdue.set(true);
            release.countDown();
        });
        watchdog.join();
        assertThat(overdue).as("a kill still running after its grace").isTrue();

        AtomicBoolean early = new AtomicBoolean();
        RunCommand.within(Duration.ofDays(1), () -> {}, () -> early.set(true)).join();
        assertThat(early).as("a kill that returned at once, the watchdog ended without acting").isFalse();
    }
}
