package dev.panamax.storage.vmdk;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFile;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.ReadOnlyImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;

/**
 * A VMware VMDK image in one of three layouts: monolithicSparse (one sparse extent with its descriptor
 * embedded; read and written), streamOptimized (one sparse extent of compressed grains; read-only) and
 * monolithicFlat or vmfs (a text descriptor naming flat extent files beside it; read-only). Images with
 * a parent, and split layouts of several sparse files, are refused by name.
 */
public final class VmdkImage implements BlockBackend {
    /** The largest image {@link #create} makes: what 32-bit grain table entries can address. */
    public static final long MAX_CREATE_SIZE = 2L << 40;
    private static final int SECTOR = VmdkSparse.SECTOR;
    private static final int COWD = 0x434f5744; // VMware 3's sparse format, read big-endian

    private final ImageFile file;
    private final String name;
    private final String createType;
    private final long size;
    private final boolean readOnly;
    /** The sparse extent (monolithicSparse, streamOptimized), or null for a descriptor with flat extents. */
    private final VmdkSparse sparse;
    private final List<FlatExtent> flats;
    private boolean closed;

    /** A flat or zero extent: disk bytes {@code [start, start + length)} are {@code file} from {@code fileOffset} (zeros when file is null). */
    private record FlatExtent(long start, long length, ImageFile file, long fileOffset, String fileName) {}

    private VmdkImage(ImageFile file, String createType, long size, boolean readOnly, VmdkSparse sparse, List<FlatExtent> flats) {
        this.file = file;
        this.name = file.path().toString();
        this.createType = createType;
        this.size = size;
        this.readOnly = readOnly;
        this.sparse = sparse;
        this.flats = flats;
    }

