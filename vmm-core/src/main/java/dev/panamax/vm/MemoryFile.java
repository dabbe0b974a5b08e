package dev.panamax.vm;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * A snapshot's memory file: guest memory laid out by a {@link MemoryMap}, each region at its file
 * offset. Pages of zeros are left as holes, so the file is sparse and a mostly idle guest writes
 * little. A diff file has the same layout but holds only the pages of a {@link DirtyPages} (holes
 * elsewhere); {@link #merge} copies them onto the full file they follow.
 *
 * <p>A file is written beside its target and renamed over it, so a crash leaves the old file, and a
 * VM restored from the old file (which maps it) keeps its pages.
 */
public final class MemoryFile {
    private MemoryFile() {}

    private static final long PAGE = DirtyPages.PAGE_SIZE;
    private static final MemorySegment ZERO_PAGE = MemorySegment.ofArray(new byte[(int) PAGE]);
    /** Pages copied in one step of a merge. */
    private static final int MERGE_CHUNK = 256;
    /** The most pages written in one call: a buffer over memory holds at most 2 GiB. */
    static final long WRITE_PAGES = 4096;

    /**
     * Writes all of {@code memory} to {@code file} and returns its map. The vCPUs must be paused and
     * devices quiesced, or the file mixes moments.
     */
    public static MemoryMap writeFull(GuestMemory memory, Path file) throws IOException {
        MemoryMap map = MemoryMap.of(memory);
        write(memory, map, null, file);
        return map;
    }

    /**
     * Writes the pages of {@code pages} (from {@link Vm#takeDirtyPages()}) of {@code memory} to
     * {@code file}, each at the offset a full file would give it, and returns the map. The bitmap
     * is what says which pages the file holds: save it with the snapshot for {@link #merge}.
     */
    public static MemoryMap writeDiff(GuestMemory memory, DirtyPages pages, Path file) throws IOException {
        MemoryMap map = MemoryMap.of(memory);
        if (pages.ranges().size() != map.entries().size()) {
            throw new IllegalArgumentException("the dirty pages are of " + pages.ranges().size() + " regions, and the memory has "
                    + map.entries().size());
        }
        for (int i = 0; i < pages.ranges().size(); i++) {
            DirtyPages.Range range = pages.ranges().get(i);
            MemoryMap.Entry entry = map.entries().get(i);
            if (range.guestAddress() != entry.guestAddress() || range.size() != entry.size()) {
                throw new IllegalArgumentException("the dirty pages of region " + i + " are not of the memory's region " + entry);
            }
        }
        write(memory, map, pages, file);
        return map;
    }

    /** Writes every page of {@code memory} ({@code pages} null) or the marked ones, skipping pages of zeros. */
    private static void write(GuestMemory memory, MemoryMap map, DirtyPages pages, Path file) throws IOException {
        Path temporary = file.resolveSibling(file.getFileName() + ".partial");
        try {
            try (RandomAccessFile sized = new RandomAccessFile(temporary.toFile(), "rw")) {
                sized.setLength(0);
                sized.setLength(map.fileSize()); // all holes until written
            }
            try (FileChannel out = FileChannel.open(temporary, StandardOpenOption.WRITE)) {
                for (int i = 0; i < map.entries().size(); i++) {
                    MemoryMap.Entry entry = map.entries().get(i);
                    MemorySegment region = memory.readOnlySlice(entry.guestAddress(), entry.size()); // marks nothing as written
                    DirtyPages.Range dirty = pages == null ? null : pages.ranges().get(i);
                    long count = entry.size() / PAGE;
                    long run = -1; // the first page of the run of pages to write, or -1
                    for (long page = 0; page <= count; page++) {
                        boolean wanted = page < count && (dirty == null || dirty.isDirty(page)) && !isZero(region, page * PAGE);
                        if (run >= 0 && (!wanted || page - run == WRITE_PAGES)) {
                            writeFully(out, region.asSlice(run * PAGE, (page - run) * PAGE).asByteBuffer(),
                                    entry.fileOffset() + run * PAGE);
                            run = -1;
                        }
                        if (wanted && run < 0) {
                            run = page;
                        }
                    }
                }
                out.force(true);
            }
            Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(temporary);
        }
    }

    private static boolean isZero(MemorySegment region, long offset) {
        return MemorySegment.mismatch(region, offset, offset + PAGE, ZERO_PAGE, 0, PAGE) < 0;
    }

    private static void writeFully(FileChannel out, ByteBuffer buffer, long position) throws IOException {
        while (buffer.hasRemaining()) {
            position += out.write(buffer, position);
        }
    }

    /**
     * Copies the pages {@code pages} marks from the diff file {@code diff} onto {@code base}, the
     * full file both follow {@code map}: afterwards {@code base} is the full memory file of the
     * diff's moment. Changes {@code base} in place, so no VM may be running from it (a restore maps
     * it, and would see the pages it has not yet touched change).
     *
     * @throws IllegalArgumentException when either file is shorter than the map needs
     */
    public static void merge(Path diff, DirtyPages pages, MemoryMap map, Path base) throws IOException {
        if (pages.ranges().size() != map.entries().size()) {
            throw new IllegalArgumentException("the dirty pages are of " + pages.ranges().size() + " regions, and the memory map has "
                    + map.entries().size());
        }
        try (FileChannel in = FileChannel.open(diff, StandardOpenOption.READ);
                FileChannel out = FileChannel.open(base, StandardOpenOption.WRITE)) {
            requireLength(diff, in, map);
            requireLength(base, out, map);
            ByteBuffer buffer = ByteBuffer.allocateDirect((int) (MERGE_CHUNK * PAGE));
            for (int i = 0; i < map.entries().size(); i++) {
                MemoryMap.Entry entry = map.entries().get(i);
                DirtyPages.Range dirty = pages.ranges().get(i);
                long count = entry.size() / PAGE;
                long run = -1;
                for (long page = 0; page <= count; page++) {
                    boolean wanted = page < count && dirty.isDirty(page);
                    if (run >= 0 && (!wanted || page - run == MERGE_CHUNK)) {
                        long position = entry.fileOffset() + run * PAGE;
                        buffer.clear().limit((int) ((page - run) * PAGE));
                        while (buffer.hasRemaining()) {
                            if (in.read(buffer, position + buffer.position()) < 0) {
                                throw new IOException("memory file " + diff + " ended while it was read");
                            }
                        }
                        writeFully(out, buffer.flip(), position);
                        run = -1;
                    }
                    if (wanted && run < 0) {
                        run = page;
                    }
                }
            }
            out.force(true);
        }
    }

    private static void requireLength(Path path, FileChannel file, MemoryMap map) throws IOException {
        long length = file.size();
        if (length < map.fileSize()) {
            throw new IllegalArgumentException("memory file " + path + " is " + length + " bytes; its memory map needs " + map.fileSize());
        }
    }
}
