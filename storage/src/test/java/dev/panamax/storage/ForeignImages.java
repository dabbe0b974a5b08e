package dev.panamax.storage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Images in the formats Panamax cannot read, as qemu-img writes them: for the tests that they are refused. */
public final class ForeignImages {
    private ForeignImages() {}

    /**
     * Every format and variant qemu-img writes without a prompt, made in {@code dir}: {@code size}
     * random bytes, in {@code dir/data.raw}, converted, and an empty LUKS volume as big. Each file, with the format Panamax must name
     * when it refuses it.
     */
    public static Map<Path, ForeignFormat> make(Path dir, int size) throws IOException {
        byte[] data = new byte[size];
        new Random(21).nextBytes(data);
        Path raw = Files.write(dir.resolve("data.raw"), data);
        Map<Path, ForeignFormat> made = new LinkedHashMap<>();
        convert(raw, dir, made, "disk.qed", ForeignFormat.QED);
        convert(raw, dir, made, "disk.hdd", ForeignFormat.PARALLELS);
        convert(raw, dir, made, "disk.qcow", ForeignFormat.QCOW);
        Path luks = dir.resolve("secret.luks");
        QemuImg.Result created = createLuks(luks, size);
        // qemu-img times its key derivation by the thread's CPU time, which counts in scheduler ticks: on a
        // busy machine a timing can read 0 ms, and qemu-img gives up ("Unable to get accurate CPU usage").
        for (int tries = 1; tries < 5 && created.status() != 0 && (created.out() + created.err()).contains("Unable to get accurate CPU usage"); tries++) {
            created = createLuks(luks, size);
        }
        created.expectSuccess("qemu-img create -f luks");
        made.put(luks, ForeignFormat.LUKS);
        return made;
    }

    private static QemuImg.Result createLuks(Path luks, int size) throws IOException {
        Files.deleteIfExists(luks);
        return QemuImg.img("create", "-f", "luks", "--object", "secret,id=sec0,data=passphrase", "-o", "key-secret=sec0",
                luks.toString(), Integer.toString(size));
    }

    private static void convert(Path raw, Path dir, Map<Path, ForeignFormat> made, String name, ForeignFormat format,
            String... options) throws IOException {
        Path image = dir.resolve(name);
        List<String> args = new ArrayList<>(List.of("convert", "-f", "raw", "-O", format.id()));
        args.addAll(List.of(options));
        args.addAll(List.of(raw.toString(), image.toString()));
        QemuImg.img(args.toArray(String[]::new)).expectSuccess("qemu-img convert to " + name);
        made.put(image, format);
    }
}
