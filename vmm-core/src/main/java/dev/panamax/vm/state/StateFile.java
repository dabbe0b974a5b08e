package dev.panamax.vm.state;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * The container of a snapshot's state ({@code docs/snapshot-format.md}): the magic {@code
 * PANAMAXS}, the format version (u32), the payload's length (u64), the payload, and a CRC-32C of
 * everything before it (u32). Reading checks the size, magic, version, length and checksum, in
 * that order, before a byte of the payload is interpreted.
 */
public final class StateFile {
    private StateFile() {}

    /** The version this code writes and the only one it reads. */
    public static final int VERSION = 5;
    /** Far above any real VM's state (guest memory is in its own file), so a hostile length cannot make a huge allocation. */
    public static final long MAX_SIZE = 64L << 20;

    private static final byte[] MAGIC = {'P', 'A', 'N', 'A', 'M', 'A', 'X', 'S'};
    private static final int HEADER = MAGIC.length + 4 + 8;
    private static final int TRAILER = 4;

    /** Writes {@code payload} in the container to {@code path} and forces it to disk. */
    public static void write(Path path, byte[] payload) throws IOException {
        ByteBuffer all = ByteBuffer.allocate(HEADER + payload.length + TRAILER);
        all.put(MAGIC).putInt(VERSION).putLong(payload.length).put(payload);
        CRC32C crc = new CRC32C();
        crc.update(all.array(), 0, all.position());
        all.putInt((int) crc.getValue()).flip();
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            while (all.hasRemaining()) {
                file.write(all);
            }
            file.force(true);
        }
    }

    /**
     * The payload of the state file at {@code path}, checked.
     *
     * @throws StateFormatException when it is not a whole, intact state file of this version
     * @throws IOException when it cannot be read
     */
    public static StateReader read(Path path) throws IOException {
        byte[] all;
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = file.size();
            if (size > MAX_SIZE) {
                throw new StateFormatException(path + " is " + size + " bytes, more than any Panamax state file (" + MAX_SIZE
                        + "): it is not one");
            }
            all = new byte[(int) size];
            ByteBuffer buffer = ByteBuffer.wrap(all);
            while (buffer.hasRemaining() && file.read(buffer) >= 0) {
                // reading the whole file
            }
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(path.toString(), null, "no such snapshot state file");
        }
        return parse(all, path.toString());
    }

    /** {@link #read} on bytes already in memory; {@code name} is what messages call them. */
    public static StateReader parse(byte[] all, String name) {
        if (all.length < MAGIC.length || !java.util.Arrays.equals(all, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            throw new StateFormatException(name + " is not a Panamax snapshot state file (no PANAMAXS magic at its start)");
        }
        if (all.length < HEADER + TRAILER) {
            throw new StateFormatException(name + " is truncated: " + all.length + " bytes, less than a state file's header");
        }
        ByteBuffer header = ByteBuffer.wrap(all);
        header.position(MAGIC.length);
        int version = header.getInt();
        if (version != VERSION) {
            throw new StateFormatException(name + " is in snapshot format version " + Integer.toUnsignedString(version)
                    + "; this Panamax reads version " + VERSION + " only");
        }
        long length = header.getLong();
        long expected = all.length - HEADER - TRAILER;
        if (length != expected) {
            throw new StateFormatException(name + (length > expected ? " is truncated" : " has trailing bytes") + ": its header gives "
                    + Long.toUnsignedString(length) + " bytes of state, and the file holds " + expected);
        }
        CRC32C crc = new CRC32C();
        crc.update(all, 0, all.length - TRAILER);
        int stored = ByteBuffer.wrap(all, all.length - TRAILER, TRAILER).getInt();
        if (stored != (int) crc.getValue()) {
            throw new StateFormatException(String.format("%s is corrupt: its checksum is 0x%08x, and its bytes sum to 0x%08x",
                    name, stored, (int) crc.getValue()));
        }
        byte[] payload = java.util.Arrays.copyOfRange(all, HEADER, all.length - TRAILER);
        return new StateReader(payload, name);
    }
}
