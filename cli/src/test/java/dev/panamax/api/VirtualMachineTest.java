package dev.panamax.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.boot.SyntheticKernels;
import dev.panamax.rig.UsesKvm;
import dev.panamax.sys.CpuSet;
import dev.panamax.sys.HostThreads;
import dev.panamax.sys.HugePagePool;
import dev.panamax.sys.HugePageSize;
import dev.panamax.sys.ProcSelf;
import dev.panamax.virtio.fs.CacheMode;
import dev.panamax.vm.VmExit;
import java.lang.reflect.Executable;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The embedding API on this host's /dev/kvm with a stand-in kernel that spins (it runs where KVM
 * only emulates); booting real Linux through it is integration-tests' EmbeddingApiGuest.
 */
@UsesKvm
class VirtualMachineTest {
    @TempDir Path dir;
    private Path kernel;
    private Path disk;

    @BeforeEach
    void files() throws Exception {
        kernel = SyntheticKernels.write(dir, "bzImage", SyntheticKernels.bzImage());
        disk = Files.write(dir.resolve("disk.img"), new byte[4096]);
    }

    private VirtualMachine.Builder spinner() {
        return VirtualMachine.builder().kernel(kernel).memoryMib(64);
    }

    @Test
    void lifecycleOfARunningGuest() {
        VirtualMachine vm = spinner().cpus(2).build();
        try {
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.CREATED);
            assertThat(vm.exit()).isEmpty();
            vm.start();
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.RUNNING);
            awaitExits(vm, 2); // the stand-in kernel's two writes to the debug port
            vm.resume(); // running already: nothing to do
            vm.pause();
            vm.pause(); // paused already: nothing to do
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.PAUSED);
            long exitsWhilePaused = vm.vcpuExits();
            assertThat(exitsWhilePaused).as("the pause pulled the spinning vCPU out of guest code").isGreaterThanOrEqualTo(3);
            vm.resume();
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.RUNNING);
            assertThat(vm.awaitExit(Duration.ofMillis(10))).as("the stand-in kernel spins for ever").isEmpty();
            assertThatThrownBy(vm::start).isInstanceOf(IllegalStateException.class);

            vm.kill();

            VirtualMachine.Exit exit = vm.exit().orElseThrow();
            assertThat(exit.reason()).isEqualTo(VirtualMachine.ExitReason.STOPPED);
            assertThat(exit.clean()).isTrue();
            assertThat(exit.description()).contains("stopped by the host");
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.EXITED);
            assertThatThrownBy(vm::pause).isInstanceOf(IllegalStateException.class).hasMessageContaining("exited");
        } finally {
            vm.close();
        }
        assertThat(vm.state()).isEqualTo(VirtualMachine.State.CLOSED);
        vm.close(); // idempotent
    }

    /** Waits (bounded) until the vCPUs have left guest code {@code count} times. */
    private static void awaitExits(VirtualMachine vm, long count) {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (vm.vcpuExits() < count) {
            assertThat(System.nanoTime()).as("vCPU exits so far: " + vm.vcpuExits()).isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    @Test
    void valuesAreCheckedAtBuild() {
        assertThatThrownBy(() -> spinner().cpus(0).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("cpus: 0 vCPUs is out of range: a guest has 1 to 254");
        assertThatThrownBy(() -> spinner().memoryMib(16).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("memoryMib: 16 MiB of guest memory is too little; Linux needs at least 32 MiB");
        assertThatThrownBy(() -> spinner().commandLine("quiet\n").build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("commandLine: has a control character (U+000A)");
        assertThatThrownBy(() -> spinner().drive(new Drive("data", dir.resolve("none.img"), false, false)).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("drive data: " + dir.resolve("none.img") + " does not exist; give the path of a disk image file");
        assertThatThrownBy(() -> spinner().drive(new Drive("a", disk, true, false)).drive(new Drive("a", disk, true, false)).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("drive a: another drive is already called 'a'; drive ids must be unique");
        assertThatThrownBy(() -> spinner().networkInterface(NetworkInterface.tap("eth0", "tap0", "ff:ff:ff:ff:ff:ff")).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("network interface eth0 guest MAC: ff:ff:ff:ff:ff:ff is a multicast address");
        VirtualMachine.Builder crowded = spinner();
        for (int i = 0; i < 32; i++) {
            crowded.drive(new Drive("d" + i, disk, true, false));
        }
        assertThatThrownBy(crowded::build).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("drives and network interfaces: 32 drives on PCI and 0 network interfaces are 32 PCI devices");
        assertThatThrownBy(() -> VirtualMachine.builder().build()).isInstanceOf(IllegalStateException.class)
                .hasMessage("a VM needs a kernel");
        assertThatThrownBy(() -> spinner().vsock(2, dir.resolve("v.sock")).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("vsock guest CID: 2 is not a guest CID: use 3 to 4294967294 (0 to 2 are the hypervisor's, the local and"
                        + " the host's, 4294967295 means any)");
        assertThatThrownBy(() -> spinner().vsock(0xffff_ffffL, dir.resolve("v.sock")).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("vsock guest CID: 4294967295 is not a guest CID");
        Path longPath = Path.of("/tmp/" + "x".repeat(92)); // 97 bytes: with "_4294967295" past a socket address's 107
        assertThatThrownBy(() -> spinner().vsock(3, longPath).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("vsock socket path: " + longPath + " is 97 bytes long; a vsock socket path may have 96 so that its port"
                        + " sockets (<path>_<port>) fit a Unix socket address: use a shorter one");
        assertThatThrownBy(() -> spinner().vsock(3, dir.resolve("none/v.sock")).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("vsock socket path: the directory of " + dir.resolve("none/v.sock") + " does not exist");
    }

    @Test
    void aVsockDeviceHoldsItsSocketWhileTheVmLivesAndAPathInUseIsRefused() {
        Path uds = dir.resolve("v.sock");
        try (VirtualMachine _ = spinner().vsock(3, uds).build()) {
            assertThat(Files.exists(uds)).as("the host side's socket").isTrue();
            assertThatThrownBy(() -> spinner().vsock(4, uds).build()).isInstanceOf(VirtualMachineException.class)
                    .hasMessageStartingWith("vsock: cannot make the vsock socket " + uds + ": ")
                    .hasMessageContaining("something is at the vsock socket path already");
        }
        assertThat(Files.exists(uds)).as("removed when the VM closed").isFalse();
    }

    @Test
    void sharedFoldersAreCheckedAtBuild() throws Exception {
        Path shared = Files.createDirectory(dir.resolve("shared"));
        assertThatThrownBy(() -> spinner().share(shared, "", false).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("shared folder " + shared + " tag: a share's tag may not be empty");
        assertThatThrownBy(() -> spinner().share(dir.resolve("none"), "t", false).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("shared folder t: " + dir.resolve("none") + " does not exist; give the path of a directory to share");
        assertThatThrownBy(() -> spinner().share(disk, "t", true).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("shared folder t: " + disk + " is not a directory; a shared folder is a directory");
        assertThatThrownBy(() -> spinner().share(shared, "t", true).share(dir, "t", true).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("shared folder t: another shared folder has the tag 't' already; tags must be unique");
        VirtualMachine.Builder crowded = spinner();
        for (int i = 0; i < 9; i++) {
            crowded.share(new SharedFolder(shared, "s" + i, true));
        }
        assertThatThrownBy(crowded::build).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("shared folder s8: a VM has at most 8 shared folders; share a common parent directory instead");
    }

    @Test
    void aVmWithASharedFolderIsSnapshottedAndRestoredWithItsFolder() throws Exception {
        Path shared = Files.createDirectory(dir.resolve("shared"));
        try (VirtualMachine vm = spinner().share(shared, "data", false).build()) {
            vm.start();
            vm.pause();
            vm.snapshot(SnapshotOptions.full(dir.resolve("s.state"), dir.resolve("s.mem")));
            vm.resume();
            assertThat(vm.state()).isEqualTo(VirtualMachine.State.RUNNING);
        }
        try (VirtualMachine restored = VirtualMachine.restore(RestoreOptions.of(dir.resolve("s.state"), dir.resolve("s.mem")))) {
            assertThat(restored.state()).isEqualTo(VirtualMachine.State.RUNNING);
            assertThat(restored.configuration().sharedFolders()).containsExactly(new SharedFolder(shared, "data", false));
        }
    }

    @Test
    void unbootableKernelsAreReportedInTheApisOwnException() throws Exception {
        Path text = Files.writeString(dir.resolve("notes.txt"), "not a kernel");
        assertThatThrownBy(() -> VirtualMachine.builder().kernel(text).build()).isInstanceOf(VirtualMachineException.class)
                .hasMessageContaining("not a Linux kernel");
    }

    @Test
    void aDrivesRateLimiterIsSetByTheBuilderAndChangedWhileTheVmRuns() {
        RateLimiter configured = new RateLimiter(TokenBucket.perSecond(10 << 20), new TokenBucket(100, 20, 1000));
        try (VirtualMachine vm = spinner().drive(new Drive("data", disk, true, false).withRateLimiter(configured)).build()) {
            assertThat(vm.driveRateLimiter("data")).isEqualTo(configured);
            vm.start();
            vm.updateDrive("data", RateLimiter.bandwidth(1 << 20));
            assertThat(vm.driveRateLimiter("data")).isEqualTo(new RateLimiter(new TokenBucket(1 << 20, 0, 1000), null));
            vm.updateDrive("data", null);
            assertThat(vm.driveRateLimiter("data")).isEqualTo(RateLimiter.NONE);
            assertThat(vm.driveThrottledEvents("data")).isZero();
            assertThatThrownBy(() -> vm.updateDrive("nope", RateLimiter.NONE)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("the VM has no drive nope");
            assertThatThrownBy(() -> vm.updateNetworkInterface("eth0", null, null)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("the VM has no network interface eth0");
        }
        assertThatThrownBy(() -> new TokenBucket(-1, 0, 1000)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("token bucket size -1 is negative: give 0 (no limit) or more");
    }

    @Test
    void aDriveHoldsItsImageLocked() {
        try (VirtualMachine _ = spinner().drive(new Drive("rootfs", disk, false, true)).build()) {
            assertThatThrownBy(() -> spinner().drive(new Drive("again", disk, false, false, Transport.MMIO)).build())
                    .isInstanceOf(VirtualMachineException.class).hasMessageContaining("drive again:")
                    .hasMessageContaining("in use by another process");
        }
        spinner().drive(new Drive("again", disk, false, false, Transport.MMIO)).build().close(); // free once the first VM closed
    }

    @Test
    void aNetworkInterfaceWhoseHostDeviceIsNoTapIsRefusedWithTheFix() {
        // lo exists on every host and is no tap: opening it fails the same way for root and for anyone else.
        assertThatThrownBy(() -> spinner().networkInterface(NetworkInterface.tap("eth0", "lo", null)).build())
                .isInstanceOf(VirtualMachineException.class).hasMessageStartingWith("network interface eth0: cannot open tap lo:")
                .satisfies(e -> assertThat(e.getMessage()).containsAnyOf("not a single-queue tap", "needs CAP_NET_ADMIN"));
    }

    @Test
    void everySharedFolderCacheModeIsAModeOfTheFileServer() {
        // build() hands a share's mode to the virtio-fs device by name.
        assertThat(Arrays.stream(SharedFolder.Cache.values()).map(Enum::name))
                .containsExactlyElementsOf(Arrays.stream(CacheMode.values()).map(Enum::name).toList());
        assertThat(Arrays.stream(SharedFolder.Cache.values()).map(SharedFolder.Cache::value)).containsExactly("auto", "none", "always");
        assertThat(SharedFolder.Cache.of("always")).isEqualTo(SharedFolder.Cache.ALWAYS);
        assertThatThrownBy(() -> SharedFolder.Cache.of("Auto")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("'Auto' is not a cache mode: use auto, none or always");
        assertThat(new SharedFolder(dir, "t", false).cache()).as("the default").isEqualTo(SharedFolder.Cache.AUTO);
    }

    @Test
    void everyWayAVmEndsHasAnApiReason() {
        assertThat(Arrays.stream(VirtualMachine.ExitReason.values()).map(Enum::name))
                .containsExactlyElementsOf(Arrays.stream(VmExit.Reason.values()).map(Enum::name).toList());
        assertThat(VirtualMachine.ExitReason.RESET.clean()).isTrue();
        assertThat(VirtualMachine.ExitReason.GUEST_CRASH.clean()).isFalse();
    }

    @Test
    void theApiSignaturesUseOnlyTheJdkAndTheApiPackage() {
        List<String> leaks = new ArrayList<>();
        for (Class<?> type : List.of(VirtualMachine.class, VirtualMachine.Builder.class, VirtualMachine.Exit.class,
                Drive.class, NetworkInterface.class, RateLimiter.class, TokenBucket.class, VirtualMachineException.class,
                CpuAffinity.class, HugePages.class)) {
            List<Executable> members = new ArrayList<>(Arrays.asList(type.getConstructors()));
            members.addAll(Arrays.stream(type.getMethods()).filter(m -> m.getDeclaringClass() == type).toList());
            for (Executable member : members) {
                Stream<Type> types = Stream.concat(Arrays.stream(member.getGenericParameterTypes()),
                        Arrays.stream(member.getGenericExceptionTypes()));
                if (member instanceof Method m) {
                    types = Stream.concat(types, Stream.of(m.getGenericReturnType()));
                }
                types.flatMap(VirtualMachineTest::classesIn).filter(c -> !allowed(c))
                        .forEach(c -> leaks.add(type.getSimpleName() + "." + member.getName() + " uses " + c.getName()));
            }
            Arrays.stream(type.getFields()).filter(f -> Modifier.isPublic(f.getModifiers()) && !allowed(f.getType()))
                    .forEach(f -> leaks.add(type.getSimpleName() + "." + f.getName() + " is a " + f.getType().getName()));
            if (type.isRecord()) {
                for (RecordComponent c : type.getRecordComponents()) {
                    if (!allowed(c.getType())) leaks.add(type.getSimpleName() + "." + c.getName() + " is a " + c.getType().getName());
                }
            }
        }
        assertThat(leaks).isEmpty();
    }

    @Test
    void pinnedVcpuThreadsRunOnlyOnTheirCpusAndDevicesGetTheIoCpus() throws Exception {
        CpuSet online = CpuSet.online();
        int first = online.stream().min().orElseThrow();
        int last = online.stream().max().orElseThrow();
        try (VirtualMachine vm = spinner().cpus(2).drive(new Drive("disk0", disk, true, false))
                .cpuAffinity(CpuAffinity.NONE.withVcpu(0, last).withVcpu(1, first).withIoThreads(first)).build()) {
            vm.start();

            List<Integer> tids = vm.vcpuThreadIds();
            assertThat(ProcSelf.cpusAllowedList(tids.get(0))).isEqualTo(String.valueOf(last));
            assertThat(ProcSelf.cpusAllowedList(tids.get(1))).isEqualTo(String.valueOf(first));
            assertThat(vm.ioThreadCpus()).containsExactly(String.valueOf(first));
        }
    }

    @Test
    void withOnlyVcpusPinnedTheIoThreadsKeepTheBuildersCpusNotAVcpus() throws Exception {
        int last = CpuSet.online().stream().max().orElseThrow();
        String builders = ProcSelf.cpusAllowedList(HostThreads.currentThreadId());
        try (VirtualMachine vm = spinner().cpus(1).drive(new Drive("disk0", disk, true, false)).cpuAffinity(CpuAffinity.NONE.withVcpu(0, last)).build()) {
            assertThat(vm.ioThreadCpus()).containsExactly(builders);
        }
        try (VirtualMachine vm = spinner().drive(new Drive("disk0", disk, true, false)).build()) {
            assertThat(vm.ioThreadCpus()).as("nothing pinned").containsExactly("");
        }
    }

    @Test
    void anAffinityForAVcpuThatDoesNotExistOrACpuThatIsNotOnlineIsRefusedBeforeBoot() throws Exception {
        assertThatThrownBy(() -> spinner().cpus(2).cpuAffinity(CpuAffinity.NONE.withVcpu(2, 0)).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("cpuAffinity: vCPU 2 does not exist: the VM has 2 vCPUs, numbered 0 to 1");
        int offline = CpuSet.online().stream().max().orElseThrow() + 1;
        assertThatThrownBy(() -> spinner().cpus(1).cpuAffinity(CpuAffinity.NONE.withVcpu(0, 0, offline)).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("cpuAffinity: host CPU " + offline + " of vCPU 0 is not online; this host's online CPUs are "
                        + CpuSet.online() + " (/sys/devices/system/cpu/online)");
        assertThatThrownBy(() -> spinner().cpuAffinity(CpuAffinity.NONE.withIoThreads(offline, offline + 1)).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("host CPUs " + offline + "-" + (offline + 1) + " of the I/O threads are not online");
        assertThatThrownBy(() -> CpuAffinity.NONE.withVcpu(0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("vCPU 0 is given no host CPUs; give at least one");
    }

    @Test
    void hugePageMemoryMustBeAMultipleOfThePageAndTheHostMustHaveThePagesFree() throws Exception {
        assertThatThrownBy(() -> spinner().memoryMib(65).hugePages(HugePages.SIZE_2M).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("hugePages: 65 MiB is not a multiple of the 2M huge page size; give a multiple of 2 MiB");
        long available = HugePageSize.SIZE_2M.availablePages();
        long pages = Math.max(available + 1, 16);
        assertThatThrownBy(() -> spinner().memoryMib(pages * 2).hugePages(HugePages.SIZE_2M).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("hugePages: guest memory on 2M huge pages needs " + pages + " free pages, and the host has "
                        + available)
                .hasMessageEndingWith("reserve more before starting the VM: echo " + (HugePageSize.SIZE_2M.reservedPages() + pages - available)
                        + " > /proc/sys/vm/nr_hugepages");
    }

    @Test
    void aVmOnHugePagesRunsFromThemAndRefusesASnapshot() throws Exception {
        try (HugePagePool pool = HugePagePool.reserve(HugePageSize.SIZE_2M, 32);
                VirtualMachine vm = spinner().memoryMib(64).hugePages(HugePages.SIZE_2M).build()) {
            assertThat(HugePageSize.SIZE_2M.availablePages()).as("the 32 pages reserved for the VM's mapping").isEqualTo(pool.before());
            vm.start();
            awaitExits(vm, 2);
            vm.pause();
            assertThatThrownBy(() -> vm.snapshot(SnapshotOptions.full(dir.resolve("state"), dir.resolve("memory"))))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("on huge pages cannot be snapshotted");
        }
    }

    private static Stream<Class<?>> classesIn(Type t) {
        return switch (t) {
            case Class<?> c -> Stream.of(c.isArray() ? c.componentType() : c);
            case ParameterizedType p -> Stream.concat(classesIn(p.getRawType()), Arrays.stream(p.getActualTypeArguments())
                    .flatMap(VirtualMachineTest::classesIn));
            case WildcardType w -> Stream.concat(Arrays.stream(w.getUpperBounds()), Arrays.stream(w.getLowerBounds()))
                    .flatMap(VirtualMachineTest::classesIn);
            default -> Stream.empty();
        };
    }

    private static boolean allowed(Class<?> c) {
        return c.isPrimitive() || c.getPackageName().startsWith("java.") || c.getPackageName().equals("dev.panamax.api");
    }
}
