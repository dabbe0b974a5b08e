package dev.panamax.storage;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** Where the data of a disk comes from, looking through its whole backing chain. */
public final class AllocationMap {
    private AllocationMap() {}

    /**
     * A run of the virtual disk: {@code DATA} stored in the image at {@code depth} of the chain (0 = top),
     * {@code ZERO} reads as zeros (an explicit zero range at {@code depth}, or nothing anywhere, depth -1).
     */
    public record Entry(long offset, long length, Extent.Kind kind, int depth) {
        public long end() {
            return offset + length;
        }
    }

    /** The state of the run starting at {@code offset}, resolved through the chain. */
    public static Entry resolve(BlockBackend disk, long offset, long maxLength) throws IOException {
        int depth = 0;
        long length = maxLength;
        for (BlockBackend layer = disk; layer != null; layer = layer.backing(), depth++) {
            if (offset >= layer.size()) return new Entry(offset, length, Extent.Kind.ZERO, -1);
            Extent e = layer.extent(offset, Math.min(length, layer.size() - offset));
            length = e.length();
            if (e.kind() == Extent.Kind.DATA) return new Entry(offset, length, Extent.Kind.DATA, depth);
            if (e.kind() == Extent.Kind.ZERO) return new Entry(offset, length, Extent.Kind.ZERO, depth);
        }
        return new Entry(offset, length, Extent.Kind.ZERO, -1);
    }

    /** The whole disk as maximal runs of equal state. */
    public static List<Entry> map(BlockBackend disk) throws IOException {
        List<Entry> out = new ArrayList<>();
        long size = disk.size();
        for (long pos = 0; pos < size; ) {
            Entry e = resolve(disk, pos, size - pos);
            if (!out.isEmpty()) {
                Entry last = out.getLast();
                if (last.kind() == e.kind() && last.depth() == e.depth() && last.end() == e.offset()) {
                    out.set(out.size() - 1, new Entry(last.offset(), last.length() + e.length(), e.kind(), e.depth()));
                    pos = e.end();
                    continue;
                }
            }
            out.add(e);
            pos = e.end();
        }
        return out;
    }
}
