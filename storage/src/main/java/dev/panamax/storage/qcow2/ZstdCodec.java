package dev.panamax.storage.qcow2;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdException;
import java.util.zip.DataFormatException;

/**
 * The compression of qcow2's compression type 1: each compressed cluster holds standard zstd frames
 * (QEMU writes one, at zstd's default level). The descriptor's length covers whole 512-byte sectors,
 * so the data read for a cluster usually runs on past the last frame, often into the next cluster's
 * frame: frames are therefore located with their own sizes and decompressed one by one until the
 * cluster is full, never by handing the whole range to the decoder. Contexts are made on first use
 * and kept, so a compressed image does not set up zstd state per cluster.
 */
final class ZstdCodec implements ClusterCodec {
    private ZstdDecompressCtx decompressor;
    private ZstdCompressCtx compressor;

    /**
     * Decompresses frame after frame until {@code outLength} bytes are produced or the input is
     * used up. A frame that would produce more than the room left is an error, as in QEMU.
     */
    @Override
    public int decompress(byte[] in, int inLength, byte[] out, int outLength) throws DataFormatException {
        if (decompressor == null) decompressor = new ZstdDecompressCtx();
        int pos = 0, produced = 0;
        while (produced < outLength && pos < inLength) {
            long frame;
            try {
                frame = Zstd.findFrameCompressedSize(in, pos, inLength - pos);
            } catch (ZstdException e) {
                throw new DataFormatException("no complete zstd frame at byte " + pos + " of the " + inLength
                        + " compressed bytes (" + e.getMessage() + ")");
            }
            if (Zstd.isError(frame) || frame <= 0 || frame > inLength - pos) {
                throw new DataFormatException("no complete zstd frame at byte " + pos + " of the " + inLength
                        + " compressed bytes");
            }
            try {
                produced += decompressor.decompressByteArray(out, produced, outLength - produced, in, pos, (int) frame);
            } catch (ZstdException e) {
                throw new DataFormatException("zstd frame at byte " + pos + " does not decompress into the "
                        + (outLength - produced) + " bytes left of the cluster (" + e.getMessage() + ")");
            }
            pos += (int) frame;
        }
        return produced;
    }

    @Override
    public int compress(byte[] in, int length, byte[] out, int outLength) {
        if (compressor == null) compressor = new ZstdCompressCtx().setLevel(Zstd.defaultCompressionLevel());
        try {
            return compressor.compressByteArray(out, 0, outLength, in, 0, length);
        } catch (ZstdException e) { // "destination buffer is too small": the data does not compress (each call starts afresh)
            return -1;
        }
    }

    @Override
    public void close() {
        if (decompressor != null) decompressor.close();
        if (compressor != null) compressor.close();
        decompressor = null;
        compressor = null;
    }
}
