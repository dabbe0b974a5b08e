package dev.panamax.storage.image;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.Extent;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Looks for a missing backing file among the files of some directories: each file directly in one
 * (no subdirectory is entered, no symbolic link followed out of the directory, nothing but regular
 * files opened) whose probed format is the one the overlay records (any format Panamax reads when it
 * records none) and whose virtual size fits the overlay's. Candidates are ranked by file name (the
 * recorded one first), then by how much of the data the overlay stores agrees with theirs.
 *
 * <p>That agreement comes from copy-on-write: a guest write of part of a cluster makes the overlay
 * store the whole cluster, the rest copied from the backing file. So in a cluster the overlay stores,
 * sectors equal to the right backing file's are common, and non-zero sectors equal to an unrelated
 * file's are rare. A whole-cluster write leaves nothing to compare; no agreement is no proof.
 */
public final class BackingSearch {
    /** Files looked at per directory, so a huge directory cannot make the search endless. */
    static final int MAX_FILES_PER_DIR = 10_000;
    /** Clusters of the overlay compared with each candidate, and the most bytes they may take. */
    static final int SAMPLE_CLUSTERS = 32, SAMPLE_BYTES = 8 << 20;
    private static final int SECTOR = 512;

    private BackingSearch() {}

    /**
     * A file that could be the missing backing file.
     *
     * @param path            the file, as found in a searched directory
     * @param backingName     the name to record in the overlay: relative to the overlay's directory when the
     *                        missing name was relative (and that leads to the same file), else absolute
     * @param format          its format (probed)
     * @param virtualSize     its virtual size in bytes
     * @param sameName        whether its file name is the missing one's
     * @param sampledClusters how many of the clusters the overlay stores were compared with it
     * @param sharedClusters  how many of those share a non-zero sector with it
     * @param reasons         why it matches, one phrase each
     * @param rebaseCommand   the command that makes the overlay use it
     */
    public record Candidate(Path path, String backingName, ImageFormat format, long virtualSize, boolean sameName,
            int sampledClusters, int sharedClusters, List<String> reasons, String rebaseCommand) {
        public Candidate {
            reasons = List.copyOf(reasons);
        }
    }

    /** The one candidate with the missing file's name, or null when there are none or several. */
    public static Candidate onlySameName(List<Candidate> candidates) {
        List<Candidate> same = candidates.stream().filter(Candidate::sameName).toList();
        return same.size() == 1 ? same.getFirst() : null;
    }

    /**
     * The candidates for the missing backing file {@code name} of {@code overlay}, best first.
     *
     * @param chain the links above, none of which may be offered (that would make a loop)
     */
    static List<Candidate> find(BackingChain.Link overlay, String name, String recordedFormat, List<BackingChain.Link> chain,
            List<Path> searchDirs) throws IOException {
        ImageFormat wanted = null;
        if (recordedFormat != null) {
            try {
                wanted = ImageFormat.parse(recordedFormat);
            } catch (ImageRequestException e) {
                return List.of(); // no file Panamax reads can be in it
            }
        }
        Path missing = Path.of(name).getFileName();
        Set<String> excluded = new HashSet<>();
        for (BackingChain.Link l : chain) {
            try {
                excluded.add(FileKind.of(l.path()).identity());
            } catch (IOException e) {
                // gone since it was walked: nothing to exclude
            }
        }
        Map<Path, Path> dirs = new LinkedHashMap<>(); // real path -> as given
        List<Path> all = new ArrayList<>(searchDirs);
        Path own = overlay.path().toAbsolutePath().getParent();
        if (own != null) all.add(own);
        for (Path dir : all) {
            try {
                dirs.putIfAbsent(dir.toRealPath(), dir);
            } catch (IOException e) {
                // the overlay's own directory cannot vanish while it is open; a search dir was checked before
            }
        }
        Sample sample = Sample.of(overlay);
        List<Candidate> found = new ArrayList<>();
        Set<String> offered = new HashSet<>();
        for (var dir : dirs.entrySet()) {
            for (Path file : files(dir.getValue())) {
                Candidate c = consider(file, dir.getKey(), overlay, name, missing, wanted, excluded, offered, sample);
                if (c != null) found.add(c);
            }
        }
        found.sort(Comparator.comparing((Candidate c) -> !c.sameName())
                .thenComparing(c -> -(double) c.sharedClusters() / Math.max(1, c.sampledClusters()))
                .thenComparing(c -> c.virtualSize() != overlay.virtualSize())
                .thenComparing(c -> c.path().toString()));
        return found;
    }