    public static VmdkImage open(Path path, boolean writable) throws IOException {
        ImageFile file = ImageFile.open(path, writable);
        try {
            return open(file);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** Takes ownership of {@code file} (closed on failure by the caller); extent files it names are opened read-only. */
    public static VmdkImage open(ImageFile file) throws IOException {
        String name = file.path().toString();
        ByteBuffer head = ByteBuffer.allocate(SECTOR);
        file.readZeroPadded(0, head);
        if (VmdkSparse.isMagic(head)) return openSparse(file);
        if (head.order(ByteOrder.BIG_ENDIAN).getInt(0) == COWD) {
            throw new InvalidImageException(name + ": VMDK images in VMware 3's sparse format (COWD) are not supported; convert the image"
                    + " with 'qemu-img convert -f vmdk -O qcow2'");
        }
        return openDescriptor(file);
    }

    private static VmdkImage openSparse(ImageFile file) throws IOException {
        String name = file.path().toString();
        VmdkSparse sparse = VmdkSparse.open(file);
        VmdkDescriptor d = sparse.descriptor();
        if (d != null && d.hasParent()) {
            throw new InvalidImageException(name + ": VMDK image has a parent (parentCID " + d.parentCid()
                    + "); Panamax does not read VMDK snapshot chains");
        }
        boolean stream = sparse.header.compressed();
        String createType = d != null && d.createType() != null ? d.createType() : stream ? "streamOptimized" : "monolithicSparse";
        if (stream && file.isWritable()) {
            throw new ReadOnlyImageException(name + ": VMDK streamOptimized images can only be opened read-only (attach"
                    + " the disk read-only, or convert it to qcow2 or monolithicSparse VMDK to write to it)");
        }
        return new VmdkImage(file, createType, sparse.capacityBytes(), !file.isWritable(), sparse, List.of());
    }

    private static VmdkImage openDescriptor(ImageFile file) throws IOException {
        String name = file.path().toString();
        long fileSize = file.size();
        if (fileSize > VmdkDescriptor.MAX_BYTES) {
            throw new InvalidImageException(name + ": VMDK descriptor file is " + fileSize + " bytes, more than a descriptor's "
                    + VmdkDescriptor.MAX_BYTES);
        }
        byte[] text = new byte[(int) fileSize];
        file.readFully(0, ByteBuffer.wrap(text), "VMDK descriptor");
        VmdkDescriptor d = VmdkDescriptor.parse(text, text.length, name);
        String type = d.createType();
        if (type == null) throw new InvalidImageException(name + ": VMDK descriptor has no createType");
        if (d.hasParent()) {
            throw new InvalidImageException(name + ": VMDK image has a parent (parentCID " + d.parentCid()
                    + "); Panamax does not read VMDK snapshot chains");
        }
        if (!List.of("monolithicFlat", "vmfs", "twoGbMaxExtentFlat").contains(type)) {
            throw new InvalidImageException(name + ": VMDK create type '" + VmdkDescriptor.printable(type) + "' in a descriptor"
                    + " file is not supported (Panamax reads monolithicSparse, streamOptimized, monolithicFlat and vmfs);"
                    + " convert the image with 'qemu-img convert -f vmdk -O qcow2'");
        }
        if (file.isWritable()) {
            throw new ReadOnlyImageException(name + ": VMDK " + type + " images can only be opened read-only (attach the"
                    + " disk read-only, or convert it to qcow2 or monolithicSparse VMDK to write to it)");
        }
        if (d.extents().isEmpty()) throw new InvalidImageException(name + ": VMDK descriptor lists no extents");
        Path dir = file.path().toAbsolutePath().normalize().getParent();
        List<FlatExtent> flats = new ArrayList<>();
        long start = 0;
        try {
            for (VmdkDescriptor.ExtentLine e : d.extents()) {
                if (start > VmdkDescriptor.MAX_SECTORS * SECTOR - e.sectors() * SECTOR) {
                    throw new InvalidImageException(name + ": VMDK extents add up to more than 64 TiB");
                }
                long length = e.sectors() * SECTOR;
                switch (e.type()) {
                    case "ZERO" -> flats.add(new FlatExtent(start, length, null, 0, null));
                    case "FLAT", "VMFS" -> {
                        if (e.access().equals("NOACCESS")) {
                            throw new InvalidImageException(name + ": VMDK extent '" + VmdkDescriptor.printable(e.fileName())
                                    + "' is marked NOACCESS");
                        }
                        Path p = extentPath(dir, e.fileName(), name);
                        if (!java.nio.file.Files.isRegularFile(p)) {
                            throw new InvalidImageException(name + ": VMDK extent file " + p + " named by the descriptor"
                                    + " does not exist or is not a regular file");
                        }
                        // A symbolic link in the directory (one an archive brought with the descriptor, say) must not lead out either.
                        if (!p.toRealPath().startsWith(dir.toRealPath())) {
                            throw new InvalidImageException(name + ": VMDK extent file " + p + " is a symbolic link leading"
                                    + " out of the descriptor's directory (to " + p.toRealPath() + "); Panamax only reads"
                                    + " extents inside it");
                        }
                        ImageFile extent = ImageFile.open(p, false);
                        flats.add(new FlatExtent(start, length, extent, e.offsetSectors() * SECTOR, e.fileName()));
                        long needed = (e.offsetSectors() + e.sectors()) * SECTOR;
                        if (extent.size() < needed) {
                            throw new InvalidImageException(name + ": VMDK flat extent " + p + " holds " + extent.size()
                                    + " bytes but the descriptor needs " + needed + "; it is truncated");
                        }
                    }
                    default -> throw new InvalidImageException(name + ": VMDK extent type " + e.type() + " is not supported"
                            + " in a " + type + " image (only FLAT, VMFS and ZERO)");
                }
                start += length;
            }
        } catch (IOException | RuntimeException ex) {
            for (FlatExtent f : flats) if (f.file() != null) f.file().close();
            throw ex;
        }
        return new VmdkImage(file, type, start, true, null, List.copyOf(flats));
    }

    /**
     * The extent file {@code fileName} names: relative to the descriptor's directory and inside it. A
     * descriptor is data, so an absolute name or one climbing out with {@code ..} is refused rather
     * than letting the image read any file on the host.
     */
    static Path extentPath(Path dir, String fileName, String name) throws InvalidImageException {
        String shown = VmdkDescriptor.printable(fileName);
        if (fileName.isEmpty() || fileName.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw new InvalidImageException(name + ": VMDK extent file name '" + shown + "' is empty or has control characters");
        }
        Path given;
        try {
            given = Path.of(fileName);
        } catch (java.nio.file.InvalidPathException e) {
            throw new InvalidImageException(name + ": VMDK extent file name '" + shown + "' is not a valid path");
        }
        if (given.isAbsolute()) {
            throw new InvalidImageException(name + ": VMDK extent file name '" + shown + "' is an absolute path; Panamax only"
                    + " reads extents in the descriptor's directory (" + dir + "), named relative to it");
        }
        Path resolved = dir.resolve(given).normalize();
        if (!resolved.startsWith(dir) || resolved.equals(dir)) {
            throw new InvalidImageException(name + ": VMDK extent file name '" + shown + "' leads out of the descriptor's"
                    + " directory (" + dir + "); Panamax only reads extents inside it");
        }
        return resolved;
    }

    /** Creates an empty monolithicSparse image of {@code size} bytes (rounded up to a sector). */
    public static void create(Path path, long size) throws IOException {
        if (size < 0 || size > MAX_CREATE_SIZE) {
            throw new ImageRequestException("VMDK images can be at most " + MAX_CREATE_SIZE + " bytes (2 TiB), not " + size);
        }
        String fileName = path.getFileName().toString().replace('"', '_');
        try (ImageFile file = ImageFile.create(path)) {
            VmdkSparse.create(file, size, fileName, new SecureRandom().nextInt() & 0x7fffffff | 1);
            file.sync();
        }
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public boolean isReadOnly() {
        return readOnly;
    }

    @Override
    public ImageFile imageFile() {
        return file;
    }

    @Override
    public ImageFormat format() {
        return ImageFormat.VMDK;
    }

    /** The descriptor's createType: monolithicSparse, streamOptimized, monolithicFlat, ... */
    public String createType() {
        return createType;
    }

    /** Grain size in bytes, or 0 for flat extents. */
    public int grainSize() {
        return sparse == null ? 0 : sparse.grainBytes;
    }

    /** One line per extent, as info shows them: the file and its part of the disk. */
    public List<String> extentDescriptions() {
        if (sparse != null) {
            return List.of(name + " (" + (sparse.header.compressed() ? "compressed " : "") + "sparse, " + size + " bytes)");
        }
        List<String> out = new ArrayList<>();
        for (FlatExtent f : flats) {
            out.add(f.file() == null ? "zero (" + f.length() + " bytes)"
                    : f.file().path() + " (flat, " + f.length() + " bytes from offset " + f.fileOffset() + ")");
        }
        return out;
    }

    /** Every grain table entry and compressed grain marker (sparse images); each problem one sentence. */
    public synchronized void check(java.util.function.Consumer<String> problems) throws IOException {
        if (sparse != null) sparse.check(problems);
    }

    public long fileSize() throws IOException {
        long total = file.size();
        for (FlatExtent f : flats) if (f.file() != null) total += f.file().size();
        return total;
    }

    public long allocatedBytes() throws IOException {
        long total = file.allocatedBytes();
        for (FlatExtent f : flats) if (f.file() != null) total += f.file().allocatedBytes();
        return total;
    }

    private FlatExtent flatAt(long offset) {
        int lo = 0, hi = flats.size() - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (flats.get(mid).start() <= offset) lo = mid;
            else hi = mid - 1;
        }
        return flats.get(lo);
    }

    /** Bytes from {@code offset} to the end of its grain or extent. */
    private long pieceLeft(long offset) {
        if (sparse != null) return sparse.grainBytes - offset % sparse.grainBytes;
        FlatExtent f = flatAt(offset);
        return f.start() + f.length() - offset;
    }

    @Override
    public synchronized void read(long offset, ByteBuffer dst) throws IOException {
        BlockBackend.checkRange(this, offset, dst.remaining());
        int end = dst.limit();
        while (dst.position() < end) {
            int n = (int) Math.min(pieceLeft(offset), end - dst.position());
            dst.limit(dst.position() + n);
            if (sparse != null) {
                sparse.readInGrain(offset, dst);
            } else {
                FlatExtent f = flatAt(offset);
                if (f.file() == null) {
                    while (dst.hasRemaining()) dst.put((byte) 0);
                } else {
                    f.file().readZeroPadded(f.fileOffset() + offset - f.start(), dst);
                }
            }
            offset += n;
            dst.limit(end);
        }
    }

    @Override
    public synchronized void write(long offset, ByteBuffer src) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, src.remaining());
        int end = src.limit();
        while (src.position() < end) {
            int n = (int) Math.min(pieceLeft(offset), end - src.position());
            src.limit(src.position() + n);
            sparse.writeInGrain(offset, src);
            offset += n;
            src.limit(end);
        }
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        discard(offset, length);
    }

