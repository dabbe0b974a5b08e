package dev.panamax.storage.qcow2;

import dev.panamax.storage.Qcow2Compression;
import java.util.zip.DataFormatException;

/**
 * The compression of compressed clusters, one implementation per header {@code compression_type}.
 * An image keeps one codec, made when it opens; codecs keep native state between clusters and are
 * not thread-safe (the image serializes its requests).
 */
sealed interface ClusterCodec extends AutoCloseable permits DeflateCodec, ZstdCodec {

    static ClusterCodec of(Qcow2Compression type) {
        return switch (type) {
            case ZLIB -> new DeflateCodec();
            case ZSTD -> new ZstdCodec();
        };
    }

    /**
     * Decompresses {@code in[0, inLength)} into {@code out[0, outLength)}. The input may run on past
     * the end of the compressed stream (a descriptor covers whole 512-byte sectors), and such bytes are
     * ignored.
     *
     * @return the number of bytes produced, at most {@code outLength}; fewer when the stream ends early
     * @throws DataFormatException the input is not valid compressed data, or (where the format can
     *         tell) it decompresses to more than {@code outLength} bytes
     */
    int decompress(byte[] in, int inLength, byte[] out, int outLength) throws DataFormatException;

    /**
     * Compresses {@code in[0, length)} into {@code out[0, outLength)}.
     *
     * @return the compressed length, or -1 when the compressed data does not fit
     */
    int compress(byte[] in, int length, byte[] out, int outLength);

    /** Frees the native state; the codec may not be used afterwards. */
    @Override
    void close();
}
