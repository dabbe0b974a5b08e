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
final class DeflateCodec implements AutoCloseable {
    private Inflater inflater;
    private Deflater deflater;

    /**
     * Inflates {@code in[0, inLength)} into {@code out[0, outLength)}, stopping early at the end of
     * the stream or when the input runs out.
     *
     * @return the number of bytes produced
     */
    int inflate(byte[] in, int inLength, byte[] out, int outLength) throws DataFormatException {
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

    /**
     * Deflates {@code in[0, length)} (at the default level) into {@code out[0, outLength)}.
     *
     * @return the compressed length, or -1 when the compressed stream does not fit
     */
    int deflate(byte[] in, int length, byte[] out, int outLength) {
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

    /** Frees the native zlib state; the codec may not be used afterwards. */
    @Override
    public void close() {
        if (inflater != null) inflater.end();
        if (deflater != null) deflater.end();
        inflater = null;
        deflater = null;
    }
}