    /** VMDK has no way to free a grain again: allocated grains are zeroed in place (holes where the file system allows). */
    @Override
    public synchronized void discard(long offset, long length) throws IOException {
        BlockBackend.checkWritable(this);
        BlockBackend.checkRange(this, offset, length);
        long end = offset + length;
        while (offset < end) {
            long n = Math.min(pieceLeft(offset), end - offset);
            sparse.zeroInGrain(offset, n);
            offset += n;
        }
    }

    @Override
    public synchronized void flush() throws IOException {
        if (!readOnly) file.sync();
    }

    @Override
    public synchronized Extent extent(long offset, long maxLength) throws IOException {
        BlockBackend.checkRange(this, offset, maxLength);
        long end = offset + maxLength;
        if (sparse == null) {
            FlatExtent f = flatAt(offset);
            long stop = Math.min(end, f.start() + f.length());
            if (f.file() == null) return new Extent(offset, stop - offset, Extent.Kind.ZERO);
            long at = f.fileOffset() + offset - f.start();
            long data = f.file().nextData(at);
            if (data > at) return new Extent(offset, Math.min(data - at, stop - offset), Extent.Kind.ZERO);
            long hole = Math.max(f.file().nextHole(at), at + 1);
            return new Extent(offset, Math.min(hole - at, stop - offset), Extent.Kind.DATA);
        }
        return sparse.extent(offset, end);
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) return;
        closed = true;
        try {
            for (FlatExtent f : flats) if (f.file() != null) f.file().close();
            if (!readOnly) file.sync();
        } finally {
            file.close();
        }
    }
}
