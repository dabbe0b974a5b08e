package dev.panamax.control;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.api.CpuAffinity;
import dev.panamax.api.DiskFormat;
import dev.panamax.api.Drive;
import dev.panamax.api.HugePages;
import dev.panamax.api.NetworkInterface;
import dev.panamax.api.RateLimiter;
import dev.panamax.api.SharedFolder;
import dev.panamax.api.TokenBucket;
import dev.panamax.vmm.ConfigException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The config file schema: what it accepts, and each refusal naming the JSON path of the value. */
class VmConfigTest {
    @TempDir Path dir;
    private Path kernel;
    private Path initrd;
    private Path disk;

    @BeforeEach
    void files() throws Exception {
        kernel = Files.writeString(dir.resolve("vmlinux"), "kernel");
        initrd = Files.writeString(dir.resolve("initrd"), "initrd");
        disk = Files.write(dir.resolve("disk.img"), new byte[4096]);
    }

    private String boot() {
        return "\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\"}";
    }

    private void assertRefused(String json, String message) {
        assertThatThrownBy(() -> VmConfig.parse(json, "vm.json")).isInstanceOf(ConfigException.class).hasMessage(message);
    }

    private void assertRefusedStartingWith(String json, String message) {
        assertThatThrownBy(() -> VmConfig.parse(json, "vm.json")).isInstanceOf(ConfigException.class).hasMessageStartingWith(message);
    }

