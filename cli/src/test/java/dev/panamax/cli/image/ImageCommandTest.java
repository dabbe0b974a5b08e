package dev.panamax.cli.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.cli.CliRun;
import dev.panamax.cli.common.UserError;
import dev.panamax.storage.DamagedImages;
import dev.panamax.storage.ForeignImages;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.QemuImg;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax image} end to end: exit statuses, output and the files it leaves. */
class ImageCommandTest {
    @TempDir
    Path dir;

    private static CliRun panamax(String... args) {
        return CliRun.panamax(args);
    }

    private String p(String name) {
        return dir.resolve(name).toString();
    }

    @Test
    void createInfoAndJson() {
        CliRun r = panamax("image", "create", "-f", "qcow2", p("a.qcow2"), "1.5G");
        assertThat(r.status()).as(r.err()).isZero();
        r = panamax("image", "info", p("a.qcow2"));
        assertThat(r.out()).contains("file format: qcow2", "virtual size: 1.5 GiB (1610612736 bytes)", "cluster_size: 65536");
        r = panamax("image", "info", "--json", p("a.qcow2"));
        assertThat(r.out()).contains("\"format\": \"qcow2\"", "\"virtual-size\": 1610612736");
    }

    @Test
    void qcow2OptionsChooseZstdCompressionAndExtendedL2() throws Exception {
        CliRun r = panamax("image", "create", "-o", "compression_type=zstd,extended_l2=on", p("z.qcow2"), "4M");
        assertThat(r.status()).as(r.err()).isZero();
        r = panamax("image", "info", p("z.qcow2"));
        assertThat(r.out()).contains("compression type: zstd", "extended l2: true");
        assertThat(panamax("image", "info", "--json", p("z.qcow2")).out())
                .contains("\"compression-type\": \"zstd\"", "\"extended-l2\": true");
        assertThat(panamax("image", "check", p("z.qcow2")).status()).isZero();

        byte[] data = new byte[3 << 20];
        for (int i = 0; i < data.length; i++) data[i] = (byte) (i / 4096 % 5);
        Files.write(dir.resolve("src.raw"), data);
        r = panamax("image", "convert", "-q", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "-o", "extended_l2=on",
                p("src.raw"), p("c.qcow2"));
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(panamax("image", "info", p("c.qcow2")).out()).contains("compression type: zstd", "extended l2: true");
        assertThat(panamax("image", "check", p("c.qcow2")).status()).isZero();
        assertThat(Files.size(dir.resolve("c.qcow2"))).isLessThan(data.length / 4);
        r = panamax("image", "convert", "-q", "-O", "raw", p("c.qcow2"), p("back.raw"));
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(Files.readAllBytes(dir.resolve("back.raw"))).isEqualTo(data);

        r = panamax("image", "create", "-o", "compression_type=lz4", p("bad.qcow2"), "1M");
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("compression type 'lz4' is not known; use zlib or zstd");
        r = panamax("image", "create", "-o", "preallocation=full", p("bad.qcow2"), "1M");
        assertThat(r.err()).contains("-o preallocation is not a known option");
        r = panamax("image", "create", "-f", "raw", "-o", "extended_l2=on", p("bad.raw"), "1M");
        assertThat(r.err()).contains("-o options are for qcow2 images");
        r = panamax("image", "create", "-c", "4K", "-o", "extended_l2=on", p("bad.qcow2"), "1M");
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("extended L2 entries need a cluster size of at least 16384 bytes");
    }

