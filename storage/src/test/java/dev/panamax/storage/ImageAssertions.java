package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.storage.image.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;

/** Checks of what Panamax reads from an image in a format another tool wrote, shared by the tests of each format. */
final class ImageAssertions {
    private ImageAssertions() {}

    static void assertSameBytes(byte[] actual, byte[] expected, String what) {
        assertThat(actual.length).as(what + " size").isEqualTo(expected.length);
        assertThat(Arrays.mismatch(actual, expected)).as(what + ": first differing byte").isEqualTo(-1);
    }

    /**
     * Reads the image in pieces of {@code piece} bytes (chosen to cross the format's grain or block
     * edges) and checks that no extent other than DATA holds a non-zero byte.
     */
    static void assertReadsInPieces(Path image, byte[] expected, int piece) throws IOException {
        try (BlockBackend disk = Images.open(image, Images.OpenOptions.readOnly())) {
            byte[] got = new byte[expected.length];
            for (int at = 0; at < got.length; ) {
                int n = Math.min(piece, got.length - at);
                disk.read(at, ByteBuffer.wrap(got, at, n));
                at += n;
            }
            assertSameBytes(got, expected, image + " read in pieces");
            for (long at = 0; at < disk.size(); ) {
                Extent e = disk.extent(at, disk.size() - at);
                if (e.kind() != Extent.Kind.DATA) {
                    int nonZero = Arrays.mismatch(expected, (int) e.offset(), (int) e.end(), new byte[(int) e.length()], 0,
                            (int) e.length());
                    assertThat(nonZero).as(image + ": first non-zero byte in the " + e.kind() + " extent at " + e.offset())
                            .isEqualTo(-1);
                }
                at = e.end();
            }
        }
    }
}
