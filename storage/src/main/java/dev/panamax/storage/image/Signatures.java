package dev.panamax.storage.image;

import dev.panamax.storage.ForeignFormat;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The signatures of VMDK, VDI and VHDX, and of the formats Panamax cannot read, as QEMU's block drivers recognise them
 * ({@code block/*.c}, each driver's probe function): {@link Images#probe} refuses what matches, and
 * takes a file for raw only where nothing does.
 */
final class Signatures {
    /** How much of a file's start is probed: QEMU's {@code BLOCK_PROBE_BUF_SIZE}; past the end of a file it reads zeros. */
    static final int HEAD_BYTES = 2048;
    /** The file's last bytes that are probed: a fixed VHD's footer, a DMG's UDIF trailer. */
    static final int TAIL_BYTES = 512;

    private Signatures() {}

    /**
     * The foreign format whose signature {@code head} (the file's first {@link #HEAD_BYTES},
     * zero-padded) starts with, or null.
     */
    static ForeignFormat atStart(ByteBuffer head) {
        ByteBuffer be = head.duplicate().order(ByteOrder.BIG_ENDIAN);
        ByteBuffer le = head.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int magic = be.getInt(0);
        if (startsWith(head, 0, "QED\0")) return ForeignFormat.QED;
        // LUKS: QEMU's driver opens version 1 and probes only that; a LUKS2 volume is refused too, as no raw disk.
        if (startsWith(head, 0, "LUKS\u00ba\u00be") && (be.getShort(6) == 1 || be.getShort(6) == 2)) return ForeignFormat.LUKS;
        if ((startsWith(head, 0, "WithoutFreeSpace") || startsWith(head, 0, "WithouFreSpacExt")) && le.getInt(16) == 2) {
            return ForeignFormat.PARALLELS;
        }
        if (startsWith(head, 0, "Bochs Virtual HD Image\0") && startsWith(head, 32, "Redolog\0")
                && startsWith(head, 48, "Growing\0") && (le.getInt(64) == 0x10000 || le.getInt(64) == 0x20000)) {
            return ForeignFormat.BOCHS;
        }
        // qcow shares qcow2's magic ("QFI\xfb"); its version is 1.
        if (magic == 0x514649fb && be.getInt(4) == 1) return ForeignFormat.QCOW;
        if (startsWith(head, 0, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n")) {
            return ForeignFormat.CLOOP;
        }
        return null;
    }

    /**
     * The foreign format whose trailer {@code tail} (the file's last {@link #TAIL_BYTES}) is, or
     * null: a DMG's UDIF trailer, "koly" with version 4 and its own size, 512. (qemu-img takes a
     * file for DMG by its name ending in .dmg alone; Panamax goes by the contents.)
     */
    static ForeignFormat atEnd(ByteBuffer tail) {
        ByteBuffer be = tail.duplicate().order(ByteOrder.BIG_ENDIAN);
        if (tail.limit() >= TAIL_BYTES && startsWith(tail, 0, "koly") && be.getInt(4) == 4 && be.getInt(8) == TAIL_BYTES) {
            return ForeignFormat.DMG;
        }
        return null;
    }

    /**
     * Whether {@code head} (the file's first {@link #HEAD_BYTES}, zero-padded) is a VMDK file: a sparse
     * extent (KDMV, or COWD of VMware's older format), or a descriptor file.
     */
    static boolean isVmdk(ByteBuffer head) {
        int magic = head.duplicate().order(ByteOrder.BIG_ENDIAN).getInt(0);
        return magic == 0x4b444d56 || magic == 0x434f5744 || isVmdkDescriptor(head);
    }

    /** Whether {@code head} is a VDI image: the signature after the 64-byte banner ("<<< ... VirtualBox Disk Image >>>"). */
    static boolean isVdi(ByteBuffer head) {
        return head.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(0x40) == 0xbeda107f;
    }

    /** Whether {@code head} is a VHDX image: its file identifier, "vhdxfile". */
    static boolean isVhdx(ByteBuffer head) {
        return startsWith(head, 0, "vhdxfile");
    }

    /**
     * A VMDK descriptor, as QEMU's VMDK driver knows one: comment lines ({@code #...}) and lines of
     * spaces may come first; the first other line is {@code version=1}, {@code 2} or {@code 3}.
     */
    private static boolean isVmdkDescriptor(ByteBuffer head) {
        int end = head.limit();
        int p = 0;
        while (p < end) {
            byte c = head.get(p);
            if (c == '#') {
                while (p < end && head.get(p) != '\n') p++;
                p++;
            } else if (c == ' ') {
                while (p < end && head.get(p) == ' ') p++;
                if (p < end && head.get(p) == '\r') p++;
                if (p == end || head.get(p) != '\n') return false;
                p++;
            } else {
                for (char v = '1'; v <= '3'; v++) {
                    if (startsWith(head, p, "version=" + v + "\n") || startsWith(head, p, "version=" + v + "\r\n")) return true;
                }
                return false;
            }
        }
        return false;
    }

    /** Whether {@code b} holds {@code text}'s characters (each below 256, one byte each) at {@code at}. */
    private static boolean startsWith(ByteBuffer b, int at, String text) {
        byte[] t = text.getBytes(StandardCharsets.ISO_8859_1);
        if (at + t.length > b.limit()) return false;
        for (int i = 0; i < t.length; i++) {
            if (b.get(at + i) != t[i]) return false;
        }
        return true;
    }
}
