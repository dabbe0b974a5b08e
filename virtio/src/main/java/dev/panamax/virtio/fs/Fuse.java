package dev.panamax.virtio.fs;

import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.util.List;

/**
 * The FUSE protocol of {@code <linux/fuse.h>} as Linux 6.1's virtio-fs client speaks it (7.31 and
 * later): opcodes, flags and the layouts of the fixed parts of requests and replies. Every {@code
 * int} field is the C macro of the same name and every layout the C struct of the same name; a test
 * compiles them against the system's header. All values are little-endian (the guest is x86-64).
 */
final class Fuse {
    private Fuse() {}

    static final int FUSE_KERNEL_VERSION = 7;
    /** The minor version this server speaks; an older client is refused, a newer one talks 7.31 to it. */
    static final int SERVER_MINOR = 31;
    static final int FUSE_ROOT_ID = 1;

    // Opcodes (enum fuse_opcode).
    static final int FUSE_LOOKUP = 1;
    static final int FUSE_FORGET = 2;
    static final int FUSE_GETATTR = 3;
    static final int FUSE_SETATTR = 4;
    static final int FUSE_READLINK = 5;
    static final int FUSE_SYMLINK = 6;
    static final int FUSE_MKNOD = 8;
    static final int FUSE_MKDIR = 9;
    static final int FUSE_UNLINK = 10;
    static final int FUSE_RMDIR = 11;
    static final int FUSE_RENAME = 12;
    static final int FUSE_LINK = 13;
    static final int FUSE_OPEN = 14;
    static final int FUSE_READ = 15;
    static final int FUSE_WRITE = 16;
    static final int FUSE_STATFS = 17;
    static final int FUSE_RELEASE = 18;
    static final int FUSE_FSYNC = 20;
    static final int FUSE_SETXATTR = 21;
    static final int FUSE_GETXATTR = 22;
    static final int FUSE_LISTXATTR = 23;
    static final int FUSE_REMOVEXATTR = 24;
    static final int FUSE_FLUSH = 25;
    static final int FUSE_INIT = 26;
    static final int FUSE_OPENDIR = 27;
    static final int FUSE_READDIR = 28;
    static final int FUSE_RELEASEDIR = 29;
    static final int FUSE_FSYNCDIR = 30;
    static final int FUSE_ACCESS = 34;
    static final int FUSE_CREATE = 35;
    static final int FUSE_INTERRUPT = 36;
    static final int FUSE_DESTROY = 38;
    static final int FUSE_BATCH_FORGET = 42;
    static final int FUSE_FALLOCATE = 43;
    static final int FUSE_READDIRPLUS = 44;
    static final int FUSE_RENAME2 = 45;
    static final int FUSE_LSEEK = 46;
    static final int FUSE_SYNCFS = 50;

    // INIT flags this server may grant.
    static final int FUSE_ASYNC_READ = 1;
    static final int FUSE_ATOMIC_O_TRUNC = 1 << 3;
    static final int FUSE_BIG_WRITES = 1 << 5;
    static final int FUSE_DO_READDIRPLUS = 1 << 13;
    static final int FUSE_READDIRPLUS_AUTO = 1 << 14;
    static final int FUSE_PARALLEL_DIROPS = 1 << 18;
    static final int FUSE_MAX_PAGES = 1 << 22;

    // fuse_open_out's open_flags.
    static final int FOPEN_DIRECT_IO = 1;
    static final int FOPEN_KEEP_CACHE = 1 << 1;

    // SETATTR's valid bits.
    static final int FATTR_MODE = 1;
    static final int FATTR_UID = 1 << 1;
    static final int FATTR_GID = 1 << 2;
    static final int FATTR_SIZE = 1 << 3;
    static final int FATTR_ATIME = 1 << 4;
    static final int FATTR_MTIME = 1 << 5;
    static final int FATTR_FH = 1 << 6;
    static final int FATTR_ATIME_NOW = 1 << 7;
    static final int FATTR_MTIME_NOW = 1 << 8;
    static final int FATTR_LOCKOWNER = 1 << 9;
    static final int FATTR_CTIME = 1 << 10;
    static final int FATTR_KILL_SUIDGID = 1 << 11;

