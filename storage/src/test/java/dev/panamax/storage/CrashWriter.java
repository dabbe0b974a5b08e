package dev.panamax.storage;

import dev.panamax.storage.image.Images;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Random;

/**
 * The child process of {@link CrashConsistencyTest}: applies a deterministic stream of writes,
 * discards and zeroes to an image, flushing every {@link #FLUSH_EVERY} operations and then printing
 * "F n" (the first n operations are durable). It runs until killed.
 */
public final class CrashWriter {
    static final int FLUSH_EVERY = 8;
    static final int MAX_LEN = 40000;

    record Op(int kind, long offset, int length, long dataSeed) {
        static final int WRITE = 0, DISCARD = 1, ZEROES = 2;

        byte[] data() {
            byte[] b = new byte[length];
            new Random(dataSeed).nextBytes(b);
            return b;
        }
    }

    /** The i-th operation of the stream for {@code seed}; the parent regenerates it the same way. */
    static Op op(long seed, long i, long diskSize) {
        Random r = new Random(seed * 1_000_003L + i);
        int length = 1 + r.nextInt(MAX_LEN);
        long offset = (long) (r.nextDouble() * (diskSize - length));
        int k = r.nextInt(20);
        int kind = k < 16 ? Op.WRITE : k < 18 ? Op.DISCARD : Op.ZEROES;
        return new Op(kind, offset, length, r.nextLong());
    }

    public static void main(String[] args) throws Exception {
        Path image = Path.of(args[0]);
        long seed = Long.parseLong(args[1]);
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readWrite())) {
            System.out.println("R");
            System.out.flush(); // System.out may buffer; a line the parent never sees would misplace its window
            for (long i = 0; ; i++) {
                Op op = op(seed, i, disk.size());
                switch (op.kind()) {
                    case Op.WRITE -> disk.write(op.offset(), ByteBuffer.wrap(op.data()));
                    case Op.DISCARD -> disk.discard(op.offset(), op.length());
                    default -> disk.writeZeroes(op.offset(), op.length());
                }
                if ((i + 1) % FLUSH_EVERY == 0) {
                    disk.flush();
                    System.out.println("F " + (i + 1));
                    System.out.flush();
                }
            }
        }
    }
}