    /** The entries directly in {@code dir}, sorted by name, at most {@link #MAX_FILES_PER_DIR}. */
    private static List<Path> files(Path dir) {
        List<Path> files = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
            for (Path p : entries) {
                if (files.size() == MAX_FILES_PER_DIR) break;
                files.add(p);
            }
        } catch (IOException e) {
            return List.of(); // an unreadable directory holds no candidate we could check
        }
        files.sort(Comparator.comparing(Path::toString));
        return files;
    }

    private static Candidate consider(Path file, Path dirReal, BackingChain.Link overlay, String name, Path missing,
            ImageFormat wanted, Set<String> excluded, Set<String> offered, Sample sample) {
        try {
            Path real = file.toRealPath();
            if (!real.startsWith(dirReal)) return null; // a symbolic link out of the directory searched
            FileKind kind = FileKind.of(real);
            if (!kind.isImageFile() || !Files.isRegularFile(real)) return null;
            if (excluded.contains(kind.identity()) || !offered.add(kind.identity())) return null;
            ImageFormat format = Images.probe(real);
            if (wanted != null && format != wanted) return null;
            long size;
            int shared;
            try (BlockBackend disk = Images.open(real, Images.OpenOptions.readOnly().withoutBacking().withFormat(format))) {
                size = disk.size();
                if (size == 0 || size > overlay.virtualSize()) return null;
                shared = sample.sharedWith(disk);
            }
            boolean sameName = file.getFileName().equals(missing);
            List<String> reasons = new ArrayList<>();
            reasons.add(sameName ? "same file name as recorded" : "file name differs from the recorded " + missing);
            reasons.add(wanted != null ? format.id() + ", as recorded" : format.id() + " (no format recorded: any Panamax reads fits)");
            reasons.add(size == overlay.virtualSize() ? "same virtual size as the overlay (" + size + " bytes)"
                    : "virtual size " + size + " bytes, smaller than the overlay's " + overlay.virtualSize()
                            + " (fits an overlay grown after it was made)");
            reasons.add(sample.describe(shared));
            String backingName = backingName(overlay.path(), name, file);
            return new Candidate(file, backingName, format, size, sameName, sample.clusters(), shared, reasons,
                    BackingChain.rebaseCommand(backingName, format, overlay.path()));
        } catch (IOException e) {
            return null; // unreadable, foreign or damaged: not a file the overlay could use
        }
    }

    /**
     * The name to record for {@code file}: relative to the overlay's directory, as the missing name was,
     * when that leads to the same file (symbolic links on the way can make ".." lead elsewhere); else absolute.
     */
    private static String backingName(Path overlay, String missingName, Path file) throws IOException {
        Path absolute = file.toAbsolutePath().normalize();
        if (Path.of(missingName).isAbsolute()) return absolute.toString();
        Path dir = overlay.toAbsolutePath().getParent().toRealPath();
        Path relative = dir.relativize(file.toRealPath().getParent()).resolve(file.getFileName());
        Path resolved = Qcow2Image.resolveBacking(overlay, relative.toString());
        return Files.exists(resolved) && Files.isSameFile(resolved, file) ? relative.toString() : absolute.toString();
    }

    /** Clusters the overlay stores, read once and compared with each candidate. */
    private record Sample(List<Long> offsets, List<byte[]> data) {
        static Sample of(BackingChain.Link overlay) {
            List<Long> offsets = new ArrayList<>();
            List<byte[]> data = new ArrayList<>();
            try (BlockBackend disk = Images.open(overlay.path(),
                    Images.OpenOptions.readOnly().withoutBacking().withFormat(overlay.format()))) {
                int unit = disk instanceof Qcow2Image q ? q.clusterSize() : 65536;
                int most = Math.max(1, Math.min(SAMPLE_CLUSTERS, SAMPLE_BYTES / unit));
                long size = disk.size();
                for (long pos = 0; pos < size && offsets.size() < most; ) {
                    Extent e = disk.extent(pos, size - pos);
                    if (e.kind() == Extent.Kind.DATA) {
                        for (long at = e.offset(); at < e.end() && offsets.size() < most; ) {
                            int len = (int) Math.min(unit - at % unit, e.end() - at);
                            byte[] b = new byte[len];
                            disk.read(at, ByteBuffer.wrap(b));
                            offsets.add(at);
                            data.add(b);
                            at += len;
                        }
                    }
                    pos = e.end();
                }
            } catch (IOException e) {
                offsets.clear(); // an overlay whose data cannot be read tells nothing; the walk reports it
                data.clear();
            }
            return new Sample(offsets, data);
        }

        int clusters() {
            return offsets.size();
        }

        /** How many sampled clusters share a non-zero sector (at the same disk offset) with {@code disk}. */
        int sharedWith(BlockBackend disk) throws IOException {
            int shared = 0;
            for (int i = 0; i < offsets.size(); i++) {
                long at = offsets.get(i);
                byte[] mine = data.get(i);
                if (at >= disk.size()) continue;
                byte[] theirs = new byte[(int) Math.min(mine.length, disk.size() - at)];
                disk.read(at, ByteBuffer.wrap(theirs));
                if (sharesSector(mine, theirs, at)) shared++;
            }
            return shared;
        }

        private static boolean sharesSector(byte[] a, byte[] b, long diskOffset) {
            int first = (int) ((SECTOR - diskOffset % SECTOR) % SECTOR); // compare whole disk sectors only
            for (int s = first; s + SECTOR <= b.length; s += SECTOR) {
                if (Arrays.equals(a, s, s + SECTOR, b, s, s + SECTOR) && !allZero(a, s, s + SECTOR)) return true;
            }
            return false;
        }

        private static boolean allZero(byte[] b, int from, int to) {
            for (int i = from; i < to; i++) {
                if (b[i] != 0) return false;
            }
            return true;
        }

        String describe(int shared) {
            if (offsets.isEmpty()) return "the overlay stores no data to compare with it";
            if (shared == 0) return "none of " + offsets.size() + " clusters the overlay stores shares a non-zero sector"
                    + " with it (a whole-cluster write leaves none, so this proves nothing)";
            return shared + " of " + offsets.size() + " clusters the overlay stores share non-zero sectors with it"
                    + " (as copy-on-write from it would leave)";
        }
    }
}