    @Test
    void badInputIsOneLineAndStatusTwo() {
        CliRun r = panamax("image", "create", p("x.qcow2"), "12Q");
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("'12Q' is not a size").doesNotContain("Exception");
        r = panamax("image", "info", p("missing.qcow2"));
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err().strip()).startsWith("panamax: ").contains("does not exist").doesNotContain("\n");
        assertThat(panamax("image", "create", p("base.qcow2"), "1M").status()).isZero();
        r = panamax("image", "create", "-f", "raw", "-b", p("base.qcow2"), p("y.raw"), "1M");
        assertThat(r.status()).as(r.err()).isEqualTo(2);
        assertThat(r.err()).contains("only qcow2 images can have a backing file").doesNotContain("Exception");
    }

    @Test
    void onlyTheLibrarysRefusalsAreTheUsersFault() {
        assertThatThrownBy(() -> ImageCommand.run(() -> {
            throw new ImageRequestException("snapshot name must not be empty");
        })).isInstanceOf(UserError.class).hasMessage("snapshot name must not be empty");
        IllegalArgumentException bug = new IllegalArgumentException("empty extent at 0");
        assertThatThrownBy(() -> ImageCommand.run(() -> {
            throw bug;
        })).as("a bug stays a bug: the command line reports it as an internal error").isSameAs(bug);
    }

    @Test
    void convertMapCheckRepairAndSnapshots() throws Exception {
        Path raw = dir.resolve("src.raw");
        byte[] data = new byte[8 << 20];
        new Random(7).nextBytes(data);
        java.util.Arrays.fill(data, 1 << 20, 5 << 20, (byte) 0); // a zero range that must stay unallocated
        Files.write(raw, data);
        assertThat(panamax("image", "convert", "-q", raw.toString(), p("c.qcow2")).status()).isZero();
        CliRun map = panamax("image", "map", p("c.qcow2"));
        assertThat(map.out()).contains("0x0                0x100000                0  data",
                "0x100000           0x400000                -  zero (unallocated)");
        assertThat(panamax("image", "check", p("c.qcow2")).status()).isZero();

        assertThat(panamax("image", "snapshot", "-c", "before", p("c.qcow2")).status()).isZero();
        try (var disk = dev.panamax.storage.image.Images.open(dir.resolve("c.qcow2"), dev.panamax.storage.image.Images.OpenOptions.readWrite())) {
            disk.write(0, ByteBuffer.wrap(new byte[4096]));
        }
        assertThat(panamax("image", "snapshot", "-l", p("c.qcow2")).out()).contains("before");
        assertThat(panamax("image", "snapshot", "-a", "before", p("c.qcow2")).status()).isZero();
        assertThat(panamax("image", "convert", "-q", "-O", "raw", p("c.qcow2"), p("back.raw")).status()).isZero();
        assertThat(Files.readAllBytes(dir.resolve("back.raw"))).isEqualTo(data);
        assertThat(panamax("image", "snapshot", "-d", "before", p("c.qcow2")).status()).isZero();
        assertThat(panamax("image", "check", p("c.qcow2")).status()).isZero();
        assertThat(panamax("image", "repair", p("c.qcow2")).out()).contains("No errors were found");
    }

    /**
     * convert --salvage: status 3, each lost range on stderr with its offset, length and reason, the
     * rest copied; without it the same conversion fails with status 2 on the first damaged cluster;
     * an intact source salvages with status 0 and nothing on stderr.
     */
    @Test
    void salvageListsLostRangesAndExitsThree() throws Exception {
        DamagedImages.Damaged d = DamagedImages.badL2Entries(dir);
        CliRun strict = panamax("image", "convert", "-q", "-O", "raw", d.image().toString(), p("strict.raw"));
        assertThat(strict.status()).isEqualTo(2);
        assertThat(strict.err()).contains("on the L1 table").doesNotContain("Exception");
        CliRun r = panamax("image", "convert", "-q", "--salvage", "-O", "qcow2", d.image().toString(), p("salvaged.qcow2"));
        assertThat(r.status()).as(r.err()).isEqualTo(3);
        assertThat(r.err()).contains("lost guest range 36864+4096 (0x9000-0xa000), zeros in the output:",
                "lost guest range 4206592+4096 (0x403000-0x404000)", "past the end of the file",
                "lost guest range 6303744+4096 (0x603000-0x604000)", "not a valid cluster",
                ": 12288 bytes in 3 ranges could not be read and are zeros");
        QemuImg.img("check", p("salvaged.qcow2")).expectSuccess("qemu-img check");

        Path intact = DamagedImages.qcow2(dir, "intact.qcow2", "zlib");
        r = panamax("image", "convert", "-q", "--salvage", "-O", "raw", intact.toString(), p("intact.raw"));
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).isEmpty();
        assertThat(Files.readAllBytes(dir.resolve("intact.raw"))).isEqualTo(DamagedImages.pattern());
    }

    /** repair --rebuild-tables: the counts it reports, status 0 when all is in place, 4 with orphans, 2 for misuse. */
    @Test
    void rebuildTablesReportsWhatItRecovered() throws Exception {
        Path image = DamagedImages.overwrittenL1Entry(dir).image();
        CliRun r = panamax("image", "repair", "--rebuild-tables", image.toString());
        assertThat(r.status()).as(r.out() + r.err()).isZero();
        assertThat(r.out()).contains("the damaged original is kept as " + image + ".damaged",
                "L2 tables found by scanning the file: 4; in place: 4 (3 named by surviving L1 entries, 1 put in the only"
                        + " slot left); orphaned: 0.", "Dropped: L1 entry 1 (0x8000000000001234) names no L2 table",
                "No errors were found");
        assertThat(Files.exists(Path.of(image + ".damaged"))).isTrue();
        r = panamax("image", "repair", "--rebuild-tables", image.toString());
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains(image + ".damaged: already exists");

        Path zeroed = DamagedImages.qcow2(dir, "zeroed.qcow2", null);
        DamagedImages.zero(zeroed, DamagedImages.l1Offset(zeroed), 32);
        r = panamax("image", "repair", "--rebuild-tables", "-O", p("out.qcow2"), "--orphans", p("orphans"), zeroed.toString());
        assertThat(r.status()).as(r.out() + r.err()).isEqualTo(4);
        assertThat(r.out()).contains("orphaned: 4.", "Guest clusters mapped: 0; in orphaned tables: 1366.",
                "guest range unknown; its data is in " + p("orphans") + "/l2-at-0x");
        QemuImg.img("check", p("out.qcow2")).expectSuccess("qemu-img check");

        r = panamax("image", "repair", "--orphans", p("o2"), zeroed.toString());
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("go with --rebuild-tables");
    }

    /** A cluster counted as used that nothing references: check exits 3, repair reclaims it. */
    @Test
    void leaksGiveStatusThreeAndRepairRemovesThem() throws Exception {
        Path img = dir.resolve("leak.qcow2");
        assertThat(panamax("image", "create", img.toString(), "1M").status()).isZero();
        long fileSize = Files.size(img);
        long leaked = (fileSize + 65535) / 65536; // the cluster just past the end of the file
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.READ,
                java.nio.file.StandardOpenOption.WRITE)) {
            ByteBuffer header = ByteBuffer.allocate(64);
            ch.read(header, 0);
            ByteBuffer entry = ByteBuffer.allocate(8);
            ch.read(entry, header.getLong(48)); // refcount table entry 0 -> first refcount block
            ch.write(ByteBuffer.allocate(2).putShort(0, (short) 1), entry.getLong(0) + 2 * leaked);
            ch.write(ByteBuffer.allocate(65536), leaked * 65536);
        }
        CliRun check = panamax("image", "check", img.toString());
        assertThat(check.status()).as(check.out()).isEqualTo(3);
        assertThat(check.out()).contains("1 leaked clusters were found");
        CliRun json = panamax("image", "check", "--json", img.toString());
        assertThat(json.out()).contains("\"corruptions\": 0", "\"leaks\": 1", "\"kind\": \"leak\"");
        CliRun repair = panamax("image", "repair", img.toString());
        assertThat(repair.status()).as(repair.out()).isZero();
        assertThat(repair.out()).contains("Before repair: 0 errors, 1 leaked clusters.", "No errors were found");
        assertThat(panamax("image", "map", "--json", img.toString()).out())
                .contains("\"start\": 0", "\"length\": 1048576", "\"zero\": true", "\"data\": false");
    }

    @Test
    void missingBackingFileIsReportedAndRebaseFixesIt() throws Exception {
        assertThat(panamax("image", "create", "-f", "raw", p("base.raw"), "1M").status()).isZero();
        assertThat(panamax("image", "create", "-b", "base.raw", p("top.qcow2")).status()).isZero();
        Files.createDirectory(dir.resolve("moved"));
        Files.move(dir.resolve("base.raw"), dir.resolve("moved/base.raw"));
        CliRun check = panamax("image", "check", p("top.qcow2"));
        assertThat(check.status()).isEqualTo(2);
        assertThat(check.out()).contains("backing file", "does not exist", "rebase");
        assertThat(panamax("image", "rebase", "-u", "-b", "moved/base.raw", p("top.qcow2")).status()).isZero();
        assertThat(panamax("image", "check", p("top.qcow2")).status()).isZero();
        assertThat(panamax("image", "info", p("top.qcow2")).out()).contains("backing file: moved/base.raw");
    }

    @Test
    void commitMergesOverlayIntoBacking() throws Exception {
        byte[] base = new byte[1 << 20];
        new Random(3).nextBytes(base);
        Files.write(dir.resolve("base.raw"), base);
        assertThat(panamax("image", "create", "-b", "base.raw", "-F", "raw", p("top.qcow2")).status()).isZero();
        byte[] patch = new byte[10000];
        new Random(4).nextBytes(patch);
        try (var disk = dev.panamax.storage.image.Images.open(dir.resolve("top.qcow2"), dev.panamax.storage.image.Images.OpenOptions.readWrite())) {
            disk.write(123456, ByteBuffer.wrap(patch));
        }
        CliRun r = panamax("image", "commit", p("top.qcow2"));
        assertThat(r.status()).as(r.err()).isZero();
        System.arraycopy(patch, 0, base, 123456, patch.length);
        assertThat(Files.readAllBytes(dir.resolve("base.raw"))).isEqualTo(base);
        assertThat(panamax("image", "map", p("top.qcow2")).out()).doesNotContain("  data\n");
    }

    /**
     * Images qemu-img makes in formats Panamax cannot read (qed, luks, ...): info,
     * check, map and convert refuse each with one line naming the format (status 2, no output file),
     * and read it as raw when told to.
     */
    @Test
    void foreignFormatsAreRefusedByNameUnlessRawIsGiven() throws Exception {
        for (var e : ForeignImages.make(dir, 1 << 20).entrySet()) {
            String image = e.getKey().toString();
            String named = e.getValue().description();
            for (String[] command : List.of(new String[] {"info", image}, new String[] {"check", image},
                    new String[] {"map", image}, new String[] {"convert", "-q", "-O", "raw", image, p("out.raw")})) {
                List<String> args = new ArrayList<>(List.of("image"));
                args.addAll(List.of(command));
                CliRun r = panamax(args.toArray(String[]::new));
                assertThat(r.status()).as(args + ": " + r.err()).isEqualTo(2);
                assertThat(r.err().strip()).as(String.valueOf(args)).startsWith("panamax: " + image + " is " + named)
                        .contains("which Panamax cannot read yet").doesNotContain("\n").doesNotContain("Exception");
                assertThat(r.out()).isEmpty();
                assertThat(dir.resolve("out.raw")).doesNotExist();
            }
            CliRun info = panamax("image", "info", "-f", "raw", image);
            assertThat(info.status()).as(info.err()).isZero();
            assertThat(info.out()).contains("file format: raw", "(" + Files.size(Path.of(image)) + " bytes)");
            assertThat(panamax("image", "check", "--format", "raw", image).status()).isZero();
            assertThat(panamax("image", "map", "-f", "raw", "--json", image).status()).isZero();
            CliRun convert = panamax("image", "convert", "-q", "-f", "raw", "-O", "raw", image, p("out.raw"));
            assertThat(convert.status()).as(convert.err()).isZero();
            assertThat(Files.readAllBytes(dir.resolve("out.raw"))).as("the container's bytes, as asked")
                    .isEqualTo(Files.readAllBytes(Path.of(image)));
            Files.delete(dir.resolve("out.raw"));
        }
        CliRun r = panamax("image", "info", "-f", "qed", p("disk.qed"));
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("Panamax cannot read qed images yet");
        r = panamax("image", "create", "-b", p("disk.qed"), p("over.qcow2"));
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("is a QED image");
        assertThat(dir.resolve("over.qcow2")).doesNotExist();
    }

    private void qemuImg(String what, String... args) throws Exception {
        QemuImg.Result r = QemuImg.img(args);
        assertThat(r.status()).as(what + ":\n" + r.out() + r.err()).isZero();
    }

    /**
     * VMDK and VDI through the command: info shows each format's specifics, check, map and convert read
     * what qemu-img wrote, and the VMDK and VDI files create and convert write pass qemu-img check and
     * compare.
     */
    @Test
    void vmdkAndVdiImagesEndToEnd() throws Exception {
        byte[] data = new byte[3 << 20];
        new Random(9).nextBytes(data);
        java.util.Arrays.fill(data, 1 << 20, 2 << 20, (byte) 0);
        Path raw = Files.write(dir.resolve("data.raw"), data);
        qemuImg("qemu-img convert", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw.toString(), p("stream.vmdk"));
        qemuImg("qemu-img convert", "convert", "-f", "raw", "-O", "vdi", "-o", "static=on", raw.toString(), p("static.vdi"));

        CliRun r = panamax("image", "info", p("stream.vmdk"));
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("file format: vmdk", "virtual size: 3 MiB (3145728 bytes)", "cluster_size: 65536",
                "Format specific information:", "    create type: streamOptimized", "    extents:", "compressed sparse");
        r = panamax("image", "info", "--json", p("stream.vmdk"));
        assertThat(r.out()).contains("\"format\": \"vmdk\"", "\"create-type\": \"streamOptimized\"", "\"extents\": [");
        r = panamax("image", "info", p("static.vdi"));
        assertThat(r.out()).contains("file format: vdi", "vdi type: static", "cluster_size: 1048576");
        assertThat(panamax("image", "info", "--json", p("static.vdi")).out()).contains("\"vdi-type\": \"static\"");
        for (String image : List.of(p("stream.vmdk"), p("static.vdi"))) {
            r = panamax("image", "check", image);
            assertThat(r.status()).as(r.out() + r.err()).isZero();
            assertThat(panamax("image", "map", image).status()).isZero();
        }

        // stream.vmdk -> out.vmdk (monolithicSparse, by the extension) -> out.vdi: each as QEMU reads it.
        r = panamax("image", "convert", "-q", p("stream.vmdk"), p("out.vmdk"));
        assertThat(r.status()).as(r.err()).isZero();
        qemuImg("qemu-img check", "check", "-f", "vmdk", p("out.vmdk"));
        qemuImg("qemu-img compare", "compare", "-f", "vmdk", "-F", "raw", p("out.vmdk"), raw.toString());
        assertThat(panamax("image", "info", p("out.vmdk")).out()).contains("create type: monolithicSparse");
        r = panamax("image", "convert", "-q", p("out.vmdk"), p("out.vdi"));
        assertThat(r.status()).as(r.err()).isZero();
        qemuImg("qemu-img check", "check", "-f", "vdi", p("out.vdi"));
        qemuImg("qemu-img compare", "compare", "-f", "vdi", "-F", "raw", p("out.vdi"), raw.toString());
        r = panamax("image", "convert", "-q", "-O", "raw", p("static.vdi"), p("back.raw"));
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(Files.readAllBytes(dir.resolve("back.raw"))).isEqualTo(data);

        r = panamax("image", "create", "-f", "vmdk", p("new.vmdk"), "64M");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("fmt=vmdk size=67108864");
        qemuImg("qemu-img check", "check", "-f", "vmdk", p("new.vmdk"));
        r = panamax("image", "create", "-f", "vdi", "--fixed", p("new.vdi"), "8M");
        assertThat(r.status()).as(r.err()).isZero();
        qemuImg("qemu-img check", "check", "-f", "vdi", p("new.vdi"));
        assertThat(panamax("image", "info", p("new.vdi")).out()).contains("vdi type: static");
    }

    /**
     * VHDX through the command: dynamic and fixed images qemu-img made, in 1 MiB and 32 MiB blocks; info
     * shows the type, block and sector size, check and map read them, and what convert writes from them
     * QEMU compares equal to the source. VHDX is not written: an output named .vhdx is refused.
     */
    @Test
    void vhdxImagesEndToEnd() throws Exception {
        byte[] data = new byte[(40 << 20) + 512];
        Random rnd = new Random(10);
        byte[] chunk = new byte[1 << 20];
        rnd.nextBytes(chunk);
        System.arraycopy(chunk, 0, data, 0, chunk.length);
        System.arraycopy(chunk, 0, data, (36 << 20) + 99, 300_000);
        for (int i = data.length - 1000; i < data.length; i++) data[i] = (byte) i;
        Path raw = Files.write(dir.resolve("data.raw"), data);
        for (String subformat : List.of("dynamic", "fixed")) {
            for (String block : List.of("1M", "32M")) {
                String image = p(subformat + block + ".vhdx");
                qemuImg("qemu-img convert", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=" + subformat + ",block_size=" + block,
                        raw.toString(), image);
                CliRun r = panamax("image", "info", image);
                assertThat(r.status()).as(r.err()).isZero();
                assertThat(r.out()).contains("file format: vhdx", "virtual size: 40 MiB (" + data.length + " bytes)",
                        "Format specific information:", "    type: " + subformat,
                        "    block size: " + (block.equals("1M") ? 1 << 20 : 32 << 20), "    logical sector size: 512");
                assertThat(panamax("image", "info", "--json", image).out()).contains("\"format\": \"vhdx\"",
                        "\"vhdx-type\": \"" + subformat + "\"", "\"logical-sector-size\": 512");
                r = panamax("image", "check", image);
                assertThat(r.status()).as(r.out() + r.err()).isZero();
                assertThat(panamax("image", "map", image).status()).isZero();
                for (String out : List.of(p("out.qcow2"), p("out.raw"))) {
                    r = panamax("image", "convert", "-q", image, out);
                    assertThat(r.status()).as(r.err()).isZero();
                    String format = out.endsWith(".qcow2") ? "qcow2" : "raw";
                    qemuImg("qemu-img compare", "compare", "-f", format, "-F", "raw", out, raw.toString());
                    Files.delete(Path.of(out));
                }
            }
        }
        CliRun r = panamax("image", "convert", "-q", raw.toString(), p("back.vhdx"));
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("Panamax reads VHDX images but does not create them");
        r = panamax("image", "create", "-f", "vhdx", p("new.vhdx"), "8M");
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("does not create them");
    }
}
