package dev.panamax.sys;

/**
 * One entry {@code getdents64(2)} returned: the inode number, the offset to resume after it, its
 * {@code d_type} (a {@code DT_*} value, the file type bits shifted right by 12) and its name's bytes.
 */
public record DirEntry(long inode, long nextOffset, int type, byte[] name) {

    /** Whether the name is {@code "."} or {@code ".."}. */
    public boolean isDotOrDotDot() {
        return name.length <= 2 && name[0] == '.' && (name.length == 1 || name[1] == '.');
    }
}
