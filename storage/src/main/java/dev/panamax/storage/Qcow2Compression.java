package dev.panamax.storage;

import java.util.Locale;

/**
 * How a qcow2 image compresses clusters: the header's {@code compression_type} field. It applies to
 * the whole image, so it is chosen when the image is created.
 */
public enum Qcow2Compression {
    /** Raw deflate; every qcow2 reader understands it. */
    ZLIB("zlib", 0),
    /** One zstd frame per cluster; needs a reader that knows incompatible feature bit 3 (QEMU 5.1 and later). */
    ZSTD("zstd", 1);

    private final String id;
    private final int code;

    Qcow2Compression(String id, int code) {
        this.id = id;
        this.code = code;
    }

    /** The name qemu-img uses ({@code compression_type=zstd}). */
    public String id() {
        return id;
    }

    /** The value of the header field. */
    public int code() {
        return code;
    }

    /** The type with header value {@code code}, or null when no type has it. */
    public static Qcow2Compression ofCode(int code) {
        for (Qcow2Compression c : values()) if (c.code == code) return c;
        return null;
    }

    public static Qcow2Compression parse(String name) {
        for (Qcow2Compression c : values()) if (c.id.equals(name.toLowerCase(Locale.ROOT))) return c;
        throw new ImageRequestException("compression type '" + name + "' is not known; use zlib or zstd");
    }
}
