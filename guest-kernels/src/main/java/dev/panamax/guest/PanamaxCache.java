package dev.panamax.guest;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The build cache outside the repository ({@code $PANAMAX_CACHE}, else {@code $XDG_CACHE_HOME/panamax},
 * else {@code ~/.cache/panamax}). Each entry is a directory whose name carries its key (package
 * version, config hash); it is filled in a temporary sibling and renamed into place, so an entry that
 * exists is complete. A file lock keeps two JVMs (a test run and the CLI) from building one entry twice.
 */
public final class PanamaxCache {
    private static final ConcurrentHashMap<Path, ReentrantLock> IN_PROCESS = new ConcurrentHashMap<>();

    private PanamaxCache() {}

    /** Fills a fresh directory with an entry's content. */
    @FunctionalInterface
    public interface Filler {
        void fill(Path dir) throws IOException;
    }

    public static Path root() {
        String explicit = System.getenv("PANAMAX_CACHE");
        if (explicit != null && !explicit.isBlank()) return Path.of(explicit).toAbsolutePath();
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("panamax").toAbsolutePath();
    }

    /** The entry {@code key} (package version, config hash) of cache section {@code kind}. */
    public static Path dir(String kind, String key) {
        return root().resolve(kind).resolve(key.replace(':', '+').replace('/', '_'));
    }

    /** Returns {@code entry}, filling it with {@code filler} first when it does not exist yet. */
    public static Path entry(Path entry, Filler filler) {
        if (Files.isDirectory(entry)) return entry;
        ReentrantLock local = IN_PROCESS.computeIfAbsent(entry, e -> new ReentrantLock());
        local.lock();
        try {
            Files.createDirectories(entry.getParent());
            Path lockFile = entry.resolveSibling(entry.getFileName() + ".lock");
            try (FileChannel ch = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                    FileLock _ = ch.lock()) {
                if (Files.isDirectory(entry)) return entry; // another process built it while we waited
                // Under the lock no one else fills this entry: any temporary sibling is left from a
                // killed build (a kernel tree is 1.5 GB) and goes.
                String tmpPrefix = ".tmp-" + entry.getFileName() + "-";
                try (var stale = Files.newDirectoryStream(entry.getParent(), tmpPrefix + "*")) {
                    for (Path p : stale) deleteTree(p);
                }
                Path tmp = entry.resolveSibling(tmpPrefix + ProcessHandle.current().pid());
                Files.createDirectories(tmp);
                try {
                    filler.fill(tmp);
                    Files.move(tmp, entry, StandardCopyOption.ATOMIC_MOVE);
                } finally {
                    deleteTree(tmp);
                }
            }
            return entry;
        } catch (IOException e) {
            throw new UncheckedIOException("could not create cache entry " + entry + ": " + e.getMessage(), e);
        } finally {
            local.unlock();
        }
    }

    /** Deletes a directory tree if it exists (symlinks are removed, not followed). */
    public static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        Files.walkFileTree(dir, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                if (e != null) throw e;
                if (!Files.isWritable(d)) d.toFile().setWritable(true);
                Files.delete(d);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    /** The first {@code hexChars} hex digits of the SHA-256 of {@code text}: the config part of a cache key. */
    public static String hash(String text, int hexChars) {
        try {
            byte[] d = java.security.MessageDigest.getInstance("SHA-256").digest(text.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return java.util.HexFormat.of().formatHex(d).substring(0, hexChars);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError("SHA-256 is always available", e);
        }
    }
}