    @Test
    void aFirecrackerConfigFileIsRead() throws Exception {
        // As Firecracker's own examples write it, defaults and unused parts included.
        Path file = Files.writeString(dir.resolve("vm.json"), """
                {
                  "boot-source": {"kernel_image_path": "%s", "initrd_path": "%s", "boot_args": "quiet panamax.run=true"},
                  "drives": [{"drive_id": "rootfs", "path_on_host": "%s", "is_root_device": true, "is_read_only": false,
                              "partuuid": null, "cache_type": "Unsafe", "io_engine": "Sync", "rate_limiter": null, "socket": null}],
                  "machine-config": {"vcpu_count": 2, "mem_size_mib": 128, "smt": false, "track_dirty_pages": false,
                                     "huge_pages": "None"},
                  "cpu-config": null, "balloon": null, "vsock": null, "logger": null, "metrics": null, "mmds-config": null,
                  "entropy": null,
                  "network-interfaces": [{"iface_id": "eth0", "guest_mac": "AA:FC:00:00:00:02", "host_dev_name": "tap0"}]
                }
                """.formatted(kernel, initrd, disk));

        VmConfig config = VmConfig.read(file);

        assertThat(config.bootSource()).isEqualTo(new VmConfig.BootSource(kernel, initrd, "quiet panamax.run=true"));
        assertThat(config.machineConfig()).isEqualTo(new VmConfig.MachineConfig(2, 128, false));
        assertThat(config.drives()).containsExactly(new Drive("rootfs", disk, false, true));
        assertThat(config.networkInterfaces()).containsExactly(NetworkInterface.tap("eth0", "tap0", "aa:fc:00:00:00:02"));
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).as("what GET /vm/config answers reads back the same")
                .isEqualTo(config);
    }

    @Test
    void onlyTheBootSourceIsRequired() {
        VmConfig config = VmConfig.parse("{" + boot() + "}", "vm.json");
        assertThat(config.machineConfig()).isEqualTo(VmConfig.MachineConfig.DEFAULT);
        assertThat(config.bootSource().initrd()).isNull();
        assertThat(config.bootSource().bootArgs()).isNull();
        assertThat(config.drives()).isEmpty();
        assertRefused("{}", "boot-source: is required: a VM needs a kernel (kernel_image_path)");
    }

    @Test
    void typesAndKeysAreChecked() {
        assertRefused("[]", "expected a JSON object, not an array");
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": \"two\", \"mem_size_mib\": 128}}",
                "machine-config.vcpu_count: expected an integer, not the string \"two\"");
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 1.5, \"mem_size_mib\": 128}}",
                "machine-config.vcpu_count: expected an integer, not the number 1.5");
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 99999999999999999999, \"mem_size_mib\": 128}}",
                "machine-config.vcpu_count: 99999999999999999999 is out of range");
        assertRefused("{" + boot() + ", \"machine-config\": {\"mem_size_mib\": 128}}", "machine-config.vcpu_count: is required");
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": null, \"mem_size_mib\": 128}}",
                "machine-config.vcpu_count: must not be null");
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128, \"vcpus\": 2}}",
                "machine-config.vcpus: unknown key; the keys here are cpu_affinity, cpu_template, huge_pages, mem_size_mib, seccomp, smt,"
                        + " track_dirty_pages, vcpu_count");
        assertRefused("{" + boot() + ", \"machines\": {}}", "machines: unknown key; the keys here are balloon, boot-source,"
                + " cpu-config, drives, entropy, logger, machine-config, memory-hotplug, metrics, mmds-config, network-interfaces,"
                + " pmem, serial, shared-folders, vsock");
        assertRefused("{\"boot-source\": \"vmlinux\"}", "boot-source: expected a JSON object, not the string \"vmlinux\"");
        assertRefused("{" + boot() + ", \"drives\": {}}", "drives: expected an array, not an object");
        assertRefused("{" + boot() + ", \"drives\": [7]}", "drives[0]: expected a JSON object, not the number 7");
        assertRefused("{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": false}}",
                "boot-source.boot_args: expected a string, not false");
    }

    private String machine(String more) {
        return "{" + boot() + ", \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 128" + more + "}}";
    }

    @Test
    void hugePagesTakeFirecrackersValuesAndPanamaxs1G() {
        assertThat(VmConfig.parse(machine(", \"huge_pages\": \"2M\""), "vm.json").machineConfig().hugePages()).isEqualTo(HugePages.SIZE_2M);
        assertThat(VmConfig.parse(machine(", \"huge_pages\": \"None\""), "vm.json").machineConfig().hugePages()).isEqualTo(HugePages.NONE);
        VmConfig big = VmConfig.parse("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 1024, \"huge_pages\": \"1G\"}}",
                "vm.json");
        assertThat(big.machineConfig().hugePages()).isEqualTo(HugePages.SIZE_1G);
        assertThat(VmConfig.parse(Json.write(big.toJson()), "again")).as("written back as read").isEqualTo(big);
        assertRefused(machine(", \"huge_pages\": \"4M\""), "machine-config.huge_pages: '4M' is not a huge page size: give None, 2M or 1G");
        assertRefused(machine(", \"huge_pages\": \"1G\""),
                "machine-config.mem_size_mib: 128 MiB is not a multiple of the 1G huge page size; give a multiple of 1024 MiB");
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 129, \"huge_pages\": \"2M\"}}",
                "machine-config.mem_size_mib: 129 MiB is not a multiple of the 2M huge page size; give a multiple of 2 MiB");
    }

    @Test
    void cpuAffinityPinsVcpusAndIoThreadsByCpuLists() {
        VmConfig config = VmConfig.parse(machine(", \"cpu_affinity\": {\"vcpus\": {\"0\": \"1\", \"1\": \"0-1,5\"}, \"io_threads\": \"0\"}"),
                "vm.json");
        assertThat(config.machineConfig().cpuAffinity()).isEqualTo(CpuAffinity.NONE.withVcpu(0, 1).withVcpu(1, 0, 1, 5).withIoThreads(0));
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).as("written back as read").isEqualTo(config);
        assertThat(Json.write(config.toJson())).contains("\"cpu_affinity\":{\"vcpus\":{\"0\":\"1\",\"1\":\"0-1,5\"},\"io_threads\":\"0\"}");
        assertThat(VmConfig.parse(machine(", \"cpu_affinity\": {\"io_threads\": \"1\"}"), "vm.json").machineConfig().cpuAffinity())
                .isEqualTo(CpuAffinity.NONE.withIoThreads(1));
    }

    @Test
    void aBadCpuAffinityIsRefusedNamingWhere() {
        assertRefused(machine(", \"cpu_affinity\": {\"vcpus\": {\"2\": \"0\"}}"),
                "machine-config.cpu_affinity: vCPU 2 does not exist: the VM has 2 vCPUs, numbered 0 to 1");
        assertRefused(machine(", \"cpu_affinity\": {\"vcpus\": {\"first\": \"0\"}}"),
                "machine-config.cpu_affinity.vcpus.first: 'first' is not a vCPU index: the keys are vCPU numbers, 0 to 1");
        assertRefused(machine(", \"cpu_affinity\": {\"vcpus\": {\"0\": \"3-1\"}}"),
                "machine-config.cpu_affinity.vcpus.0: '3-1' is not a CPU list: the range 3-1 runs backwards");
        assertRefused(machine(", \"cpu_affinity\": {\"vcpus\": {\"0\": [1]}}"),
                "machine-config.cpu_affinity.vcpus.0: expected a string, not an array");
        assertRefused(machine(", \"cpu_affinity\": {\"io_threads\": \"\"}"),
                "machine-config.cpu_affinity.io_threads: the CPU list is empty; write CPUs like 0-3,8");
        assertRefused(machine(", \"cpu_affinity\": {\"io\": \"0\"}"),
                "machine-config.cpu_affinity.io: unknown key; the keys here are io_threads, vcpus");
    }

    @Test
    void theEntropyDeviceIsReadAsFirecrackerWritesItWithItsRateLimiter() {
        VmConfig config = VmConfig.parse("{" + boot() + ", \"entropy\": {\"rate_limiter\": {\"bandwidth\": {\"size\": 1000,"
                + " \"one_time_burst\": 0, \"refill_time\": 100}, \"ops\": {\"size\": 10, \"refill_time\": 1000}}}}", "vm.json");
        assertThat(config.entropy()).isEqualTo(new VmConfig.Entropy(new RateLimiter(new TokenBucket(1000, 0, 100), new TokenBucket(10, 0, 1000))));
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).isEqualTo(config);
        VmConfig unlimited = VmConfig.parse("{" + boot() + ", \"entropy\": {}}", "vm.json");
        assertThat(unlimited.entropy()).as("{}: a device without a limit").isEqualTo(new VmConfig.Entropy(null));
        assertThat(unlimited.toJson().get("entropy")).isEqualTo(java.util.Map.of());
        assertThat(VmConfig.parse("{" + boot() + ", \"entropy\": null}", "vm.json").entropy()).as("null: none").isNull();
        assertThat(VmConfig.parse("{" + boot() + "}", "vm.json").toJson()).doesNotContainKey("entropy");
        assertRefused("{" + boot() + ", \"entropy\": {\"rate_limiter\": {\"ops\": {\"size\": 5, \"refill_time\": -1}}}}",
                "entropy.rate_limiter.ops.refill_time: -1 is not an integer from 0 to " + TokenBucket.MAX_REFILL_TIME_MILLIS);
        assertRefused("{" + boot() + ", \"entropy\": {\"rate\": 1}}", "entropy.rate: unknown key; the keys here are rate_limiter");
    }

    @Test
    void aVsockIsReadAsFirecrackerWritesItAndChecked() {
        Path uds = dir.resolve("v.sock");
        VmConfig config = VmConfig.parse("{" + boot() + ", \"vsock\": {\"vsock_id\": \"vsock0\", \"guest_cid\": 3, \"uds_path\": \""
                + uds + "\"}}", "vm.json");
        assertThat(config.vsock()).isEqualTo(new VmConfig.Vsock(3, uds));
        assertThat(config.toJson().get("vsock")).isEqualTo(java.util.Map.of("guest_cid", 3L, "uds_path", uds.toString()));
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).isEqualTo(config);
        assertThat(VmConfig.parse("{" + boot() + ", \"vsock\": null}", "vm.json").vsock()).as("null: none").isNull();
        assertThat(VmConfig.parse("{" + boot() + "}", "vm.json").toJson()).doesNotContainKey("vsock");
        assertRefused("{" + boot() + ", \"vsock\": {\"guest_cid\": 2, \"uds_path\": \"" + uds + "\"}}",
                "vsock.guest_cid: 2 is not a guest CID: use 3 to 4294967294 (0 to 2 are the hypervisor's, the local and the host's,"
                        + " 4294967295 means any)");
        assertRefused("{" + boot() + ", \"vsock\": {\"guest_cid\": 3}}", "vsock.uds_path: is required");
        assertRefused("{" + boot() + ", \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"" + dir.resolve("no/v.sock") + "\"}}",
                "vsock.uds_path: the directory of " + dir.resolve("no/v.sock") + " does not exist");
        String tooLong = "/tmp/" + "y".repeat(95);
        assertRefusedStartingWith("{" + boot() + ", \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"" + tooLong + "\"}}",
                "vsock.uds_path: " + tooLong + " is 100 bytes long; a vsock socket path may have 96");
        assertRefusedStartingWith("{" + boot() + ", \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"" + uds + "\", \"cid\": 3}}",
                "vsock.cid: unknown key");
        assertRefused("{" + boot() + ", \"vsock\": {\"vsock_id\": 1, \"guest_cid\": 3, \"uds_path\": \"" + uds + "\"}}",
                "vsock.vsock_id: expected a string, not the number 1");
    }

    @Test
    void sharedFoldersAreReadCheckedAndWrittenBack() throws Exception {
        Path data = Files.createDirectory(dir.resolve("data"));
        Path docs = Files.createDirectory(dir.resolve("docs"));
        VmConfig config = VmConfig.parse("{" + boot() + ", \"shared-folders\": [{\"path\": \"" + data + "\", \"tag\": \"data\"},"
                + " {\"path\": \"" + docs + "\", \"tag\": \"docs\", \"read_only\": true, \"cache\": \"always\"},"
                + " {\"path\": \"" + dir + "\", \"tag\": \"live\", \"cache\": \"none\"}]}", "vm.json");
        assertThat(config.sharedFolders()).containsExactly(new SharedFolder(data, "data", false), new SharedFolder(docs, "docs", true,
                SharedFolder.Cache.ALWAYS), new SharedFolder(dir, "live", false, SharedFolder.Cache.NONE));
        assertThat(config.sharedFolders().getFirst().cache()).as("the default").isEqualTo(SharedFolder.Cache.AUTO);
        assertThat(config.toJson().get("shared-folders")).isEqualTo(List.of(
                java.util.Map.of("path", data.toString(), "tag", "data", "read_only", false, "cache", "auto"),
                java.util.Map.of("path", docs.toString(), "tag", "docs", "read_only", true, "cache", "always"),
                java.util.Map.of("path", dir.toString(), "tag", "live", "read_only", false, "cache", "none")));
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).isEqualTo(config);
        assertThat(VmConfig.parse("{" + boot() + ", \"shared-folders\": null}", "vm.json").sharedFolders()).as("null: none").isEmpty();
        assertThat(VmConfig.parse("{" + boot() + "}", "vm.json").toJson()).doesNotContainKey("shared-folders");

        String shares = "{" + boot() + ", \"shared-folders\": [%s]}";
        assertRefused(shares.formatted("{\"path\": \"" + data + "\", \"tag\": \"\"}"), "shared-folders[0].tag: a share's tag may not be empty");
        assertRefused(shares.formatted("{\"path\": \"" + data + "\", \"tag\": \"" + "t".repeat(37) + "\"}"),
                "shared-folders[0].tag: the share tag '" + "t".repeat(37) + "' is 37 bytes of UTF-8; a tag has at most 36");
        assertRefused(shares.formatted("{\"path\": \"" + data + "\", \"tag\": \"a\\u0000b\"}"),
                "shared-folders[0].tag: the share tag 'a?b' has a NUL character");
        assertRefused(shares.formatted("{\"path\": \"" + data + "\", \"tag\": \"x\"}, {\"path\": \"" + docs + "\", \"tag\": \"x\"}"),
                "shared-folders[1]: another shared folder has the tag 'x' already; tags must be unique");
        assertRefused(shares.formatted("{\"path\": \"" + dir.resolve("none") + "\", \"tag\": \"x\"}"),
                "shared-folders[0].path: " + dir.resolve("none") + " does not exist; give the path of a directory to share");
        assertRefused(shares.formatted("{\"path\": \"" + disk + "\", \"tag\": \"x\"}"),
                "shared-folders[0].path: " + disk + " is not a directory; a shared folder is a directory");
        assertRefused(shares.formatted("{\"path\": \"" + data + "\"}"), "shared-folders[0].tag: is required");
        assertRefusedStartingWith(shares.formatted("{\"path\": \"" + data + "\", \"tag\": \"x\", \"readonly\": true}"),
                "shared-folders[0].readonly: unknown key");
        assertRefused("{" + boot() + ", \"shared-folders\": {}}", "shared-folders: expected an array of shared folders, not an object");
        assertRefused(shares.formatted("{\"path\": \"" + data + "\", \"tag\": \"x\", \"cache\": \"never\"}"),
                "shared-folders[0].cache: 'never' is not a cache mode: use auto, none or always");
        assertRefused(shares.formatted("{\"path\": \"" + data + "\", \"tag\": \"x\", \"cache\": true}"),
                "shared-folders[0].cache: expected a string, not true");
        List<String> nine = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            nine.add("{\"path\": \"" + data + "\", \"tag\": \"t" + i + "\", \"read_only\": true}");
        }
        assertRefused(shares.formatted(String.join(", ", nine)),
                "shared-folders[8]: a VM has at most 8 shared folders; share a common parent directory instead");
    }

    @Test
    void firecrackerFeaturesPanamaxLacksAreRefusedUnlessInert() {
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 128, \"smt\": true}}",
                "machine-config.smt: Panamax gives each vCPU a core of its own, without SMT; leave it out or false");
        assertRefused("{" + boot() + ", \"drives\": [{\"drive_id\": \"d\", \"path_on_host\": \"" + disk
                + "\", \"is_root_device\": false, \"io_engine\": \"Async\"}]}",
                "drives[0].io_engine: Panamax has one I/O engine; leave it out or \"Sync\"");
    }

    @Test
    void metricsGoWhereFirecrackersMetricsKeySays() {
        assertThat(VmConfig.parse("{" + boot() + ", \"metrics\": {\"metrics_path\": \"/run/vm/metrics.fifo\"}}", "vm.json").metricsPath())
                .isEqualTo(Path.of("/run/vm/metrics.fifo"));
        assertThat(VmConfig.parse("{" + boot() + ", \"metrics\": null}", "vm.json").metricsPath()).isNull();
        assertThat(VmConfig.parse("{" + boot() + "}", "vm.json").metricsPath()).isNull();
        assertRefused("{" + boot() + ", \"metrics\": {\"path\": \"m\"}}", "metrics.path: unknown key; the keys here are metrics_path");
        assertRefused("{" + boot() + ", \"metrics\": {\"metrics_path\": 1}}", "metrics.metrics_path: expected a string, not the number 1");
        assertRefused("{" + boot() + ", \"metrics\": {}}", "metrics.metrics_path: is required");
    }

    @Test
    void valuesAreChecked() {
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 0, \"mem_size_mib\": 128}}",
                "machine-config.vcpu_count: 0 vCPUs is out of range: a guest has 1 to 254");
        assertRefused("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 8}}",
                "machine-config.mem_size_mib: 8 MiB of guest memory is too little; Linux needs at least 32 MiB");
        assertThatThrownBy(() -> VmConfig.parse("{" + boot() + ", \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 1000000000}}",
                "vm.json")).hasMessageStartingWith("machine-config.mem_size_mib: 1000000000 MiB is more than this host's");
        assertRefused("{\"boot-source\": {\"kernel_image_path\": \"" + dir.resolve("nope") + "\"}}",
                "boot-source.kernel_image_path: " + dir.resolve("nope") + " does not exist");
        assertRefused("{\"boot-source\": {\"kernel_image_path\": \"" + dir + "\"}}",
                "boot-source.kernel_image_path: " + dir + " is a directory, not a file");
        assertRefused("{\"boot-source\": {\"kernel_image_path\": \"\"}}", "boot-source.kernel_image_path: the path is empty");
        assertRefused("{\"boot-source\": {\"kernel_image_path\": \"" + kernel + "\", \"boot_args\": \"a\\nb\"}}",
                "boot-source.boot_args: has a control character (U+000A) at index 1; a kernel command line is one line of printable text");
    }

    @Test
    void drivesAreChecked() throws Exception {
        String drive = "{\"drive_id\": \"%s\", \"path_on_host\": \"%s\", \"is_root_device\": %s, \"is_read_only\": %s}";
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted("root fs", disk, true, false) + "]}",
                "drives[0].drive_id: 'root fs' is not a valid id: use 1 to 64 letters, digits or underscores");
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted("a", dir.resolve("none.img"), true, false) + "]}",
                "drives[0].path_on_host: " + dir.resolve("none.img") + " does not exist; give the path of a disk image file");
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted("a", dir, true, false) + "]}",
                "drives[0].path_on_host: " + dir + " is not a regular file; give the path of a disk image file");
        assertRefused("{" + boot() + ", \"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"" + disk + "\"}]}",
                "drives[0].is_root_device: is required");
        Path other = Files.write(dir.resolve("other.img"), new byte[512]);
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted("a", disk, false, false) + ", "
                + drive.formatted("a", other, false, false) + "]}",
                "drives[1]: another drive is already called 'a'; drive ids must be unique");
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted("a", disk, true, false) + ", "
                + drive.formatted("b", other, true, false) + "]}",
                "drives[1]: drive 'a' is the root device already; only one drive can be the root device");
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted("a", disk, false, true) + ", "
                + drive.formatted("b", dir.resolve(".").resolve("disk.img"), false, false) + "]}",
                "drives[1]: drive 'b' uses the image " + dir.resolve(".").resolve("disk.img") + " that drive 'a' uses,"
                        + " and one of them may write it; give each a copy, or make both read-only");
        VmConfig shared = VmConfig.parse("{" + boot() + ", \"drives\": [" + drive.formatted("a", disk, false, true) + ", "
                + drive.formatted("b", disk, false, true) + "]}", "vm.json");
        assertThat(shared.drives()).as("two read-only drives may share an image").hasSize(2);
    }

    /** An image in a format Panamax cannot read is refused by name, unless the drive's format is given: raw reads it as it is. */
    @Test
    void aDriveInAForeignFormatIsRefusedUnlessItsFormatIsGiven() throws Exception {
        byte[] qed = new byte[4096];
        ByteBuffer.wrap(qed).put("QED\0".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        Path image = Files.write(dir.resolve("disk.qed"), qed);
        String drive = "{\"drive_id\": \"a\", \"path_on_host\": \"" + image + "\", \"is_root_device\": false%s}";
        assertRefusedStartingWith("{" + boot() + ", \"drives\": [" + drive.formatted("") + "]}",
                "drives[0].path_on_host: " + image + " is a QED image (QEMU enhanced disk), which Panamax cannot read yet; convert it with");
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted(", \"format\": \"qed\"") + "]}",
                "drives[0].format: Panamax cannot read qed images yet; use raw, qcow2, vhd, vmdk, vdi or vhdx (convert with qemu-img first)");
        assertRefused("{" + boot() + ", \"drives\": [" + drive.formatted(", \"format\": \"floppy\"") + "]}",
                "drives[0].format: unknown image format 'floppy'; use raw, qcow2, vhd, vmdk, vdi or vhdx");
        VmConfig config = VmConfig.parse("{" + boot() + ", \"drives\": [" + drive.formatted(", \"format\": \"raw\"") + "]}", "vm.json");
        assertThat(config.drives()).containsExactly(new Drive("a", image, false, false).withFormat(DiskFormat.RAW));
        assertThat(Json.write(config.toJson())).contains("\"format\":\"raw\"");
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).as("the format is written back").isEqualTo(config);
    }

    /** A VM with {@code pciDrives} and {@code mmioDrives} read-only drives on one image, and one user-mode network interface. */
    private String devices(int vcpus, int pciDrives, int mmioDrives) {
        List<String> drives = new ArrayList<>();
        for (int i = 0; i < pciDrives + mmioDrives; i++) {
            drives.add("{\"drive_id\": \"d" + i + "\", \"path_on_host\": \"" + disk + "\", \"is_root_device\": false,"
                    + " \"is_read_only\": true" + (i < pciDrives ? "" : ", \"transport\": \"mmio\"") + "}");
        }
        return "{" + boot() + ", \"machine-config\": {\"vcpu_count\": " + vcpus + ", \"mem_size_mib\": 128}, \"drives\": ["
                + String.join(", ", drives) + "], \"network-interfaces\": [{\"iface_id\": \"n0\", \"backend\": \"user\"}]}";
    }

    @Test
    void theDevicesOnPciFitTheBusAndTheInterruptVectors() {
        assertThat(VmConfig.parse(devices(1, 29, 0), "vm.json").drives()).as("30 devices and pvpanic fill the bus").hasSize(29);
        assertRefused(devices(1, 30, 0), "drives and network-interfaces: 30 drives on PCI and 1 network interface are 31 PCI"
                + " devices, more than the 30 slots the bus has for them (of its 31, one holds the pvpanic device); put drives on virtio-mmio");
        assertThat(VmConfig.parse(devices(254, 8, 0), "vm.json").drives()).as("8 drives of 255 vectors, 4 for the interface: 2044")
                .hasSize(8);
        assertRefused(devices(254, 9, 0), "drives and network-interfaces: with 254 vCPUs, 9 drives on PCI and 1 network interface"
                + " need 2299 MSI-X vectors (a drive on PCI one per vCPU and one more, a network interface 4), more than a VM's 2048;"
                + " use fewer vCPUs, or put drives on virtio-mmio");
        assertThat(VmConfig.parse(devices(254, 8, 8), "vm.json").drives()).as("virtio-mmio drives take neither").hasSize(16);
    }

    @Test
    void networkInterfacesAreChecked() {
        String nic = "{\"iface_id\": \"%s\", \"host_dev_name\": \"%s\", \"guest_mac\": \"%s\"}";
        assertRefused("{" + boot() + ", \"network-interfaces\": [" + nic.formatted("eth0", "tap/0", "06:00:00:00:00:01") + "]}",
                "network-interfaces[0].host_dev_name: 'tap/0' is not a network device name: use 1 to 15 characters without"
                        + " '/', ':' or spaces");
        assertRefused("{" + boot() + ", \"network-interfaces\": [" + nic.formatted("eth0", "a-very-long-tap-name", "06:00:00:00:00:01") + "]}",
                "network-interfaces[0].host_dev_name: 'a-very-long-tap-name' is not a network device name: use 1 to 15"
                        + " characters without '/', ':' or spaces");
        assertRefused("{" + boot() + ", \"network-interfaces\": [" + nic.formatted("eth0", "tap0", "06:00:00:00:01") + "]}",
                "network-interfaces[0].guest_mac: '06:00:00:00:01' is not a MAC address: write six hex pairs, like 06:00:ac:10:00:02");
        assertRefused("{" + boot() + ", \"network-interfaces\": [" + nic.formatted("eth0", "tap0", "01:00:5e:00:00:01") + "]}",
                "network-interfaces[0].guest_mac: 01:00:5e:00:00:01 is a multicast address; a network interface needs a unicast"
                        + " one (an even first byte, like 06)");
        assertRefused("{" + boot() + ", \"network-interfaces\": [" + nic.formatted("eth0", "tap0", "06:00:00:00:00:01") + ", "
                + nic.formatted("eth1", "tap0", "06:00:00:00:00:02") + "]}",
                "network-interfaces[1]: network interface 'eth0' uses the host device tap0 already; give each interface its own");
        assertRefused("{" + boot() + ", \"network-interfaces\": [" + nic.formatted("eth0", "tap0", "06:00:00:00:00:01") + ", "
                + nic.formatted("eth1", "tap1", "06:00:00:00:00:01") + "]}",
                "network-interfaces[1]: network interface 'eth0' has the MAC address 06:00:00:00:00:01 already; give each"
                        + " interface its own");
    }

    @Test
    void aUserModeInterfaceIsPanamaxsBackendKeyWithoutAHostDevice() {
        VmConfig config = VmConfig.parse("{" + boot() + ", \"network-interfaces\": [{\"iface_id\": \"eth0\", \"backend\": \"user\"},"
                + " {\"iface_id\": \"eth1\", \"backend\": \"tap\", \"host_dev_name\": \"tap1\"}]}", "vm.json");
        assertThat(config.networkInterfaces()).containsExactly(NetworkInterface.user("eth0", null),
                NetworkInterface.tap("eth1", "tap1", null));
        assertThat(config.networkInterfaces().get(0).isUserMode()).isTrue();
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).isEqualTo(config);
        assertRefused("{" + boot() + ", \"network-interfaces\": [{\"iface_id\": \"eth0\", \"backend\": \"user\","
                + " \"host_dev_name\": \"tap0\"}]}", "network-interfaces[0].host_dev_name: a user-mode interface (\"backend\": \"user\")"
                + " has no tap; leave host_dev_name out, or make the backend \"tap\"");
        assertRefused("{" + boot() + ", \"network-interfaces\": [{\"iface_id\": \"eth0\", \"backend\": \"slirp\"}]}",
                "network-interfaces[0].backend: 'slirp' is not a network backend: use \"tap\" (with host_dev_name) or \"user\""
                        + " (passt's user-mode network)");
    }

    @Test
    void anInterfaceMayBeOnAnInheritedTapDescriptorOrARunningPasst() {
        VmConfig config = VmConfig.parse("{" + boot() + ", \"network-interfaces\": [{\"iface_id\": \"eth0\", \"tap_fd\": 7},"
                + " {\"iface_id\": \"eth1\", \"backend\": \"user\", \"passt_socket\": \"/run/passt.sock\"}]}", "vm.json");
        assertThat(config.networkInterfaces()).containsExactly(NetworkInterface.tapDescriptor("eth0", 7, null),
                NetworkInterface.passt("eth1", Path.of("/run/passt.sock"), null));
        assertThat(config.networkInterfaces()).noneMatch(NetworkInterface::startsPasst);
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).isEqualTo(config);
        String nics = "{" + boot() + ", \"network-interfaces\": [%s]}";
        assertRefused(nics.formatted("{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"tap_fd\": 7}"),
                "network-interfaces[0].tap_fd: give a tap by name (host_dev_name) or by descriptor (tap_fd), not both");
        assertRefused(nics.formatted("{\"iface_id\": \"eth0\", \"tap_fd\": -1}"), "network-interfaces[0].tap_fd: -1 is not a file descriptor number");
        assertRefusedStartingWith(nics.formatted("{\"iface_id\": \"eth0\", \"tap_fd\": \"7\"}"), "network-interfaces[0].tap_fd: expected an integer");
        assertRefusedStartingWith(nics.formatted("{\"iface_id\": \"eth0\", \"backend\": \"user\", \"tap_fd\": 7}"),
                "network-interfaces[0].tap_fd: a user-mode interface (\"backend\": \"user\") has no tap");
        assertRefused(nics.formatted("{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"passt_socket\": \"/p\"}"),
                "network-interfaces[0].passt_socket: passt_socket belongs to a user-mode interface: add \"backend\": \"user\"");
        assertRefusedStartingWith(nics.formatted("{\"iface_id\": \"eth0\", \"backend\": \"user\", \"passt_socket\": \"\"}"),
                "network-interfaces[0].passt_socket: is empty");
        assertRefusedStartingWith(nics.formatted("{\"iface_id\": \"eth0\", \"tap_fd\": 7}, {\"iface_id\": \"eth1\", \"tap_fd\": 7}"),
                "network-interfaces[1]: network interface 'eth0' uses the tap descriptor 7 already");
    }

    @Test
    void configFilesThatCannotBeReadAreNamed() throws Exception {
        Path missing = dir.resolve("missing.json");
        assertThatThrownBy(() -> VmConfig.read(missing)).hasMessage(missing + ": cannot read the config file: it does not exist");
        Path latin1 = Files.write(dir.resolve("latin1.json"), new byte[] {'{', '"', (byte) 0xe9, '"', '}'});
        assertThatThrownBy(() -> VmConfig.read(latin1)).hasMessage(latin1 + ": is not UTF-8 text");
        Path broken = Files.writeString(dir.resolve("broken.json"), "{\n  \"boot-source\": {\n}");
        assertThatThrownBy(() -> VmConfig.read(broken))
                .hasMessage(broken + ": malformed JSON at line 3, column 2: expected ',' or '}' after the value of \"boot-source\","
                        + " found the end of the text");
    }

    @Test
    void rateLimitersAsFirecrackersDocsWriteThemAreReadAndWrittenBack() {
        // The drive of Firecracker's patch-block example, and the interface of its patch-network-interface one.
        VmConfig config = VmConfig.parse("{" + boot() + ", \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"" + disk
                + "\", \"is_root_device\": true, \"is_read_only\": false, \"rate_limiter\": {\"bandwidth\": {\"size\": 1000,"
                + " \"one_time_burst\": 100, \"refill_time\": 10}, \"ops\": {\"size\": 5, \"refill_time\": 100}}}],"
                + " \"network-interfaces\": [{\"iface_id\": \"iface_1\", \"host_dev_name\": \"fctap1\", \"guest_mac\": \"06:00:c0:a8:34:02\","
                + " \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1024, \"one_time_burst\": 1048576, \"refill_time\": 1000}},"
                + " \"tx_rate_limiter\": {\"ops\": {\"size\": 1024, \"one_time_burst\": 1048576, \"refill_time\": 1000}}}]}", "vm.json");
        assertThat(config.drives().getFirst().rateLimiter())
                .isEqualTo(new RateLimiter(new TokenBucket(1000, 100, 10), new TokenBucket(5, 0, 100)));
        NetworkInterface nic = config.networkInterfaces().getFirst();
        assertThat(nic.rxRateLimiter()).isEqualTo(new RateLimiter(new TokenBucket(1024, 1048576, 1000), null));
        assertThat(nic.txRateLimiter()).isEqualTo(new RateLimiter(null, new TokenBucket(1024, 1048576, 1000)));
        assertThat(VmConfig.parse(Json.write(config.toJson()), "again")).as("GET /vm/config writes them back").isEqualTo(config);

        VmConfig none = VmConfig.parse("{" + boot() + ", \"drives\": [{\"drive_id\": \"d\", \"path_on_host\": \"" + disk
                + "\", \"is_root_device\": false, \"rate_limiter\": null}]}", "vm.json");
        assertThat(none.drives().getFirst().rateLimiter()).isNull();
        assertThat(Json.write(none.toJson())).doesNotContain("rate_limiter");
    }

    @Test
    void badRateLimitersAreRefusedNamingTheField() {
        String drive = "{" + boot() + ", \"drives\": [{\"drive_id\": \"d\", \"path_on_host\": \"" + disk
                + "\", \"is_root_device\": false, \"rate_limiter\": %s}]}";
        assertRefused(drive.formatted("{\"bandwidth\": {\"size\": -1, \"refill_time\": 100}}"),
                "drives[0].rate_limiter.bandwidth.size: -1 is not an integer from 0 to 9223372036854775807");
        assertRefused(drive.formatted("{\"ops\": {\"size\": 10, \"refill_time\": 1.5}}"),
                "drives[0].rate_limiter.ops.refill_time: expected an integer, not the number 1.5");
        assertRefused(drive.formatted("{\"ops\": {\"refill_time\": 100}}"), "drives[0].rate_limiter.ops.size: is required");
        assertRefused(drive.formatted("{\"ops\": {\"size\": 10}}"), "drives[0].rate_limiter.ops.refill_time: is required");
        assertRefused(drive.formatted("{\"ops\": {\"size\": 10, \"refill_time\": 100, \"one_time_burst\": -5}}"),
                "drives[0].rate_limiter.ops.one_time_burst: -5 is not an integer from 0 to 9223372036854775807");
        assertRefused(drive.formatted("{\"ops\": {\"size\": 10, \"refill_time\": 10000000000000000}}"),
                "drives[0].rate_limiter.ops.refill_time: 10000000000000000 is not an integer from 0 to 9223372036854");
        assertRefused(drive.formatted("{\"bandwidth\": {\"size\": 10, \"refill_time\": 100, \"rate\": 3}}"),
                "drives[0].rate_limiter.bandwidth.rate: unknown key; the keys here are one_time_burst, refill_time, size");
        assertRefused(drive.formatted("{\"iops\": {\"size\": 10, \"refill_time\": 100}}"),
                "drives[0].rate_limiter.iops: unknown key; the keys here are bandwidth, ops");
        assertRefused(drive.formatted("\"10M\""), "drives[0].rate_limiter: expected a JSON object, not the string \"10M\"");
        assertRefused("{" + boot() + ", \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\","
                + " \"tx_rate_limiter\": {\"bandwidth\": {\"size\": \"1k\", \"refill_time\": 100}}}]}",
                "network-interfaces[0].tx_rate_limiter.bandwidth.size: expected an integer, not the string \"1k\"");
    }
}
