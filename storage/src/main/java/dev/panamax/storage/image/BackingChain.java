package dev.panamax.storage.image;

import dev.panamax.storage.BlockBackend;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.storage.InvalidImageException;
import dev.panamax.storage.qcow2.Qcow2Image;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * An image's backing chain walked link by link, each link's state told instead of thrown: what {@code
 * panamax image chain} shows. Where a backing file is missing, the files of the directories given (and
 * of the overlay's own) that could be it are {@linkplain BackingSearch listed}; {@link #mend} records
 * the one unambiguous candidate in its overlay, as an unsafe rebase does.
 *
 * <p>Only regular files and block devices are opened: a FIFO, a character device or a directory named
 * as a backing file is reported from its file type, so nothing blocks on a pipe or reads /dev/zero.
 */
public final class BackingChain {
    private BackingChain() {}

    /** What is wrong with a link, if anything. The broken states make the chain unusable as it stands. */
    public enum State {
        /** Opens, and is what its overlay expects. */
        OK("ok", false),
        /** Smaller than its overlay: allowed (the overlay reads zeros past its end), but worth a warning. */
        SMALLER("size mismatch", false),
        /** The backing file named does not exist. */
        MISSING("missing", true),
        /** Exists but cannot be read: no permission, an I/O error, or not a file (a directory, a FIFO, a device). */
        UNREADABLE("unreadable", true),
        /** The overlay records a format the file is not in. */
        WRONG_FORMAT("wrong format", true),
        /** In a format Panamax cannot read, or the overlay records one. */
        UNSUPPORTED("unsupported", true),
        /** The link's own header does not validate. */
        CORRUPT("corrupt", true),
        /** The file is already in the chain above. */
        CYCLE("cycle", true),
        /** The chain goes on past {@link Options#maxDepth} backing files. */
        TOO_DEEP("too deep", true);

        private final String label;
        private final boolean broken;

        State(String label, boolean broken) {
            this.label = label;
            this.broken = broken;
        }

        /** A word or two for output: "ok", "wrong format". */
        public String label() {
            return label;
        }

        public boolean broken() {
            return broken;
        }
    }

    /**
     * One image of the chain.
     *
     * @param depth          0 for the image asked about, 1 for its backing file, ...
     * @param name           the backing file name as its overlay records it (null for the top image)
     * @param path           where that name leads (relative names are relative to the overlay's directory)
     * @param recordedFormat the backing format its overlay records, as written there (null for none, or the top image)
     * @param format         the format the file is in, as probed (null when it could not be told)
     * @param virtualSize    the disk's size in bytes, or -1 when unknown
     * @param message        why the state is not ok, as a sentence (null when ok)
     * @param notes          other things worth knowing (no backing format recorded, the corrupt bit set, ...)
     * @param candidates     for a missing link, the files that could be it, best first
     */
    public record Link(int depth, String name, Path path, String recordedFormat, ImageFormat format, long virtualSize,
            State state, String message, List<String> notes, List<BackingSearch.Candidate> candidates) {
        public Link {
            notes = List.copyOf(notes);
            candidates = List.copyOf(candidates);
        }
    }

    /** A walked chain, from the image asked about down; it ends at the first broken link that cannot be passed. */
    public record Chain(List<Link> links) {
        public Chain {
            links = List.copyOf(links);
        }

        /** Whether every link opens as its overlay expects (a smaller backing file is only a warning). */
        public boolean whole() {
            return brokenLink() == null;
        }

        /** The first broken link, or null. */
        public Link brokenLink() {
            for (Link l : links) {
                if (l.state().broken()) return l;
            }
            return null;
        }
    }

    /**
     * @param format     the top image's format, or null to probe it
     * @param searchDirs directories to look in for a missing backing file (the overlay's own is always searched too)
     * @param maxDepth   how many backing files deep the chain may go
     */
    public record Options(ImageFormat format, List<Path> searchDirs, int maxDepth) {
        public Options {
            searchDirs = List.copyOf(searchDirs);
            if (maxDepth < 0) throw new IllegalArgumentException("negative chain depth " + maxDepth);
        }

        /** Chains as deep as {@link Images#open} opens. */
        public static Options of(ImageFormat format, List<Path> searchDirs) {
            return new Options(format, searchDirs, Images.MAX_CHAIN_DEPTH);
        }
    }

    /** A backing file name recorded by {@link #mend}. */
    public record Fix(Path overlay, BackingSearch.Candidate candidate) {}

    /** What {@link #mend} found, did, and left. */
    public record Mended(Chain before, List<Fix> fixes, Chain after) {
        public Mended {
            fixes = List.copyOf(fixes);
        }
    }

    /**
     * Walks the chain of {@code top}, changing nothing.
     *
     * @throws NoSuchFileException   when {@code top} itself does not exist
     * @throws ImageRequestException when a search directory is not a directory
     */
    public static Chain walk(Path top, Options options) throws IOException {
        for (Path dir : options.searchDirs()) {
            if (!Files.isDirectory(dir)) {
                throw new ImageRequestException("search directory " + dir + (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)
                        ? " is not a directory" : " does not exist"));
            }
        }
        List<Link> links = new ArrayList<>();
        Map<String, Integer> seen = new HashMap<>(); // file identity (device and inode) -> depth
        Path path = top;
        String name = null, recordedFormat = null;
        for (int depth = 0; ; depth++) {
            Link overlay = depth == 0 ? null : links.get(depth - 1);
            if (depth > options.maxDepth()) {
                links.add(new Link(depth, name, path, recordedFormat, null, -1, State.TOO_DEEP,
                        "the chain goes on past " + options.maxDepth() + " backing files, deeper than Panamax opens"
                                + " (a chain this long is almost surely a mistake or a hostile image)",
                        List.of(), List.of()));
                break;
            }
            Examined e = examine(depth, name, path, recordedFormat, overlay, links, seen, options);
            links.add(e.link());
            if (e.backingName() == null) break;
            name = e.backingName();
            recordedFormat = e.backingFormat();
            path = Qcow2Image.resolveBacking(e.link().path(), name);
        }
        return new Chain(links);
    }

    /**
     * Walks the chain and, while it is broken by a missing backing file of which exactly one candidate
     * has the recorded file name (with a fitting format and size), records that candidate in the
     * overlay (an unsafe rebase: only the header changes). With several or no such candidates, nothing
     * is changed.
     */
    public static Mended mend(Path top, Options options) throws IOException {
        Chain before = walk(top, options);
        Chain now = before;
        List<Fix> fixes = new ArrayList<>();
        for (int round = 0; round <= options.maxDepth(); round++) {
            Link broken = now.brokenLink();
            if (broken == null || broken.state() != State.MISSING) break;
            BackingSearch.Candidate only = BackingSearch.onlySameName(broken.candidates());
            if (only == null) break;
            Path overlay = now.links().get(broken.depth() - 1).path();
            ImageRebase.rebase(overlay, only.backingName(), only.format(), true);
            fixes.add(new Fix(overlay, only));
            now = walk(top, options);
        }
        return new Mended(before, fixes, now);
    }

    /** One link, and the backing file it names (null when none, or when the walk stops here). */
    private record Examined(Link link, String backingName, String backingFormat) {}

    private static Examined examine(int depth, String name, Path path, String recordedFormat, Link overlay,
            List<Link> above, Map<String, Integer> seen, Options options) throws IOException {
        List<String> notes = new ArrayList<>();
        String what = depth == 0 ? path.toString() : "backing file " + path;
        // The file's type and identity first, from its inode: nothing is opened that could block.
        FileKind kind;
        try {
            kind = FileKind.of(path);
        } catch (NoSuchFileException e) {
            if (depth == 0) throw new NoSuchFileException(path.toString(), null, "image file does not exist");
            String link = Files.isSymbolicLink(path) ? " (a symbolic link that leads nowhere)" : "";
            List<BackingSearch.Candidate> candidates = BackingSearch.find(overlay, name, recordedFormat, above,
                    options.searchDirs());
            return stop(new Link(depth, name, path, recordedFormat, null, -1, State.MISSING,
                    what + " does not exist" + link + "; it may have been moved, renamed or deleted", notes, candidates));
        } catch (AccessDeniedException e) {
            return stop(unreadable(depth, name, path, recordedFormat, what + " cannot be looked at: permission denied"
                    + " (on it or on a directory leading to it)"));
        } catch (IOException e) {
            return stop(unreadable(depth, name, path, recordedFormat, what + " cannot be looked at: " + e.getMessage()));
        }
        if (kind.refusal() != null) {
            return stop(unreadable(depth, name, path, recordedFormat, what + " is " + kind.refusal()));
        }
        Integer earlier = seen.putIfAbsent(kind.identity(), depth);
        if (earlier != null) {
            Link first = above.get(earlier);
            return stop(new Link(depth, name, path, recordedFormat, first.format(), first.virtualSize(), State.CYCLE,
                    what + " is " + (earlier == 0 ? "the image itself" : "link " + earlier + " of the chain") + " ("
                            + first.path() + "), so the chain loops: " + loop(above, earlier, path)
                            + "; no image can be its own backing file", notes, List.of()));
        }

        // The format the file is in, against the one its overlay records.
        ImageFormat format = depth == 0 ? options.format() : null;
        String probeRefusal = null;
        if (format == null) {
            try {
                format = Images.probe(path);
            } catch (InvalidImageException e) { // a format Panamax cannot read
                probeRefusal = e.getMessage();
            } catch (AccessDeniedException e) {
                return stop(unreadable(depth, name, path, recordedFormat, what + " cannot be read: permission denied"));
            } catch (IOException e) {
                return stop(unreadable(depth, name, path, recordedFormat, what + " cannot be read: " + e.getMessage()));
            }
        }
        ImageFormat recorded = null;
        if (recordedFormat != null) {
            try {
                recorded = ImageFormat.parse(recordedFormat);
            } catch (ImageRequestException e) {
                return stop(new Link(depth, name, path, recordedFormat, format, -1, State.UNSUPPORTED, overlay.path()
                        + " records its backing file's format as '" + printable(recordedFormat) + "': " + e.getMessage(),
                        notes, List.of()));
            }
        }
        if (probeRefusal != null) {
            if (recorded == ImageFormat.RAW) {
                return stop(new Link(depth, name, path, recordedFormat, null, -1, State.WRONG_FORMAT, overlay.path()
                        + " records its backing file as raw, but " + probeRefusal + ". Read as raw, that format's headers"
                        + " and tables are the disk the guest sees, and a write through them would destroy them",
                        notes, List.of()));
            }
            return stop(new Link(depth, name, path, recordedFormat, null, -1, State.UNSUPPORTED, probeRefusal, notes,
                    List.of()));
        }
        State state = State.OK;
        String message = null;
        if (recorded != null && recorded != format) {
            state = State.WRONG_FORMAT;
            message = wrongFormat(overlay.path(), name, path, recorded, format);
        } else if (depth > 0 && recorded == null) {
            notes.add(overlay.path() + " does not record its backing file's format, so it is probed on every open"
                    + " (and a raw disk whose guest wrote an image header at its start would be taken for that image);"
                    + " record it with '" + rebaseCommand(name, format, overlay.path()) + "'");
        }

        // The link's own header, without its backing file.
        long size;
        String backingName = null, backingFormat = null;
        try (BlockBackend disk = Images.open(path, Images.OpenOptions.readOnly().withoutBacking().withFormat(format))) {
            size = disk.size();
            if (disk instanceof Qcow2Image q) {
                backingName = q.backingFileName();
                backingFormat = q.backingFileName() == null ? null : q.backingFormatName();
                if (q.markedCorrupt()) notes.add(path + " is marked corrupt (by QEMU or Panamax, on finding damaged"
                        + " metadata): it opens read-only; run 'panamax image check' on it");
                if (q.markedDirty()) notes.add(path + " was not closed cleanly (dirty bit set): its refcounts are rebuilt"
                        + " on the next write");
            }
        } catch (AccessDeniedException e) {
            return stop(unreadable(depth, name, path, recordedFormat, what + " cannot be read: permission denied"));
        } catch (InvalidImageException e) {
            if (state == State.WRONG_FORMAT) return stop(new Link(depth, name, path, recordedFormat, format, -1, state,
                    message + " (and as " + format.id() + " it does not open either: " + e.getMessage() + ")", notes, List.of()));
            return stop(new Link(depth, name, path, recordedFormat, format, -1, State.CORRUPT, e.getMessage(), notes,
                    List.of()));
        } catch (IOException e) {
            return stop(unreadable(depth, name, path, recordedFormat, what + " cannot be read: " + e.getMessage()));
        }
        if (state == State.OK && overlay != null && overlay.virtualSize() >= 0 && size < overlay.virtualSize()) {
            state = State.SMALLER;
            message = path + " (" + size + " bytes) is smaller than its overlay " + overlay.path() + " ("
                    + overlay.virtualSize() + " bytes): past its end the overlay's unallocated clusters read as zeros,"
                    + " in QEMU as in Panamax, which is right when the overlay was grown after it was made; a backing"
                    + " file that was cut short loses its end this way";
        }
        return new Examined(new Link(depth, name, path, recordedFormat, format, size, state, message, notes, List.of()),
                backingName, backingFormat);
    }

    private static Examined stop(Link link) {
        return new Examined(link, null, null);
    }

    private static Link unreadable(int depth, String name, Path path, String recordedFormat, String message) {
        return new Link(depth, name, path, recordedFormat, null, -1, State.UNREADABLE, message, List.of(), List.of());
    }

    private static String wrongFormat(Path overlay, String name, Path path, ImageFormat recorded, ImageFormat actual) {
        String fix = "if " + path + " is the right file, record its format with '" + rebaseCommand(name, actual, overlay) + "'";
        if (recorded == ImageFormat.RAW) {
            return overlay + " records its backing file as raw, but " + path + " is a " + actual.id() + " image: read as"
                    + " raw, its " + actual.id() + " metadata (header and tables) is the disk the guest sees instead of"
                    + " the disk it holds, and a write or commit through it would overwrite that metadata; " + fix
                    + " (unless it is a raw disk whose guest wrote an image into it)";
        }
        return overlay + " records its backing file as " + recorded.id() + ", but " + path + " is "
                + (actual == ImageFormat.RAW ? "not a " + recorded.id() + " image (it probes as raw)" : "a " + actual.id() + " image")
                + ": QEMU and Panamax both refuse to open it as " + recorded.id() + "; " + fix;
    }

    /** "top -> mid -> top": the links from {@code from} down, then the path that leads back. */
    private static String loop(List<Link> above, int from, Path back) {
        StringBuilder s = new StringBuilder();
        for (int i = from; i < above.size(); i++) s.append(above.get(i).path()).append(" -> ");
        return s.append(back).toString();
    }

    /** The {@code rebase} command that records {@code name} and {@code format} as {@code overlay}'s backing file. */
    static String rebaseCommand(String name, ImageFormat format, Path overlay) {
        return "panamax image rebase -u -b " + shellWord(name) + " -F " + format.id() + " " + shellWord(overlay.toString());
    }

    /** {@code s} as one shell word: as it is when it needs no quoting, else in single quotes. */
    static String shellWord(String s) {
        if (!s.isEmpty() && s.chars().allMatch(c -> c < 128 && (Character.isLetterOrDigit(c) || "/._-+,:=@%".indexOf(c) >= 0))) {
            return s;
        }
        return "'" + s.replace("'", "'\\''") + "'";
    }

    /** A name from a header as it can be shown: control characters (a newline, an escape) as \xNN. */
    public static String printable(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == 0x7f) b.append(String.format(Locale.ROOT, "\\x%02x", (int) c));
            else b.append(c);
        }
        return b.toString();
    }
}
