package dev.panamax.guest;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveOutputStream;
import org.apache.commons.compress.archivers.cpio.CpioConstants;

/**
 * Writes a gzip'd newc cpio archive as the kernel unpacks it into its initial root file system.
 * Entries are added parents first; owner is root, times are zero so the same input gives the same bytes.
 */
public final class Initramfs implements AutoCloseable {
    private final CpioArchiveOutputStream cpio;
    private long nextInode = 1;

    private Initramfs(OutputStream out) {
        this.cpio = new CpioArchiveOutputStream(out, CpioConstants.FORMAT_NEW);
    }

    /** Starts an archive at {@code file} (gzip'd). */
    public static Initramfs create(Path file) throws IOException {
        return new Initramfs(new GZIPOutputStream(new BufferedOutputStream(Files.newOutputStream(file)), 1 << 16));
    }

    public Initramfs directory(String path) throws IOException {
        put(entry(path, CpioConstants.C_ISDIR | 0755, 2), new byte[0]);
        return this;
    }

    public Initramfs file(String path, int permissions, byte[] content) throws IOException {
        put(entry(path, CpioConstants.C_ISREG | permissions, 1), content);
        return this;
    }

    public Initramfs file(String path, int permissions, Path source) throws IOException {
        return file(path, permissions, Files.readAllBytes(source));
    }

    public Initramfs symlink(String path, String target) throws IOException {
        put(entry(path, CpioConstants.C_ISLNK | 0777, 1), target.getBytes(StandardCharsets.UTF_8));
        return this;
    }

    /** A character device node, e.g. /dev/console (5, 1), which the kernel opens for init before /dev is mounted. */
    public Initramfs charDevice(String path, int major, int minor) throws IOException {
        CpioArchiveEntry e = entry(path, CpioConstants.C_ISCHR | 0600, 1);
        e.setRemoteDeviceMaj(major);
        e.setRemoteDeviceMin(minor);
        put(e, new byte[0]);
        return this;
    }

    private CpioArchiveEntry entry(String path, int mode, int links) {
        if (path.startsWith("/")) path = path.substring(1);
        CpioArchiveEntry e = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, path);
        e.setMode(mode);
        e.setNumberOfLinks(links);
        e.setInode(nextInode++);
        e.setTime(0);
        return e;
    }

    private void put(CpioArchiveEntry e, byte[] content) throws IOException {
        e.setSize(content.length);
        cpio.putArchiveEntry(e);
        cpio.write(content);
        cpio.closeArchiveEntry();
    }

    @Override
    public void close() throws IOException {
        cpio.close();
    }
}
