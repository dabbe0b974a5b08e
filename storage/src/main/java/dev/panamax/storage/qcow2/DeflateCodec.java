package dev.panamax.storage.qcow2;

import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * The compression of qcow2's compression type 0: raw deflate (no zlib header), as QEMU writes it.
 * One {@link Inflater} and one {@link Deflater} per image, each made on first use and reset before
 * every cluster, so a compressed image does not set up (and tear down) zlib state per cluster. Not
 * thread-safe: the image serializes its requests.
 */
final class DeflateCodec implements ClusterCodec {
    private Inflater inflater;
    private Deflater deflater;

    /**
     * Inflates, stopping early at the end of the stream or when the input runs out. What the stream
     * would produce beyond {@code outLength} is not looked at, as in QEMU.
     */
    @Override
    public int decompress(byte[] in, int inLength, byte[] out, int outLength) throws DataFormatException {
        if (inflater == null) {
            inflater = new Inflater(true);
        } else {
            inflater.reset();
        }
        inflater.setInput(in, 0, inLength);
        int produced = 0;
        while (produced < outLength) {
            int n = inflater.inflate(out, produced, outLength - produced);
            if (n == 0 && (inflater.finished() || inflater.needsInput() || inflater.needsDictionary())) break;
            produced += n;
        }
        return produced;
    }

    /** Deflates at the default level. */
    @Override
    public int compress(byte[] in, int length, byte[] out, int outLength) {
        if (deflater == null) {
            deflater = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
        } else {
            deflater.reset();
        }
        deflater.setInput(in, 0, length);
        deflater.finish();
        int n = deflater.deflate(out, 0, outLength);
        return deflater.finished() ? n : -1;
    }

    @Override
    public void close() {
        if (inflater != null) inflater.end();
        if (deflater != null) deflater.end();
        inflater = null;
        deflater = null;
    }
}