    static final int FUSE_GETATTR_FH = 1;
    static final int FUSE_FSYNC_FDATASYNC = 1;
    static final int FUSE_COMPAT_SETXATTR_IN_SIZE = 8;

    private static StructLayout struct(String name, MemoryLayout... members) {
        return structLayout(members).withName(name);
    }

    private static MemoryLayout u32(String name) {
        return JAVA_INT.withName(name);
    }

    private static MemoryLayout u64(String name) {
        return JAVA_LONG.withName(name);
    }

    private static MemoryLayout u16(String name) {
        return JAVA_SHORT.withName(name);
    }

    static final StructLayout IN_HEADER = struct("fuse_in_header", u32("len"), u32("opcode"), u64("unique"), u64("nodeid"),
            u32("uid"), u32("gid"), u32("pid"), u16("total_extlen"), u16("padding"));
    static final StructLayout OUT_HEADER = struct("fuse_out_header", u32("len"), u32("error"), u64("unique"));
    static final StructLayout ATTR = struct("fuse_attr", u64("ino"), u64("size"), u64("blocks"), u64("atime"), u64("mtime"),
            u64("ctime"), u32("atimensec"), u32("mtimensec"), u32("ctimensec"), u32("mode"), u32("nlink"), u32("uid"),
            u32("gid"), u32("rdev"), u32("blksize"), u32("flags"));
    static final StructLayout ENTRY_OUT = struct("fuse_entry_out", u64("nodeid"), u64("generation"), u64("entry_valid"),
            u64("attr_valid"), u32("entry_valid_nsec"), u32("attr_valid_nsec"), ATTR.withName("attr"));
    static final StructLayout ATTR_OUT = struct("fuse_attr_out", u64("attr_valid"), u32("attr_valid_nsec"), u32("dummy"),
            ATTR.withName("attr"));
    static final StructLayout GETATTR_IN = struct("fuse_getattr_in", u32("getattr_flags"), u32("dummy"), u64("fh"));
    static final StructLayout FORGET_IN = struct("fuse_forget_in", u64("nlookup"));
    static final StructLayout FORGET_ONE = struct("fuse_forget_one", u64("nodeid"), u64("nlookup"));
    static final StructLayout BATCH_FORGET_IN = struct("fuse_batch_forget_in", u32("count"), u32("dummy"));
    static final StructLayout SETATTR_IN = struct("fuse_setattr_in", u32("valid"), u32("padding"), u64("fh"), u64("size"),
            u64("lock_owner"), u64("atime"), u64("mtime"), u64("ctime"), u32("atimensec"), u32("mtimensec"), u32("ctimensec"),
            u32("mode"), u32("unused4"), u32("uid"), u32("gid"), u32("unused5"));
    static final StructLayout MKNOD_IN = struct("fuse_mknod_in", u32("mode"), u32("rdev"), u32("umask"), u32("padding"));
    static final StructLayout MKDIR_IN = struct("fuse_mkdir_in", u32("mode"), u32("umask"));
    static final StructLayout RENAME_IN = struct("fuse_rename_in", u64("newdir"));
    static final StructLayout RENAME2_IN = struct("fuse_rename2_in", u64("newdir"), u32("flags"), u32("padding"));
    static final StructLayout LINK_IN = struct("fuse_link_in", u64("oldnodeid"));
    static final StructLayout OPEN_IN = struct("fuse_open_in", u32("flags"), u32("open_flags"));
    static final StructLayout CREATE_IN = struct("fuse_create_in", u32("flags"), u32("mode"), u32("umask"), u32("open_flags"));
    static final StructLayout OPEN_OUT = struct("fuse_open_out", u64("fh"), u32("open_flags"), u32("padding"));
    static final StructLayout RELEASE_IN = struct("fuse_release_in", u64("fh"), u32("flags"), u32("release_flags"), u64("lock_owner"));
    static final StructLayout FLUSH_IN = struct("fuse_flush_in", u64("fh"), u32("unused"), u32("padding"), u64("lock_owner"));
    static final StructLayout READ_IN = struct("fuse_read_in", u64("fh"), u64("offset"), u32("size"), u32("read_flags"),
            u64("lock_owner"), u32("flags"), u32("padding"));
    static final StructLayout WRITE_IN = struct("fuse_write_in", u64("fh"), u64("offset"), u32("size"), u32("write_flags"),
            u64("lock_owner"), u32("flags"), u32("padding"));
    static final StructLayout WRITE_OUT = struct("fuse_write_out", u32("size"), u32("padding"));
    static final StructLayout KSTATFS = struct("fuse_kstatfs", u64("blocks"), u64("bfree"), u64("bavail"), u64("files"),
            u64("ffree"), u32("bsize"), u32("namelen"), u32("frsize"), u32("padding"), sequenceLayout(6, JAVA_INT).withName("spare"));
    static final StructLayout FSYNC_IN = struct("fuse_fsync_in", u64("fh"), u32("fsync_flags"), u32("padding"));
    static final StructLayout GETXATTR_IN = struct("fuse_getxattr_in", u32("size"), u32("padding"));
    static final StructLayout GETXATTR_OUT = struct("fuse_getxattr_out", u32("size"), u32("padding"));
    static final StructLayout SETXATTR_IN = struct("fuse_setxattr_in", u32("size"), u32("flags"), u32("setxattr_flags"), u32("padding"));
    static final StructLayout ACCESS_IN = struct("fuse_access_in", u32("mask"), u32("padding"));
    static final StructLayout INIT_IN = struct("fuse_init_in", u32("major"), u32("minor"), u32("max_readahead"), u32("flags"),
            u32("flags2"), sequenceLayout(11, JAVA_INT).withName("unused"));
    static final StructLayout INIT_OUT = struct("fuse_init_out", u32("major"), u32("minor"), u32("max_readahead"), u32("flags"),
            u16("max_background"), u16("congestion_threshold"), u32("max_write"), u32("time_gran"), u16("max_pages"),
            u16("map_alignment"), u32("flags2"), sequenceLayout(7, JAVA_INT).withName("unused"));
    /** {@code struct fuse_dirent} without its flexible {@code name[]}, which follows, padded to 8 bytes. */
    static final StructLayout DIRENT = struct("fuse_dirent", u64("ino"), u64("off"), u32("namelen"), u32("type"));
    static final StructLayout DIRENTPLUS = struct("fuse_direntplus", ENTRY_OUT.withName("entry_out"), DIRENT.withName("dirent"));
    static final StructLayout FALLOCATE_IN = struct("fuse_fallocate_in", u64("fh"), u64("offset"), u64("length"), u32("mode"),
            u32("padding"));
    static final StructLayout LSEEK_IN = struct("fuse_lseek_in", u64("fh"), u64("offset"), u32("whence"), u32("padding"));
    static final StructLayout LSEEK_OUT = struct("fuse_lseek_out", u64("offset"));

    static final List<StructLayout> STRUCTS = List.of(IN_HEADER, OUT_HEADER, ATTR, ENTRY_OUT, ATTR_OUT, GETATTR_IN, FORGET_IN,
            FORGET_ONE, BATCH_FORGET_IN, SETATTR_IN, MKNOD_IN, MKDIR_IN, RENAME_IN, RENAME2_IN, LINK_IN, OPEN_IN, CREATE_IN,
            OPEN_OUT, RELEASE_IN, FLUSH_IN, READ_IN, WRITE_IN, WRITE_OUT, KSTATFS, FSYNC_IN, GETXATTR_IN, GETXATTR_OUT,
            SETXATTR_IN, ACCESS_IN, INIT_IN, INIT_OUT, DIRENT, DIRENTPLUS, FALLOCATE_IN, LSEEK_IN, LSEEK_OUT);
}
