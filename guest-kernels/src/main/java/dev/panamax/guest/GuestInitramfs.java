package dev.panamax.guest;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The tiny guest's initramfs: a static busybox with its applets as symlinks, /dev/console, the static
 * {@code /bin/vsock} tool ({@link VsockTool}), {@code exec}'s guest agent ({@link ExecAgent}) and the /init script
 * {@code init.sh}. Cached under {@code <cache>/initramfs/<busybox-version>-<hash of init.sh, vsock.c, exec-agent.c
 * and their gcc options>/}.
 */
public final class GuestInitramfs {
    static final String BUSYBOX_PACKAGE = "busybox-static";
    static final String FILE_NAME = "initramfs.cpio.gz";

    private GuestInitramfs() {}

    public static Path ensureBuilt() {
        Path busybox = Busybox.ensure();
        String init = Resources.text(GuestInitramfs.class, "init.sh");
        String key = DebianPackages.installedVersion(BUSYBOX_PACKAGE) + "-" + PanamaxCache.hash(init + "\0" + VsockTool.recipe() + "\0" + ExecAgent.recipe(), 12);
        Path entry = PanamaxCache.dir("initramfs", key);
        return PanamaxCache.entry(entry, dir -> {
            Progress.say("compiling the guest's vsock tool and packing the tiny guest's initramfs into " + entry);
            Path build = Files.createDirectories(dir.resolve(".build"));
            Path vsock = VsockTool.compile(build, build.resolve("vsock"));
            Path agent = ExecAgent.compile(build, build.resolve("panamax-agent"));
            try (Initramfs cpio = Initramfs.create(dir.resolve(FILE_NAME))) {
                for (String d : List.of("bin", "dev", "proc", "sys", "tmp", "root", "etc")) cpio.directory(d);
                cpio.charDevice("dev/console", 5, 1);
                cpio.file("bin/busybox", 0755, busybox);
                for (String applet : Busybox.applets()) {
                    if (!applet.equals("busybox")) cpio.symlink("bin/" + applet, "busybox");
                }
                cpio.file("bin/vsock", 0755, vsock);
                cpio.file(ExecAgent.GUEST_PATH.substring(1), 0755, agent);
                cpio.file("init", 0755, init.getBytes(StandardCharsets.UTF_8));
            }
            PanamaxCache.deleteTree(build);
        }).resolve(FILE_NAME);
    }

}
