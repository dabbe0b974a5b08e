package dev.panamax.boot;

import dev.panamax.vm.GuestMemory;
import dev.panamax.x86.PhysicalLayout;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.OptionalLong;

/**
 * A Linux kernel file, parsed and validated: an ELF {@code vmlinux} (loaded by its PT_LOAD
 * segments; entered through the PVH note's 32-bit entry or the ELF entry, which for x86 vmlinux is
 * the physical address of {@code startup_64}), or a {@code bzImage} (the 64-bit boot protocol of
 * Documentation/arch/x86/boot.rst: the protected-mode kernel loaded at 1 MiB and entered at
 * +0x200). Every header field read from the file is checked before use.
 */
public final class KernelImage {
    public enum Format { VMLINUX, BZIMAGE }

    private static final int ELF_MAGIC = 0x464c457f;
    private static final int PT_LOAD = 1;
    private static final int PT_NOTE = 4;
    private static final int XEN_ELFNOTE_PHYS32_ENTRY = 18;
    private static final int MAX_PROGRAM_HEADERS = 128;
    /** 2.12: the first protocol with xloadflags, which says whether the 64-bit entry exists. */
    private static final int MIN_BOOT_PROTOCOL = 0x020c;
    private static final int DEFAULT_CMDLINE_SIZE = 2048;

    private final Path path;
    private final Format format;
    private final long fileSize;
    /** vmlinux: the PT_LOAD segments as {offset, paddr, filesz, memsz}. */
    private final long[][] segments;
    private final long entry64;
    private final OptionalLong pvhEntry;
    /** bzImage: the first sectors holding the setup header; null for vmlinux. */
    private final byte[] setupHeader;
    private final long protectedModeOffset;
    private final long loadEnd;
    private final int commandLineLimit;
    private final long initrdAddressMax;

    private KernelImage(Path path, Format format, long fileSize, long[][] segments, long entry64, OptionalLong pvhEntry,
                        byte[] setupHeader, long protectedModeOffset, long loadEnd, int commandLineLimit, long initrdAddressMax) {
        this.path = path;
        this.format = format;
        this.fileSize = fileSize;
        this.segments = segments;
        this.entry64 = entry64;
        this.pvhEntry = pvhEntry;
        this.setupHeader = setupHeader;
        this.protectedModeOffset = protectedModeOffset;
        this.loadEnd = loadEnd;
        this.commandLineLimit = commandLineLimit;
        this.initrdAddressMax = initrdAddressMax;
    }

    /**
     * Reads and validates the kernel's headers.
     *
     * @throws BootException when the file is missing, unreadable or not a kernel Panamax can boot
     */
    public static KernelImage open(Path path) {
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = file.size();
            if (Files.isDirectory(path)) {
                throw new BootException(path + " is a directory, not a kernel");
            }
            ByteBuffer head = read(file, 0, (int) Math.min(size, 0x1000));
            if (head.limit() >= 4 && head.getInt(0) == ELF_MAGIC) {
                return openElf(path, file, size, head);
            }
            if (head.limit() >= 0x240 && Short.toUnsignedInt(head.getShort(BootParams.BOOT_FLAG)) == BootParams.BOOT_FLAG_MAGIC
                    && head.getInt(BootParams.HEADER) == BootParams.HEADER_MAGIC) {
                return openBzImage(path, size, head);
            }
            throw new BootException(path + " is not a Linux kernel: neither an ELF vmlinux nor a bzImage");
        } catch (NoSuchFileException e) {
            throw new BootException("kernel " + path + " does not exist");
        } catch (IOException e) {
            throw new BootException("cannot read kernel " + path + ": " + e.getMessage(), e);
        }
    }

    private static KernelImage openElf(Path path, FileChannel file, long size, ByteBuffer h) throws IOException {
        if (h.limit() < 64 || h.get(4) != 2 || h.get(5) != 1) {
            throw new BootException(path + " is not a 64-bit little-endian ELF file");
        }
        if (Short.toUnsignedInt(h.getShort(18)) != 62) {
            throw new BootException(path + " is an ELF file for another machine, not x86-64");
        }
        long entry = h.getLong(24);
        long phoff = h.getLong(32);
        int phentsize = Short.toUnsignedInt(h.getShort(54));
        int phnum = Short.toUnsignedInt(h.getShort(56));
        if (phentsize < 56 || phnum == 0 || phnum > MAX_PROGRAM_HEADERS || phoff < 0 || phoff > size - (long) phentsize * phnum) {
            throw new BootException(path + " has a malformed ELF program header table");
        }
        ByteBuffer ph = read(file, phoff, phentsize * phnum);
        java.util.List<long[]> loads = new java.util.ArrayList<>();
        OptionalLong pvh = OptionalLong.empty();
        long end = 0;
        for (int i = 0; i < phnum; i++) {
            int at = i * phentsize;
            int type = ph.getInt(at);
            long offset = ph.getLong(at + 8);
            long paddr = ph.getLong(at + 24);
            long filesz = ph.getLong(at + 32);
            long memsz = ph.getLong(at + 40);
            if (type != PT_LOAD && type != PT_NOTE) {
                continue;
            }
            if (offset < 0 || filesz < 0 || offset > size - filesz) {
                throw new BootException(path + ": ELF segment " + i + " lies outside the file");
            }
            if (type == PT_LOAD) {
                if (memsz < filesz || paddr < PhysicalLayout.KERNEL_LOAD || paddr > Long.MAX_VALUE - memsz) {
                    throw new BootException(String.format("%s: ELF segment %d has a bad physical address 0x%x or size", path, i, paddr));
                }
                if (memsz > 0) { // an empty segment loads nothing: a vmlinux of only those is no kernel
                    loads.add(new long[] {offset, paddr, filesz, memsz});
                    end = Math.max(end, paddr + memsz);
                }
            } else if (filesz <= 1 << 20) {
                OptionalLong found = pvhEntry(read(file, offset, (int) filesz));
                if (found.isPresent()) {
                    pvh = found;
                }
            }
        }
        if (loads.isEmpty()) {
            throw new BootException(path + " has no loadable ELF segments");
        }
        return new KernelImage(path, Format.VMLINUX, size, loads.toArray(long[][]::new), entry, pvh, null, 0, end,
                DEFAULT_CMDLINE_SIZE - 1, PhysicalLayout.MMIO_HOLE_START - 1);
    }

    /** Finds XEN_ELFNOTE_PHYS32_ENTRY among the notes; each is namesz, descsz, type, name, desc, 4-aligned. */
    private static OptionalLong pvhEntry(ByteBuffer notes) {
        int at = 0;
        while (at + 12 <= notes.limit()) {
            long namesz = Integer.toUnsignedLong(notes.getInt(at));
            long descsz = Integer.toUnsignedLong(notes.getInt(at + 4));
            int type = notes.getInt(at + 8);
            long name = at + 12L;
            long desc = name + align4(namesz);
            long next = desc + align4(descsz);
            if (next > notes.limit()) {
                return OptionalLong.empty();
            }
            boolean xen = namesz == 4 && notes.get((int) name) == 'X' && notes.get((int) name + 1) == 'e' && notes.get((int) name + 2) == 'n';
            if (xen && type == XEN_ELFNOTE_PHYS32_ENTRY && descsz >= 4) {
                return OptionalLong.of(descsz >= 8 ? notes.getLong((int) desc) : Integer.toUnsignedLong(notes.getInt((int) desc)));
            }
            at = (int) next;
        }
        return OptionalLong.empty();
    }

    private static long align4(long n) {
        return (n + 3) & ~3L;
    }

    private static KernelImage openBzImage(Path path, long size, ByteBuffer h) {
        int version = Short.toUnsignedInt(h.getShort(BootParams.VERSION));
        if (version < MIN_BOOT_PROTOCOL) {
            throw new BootException(String.format("%s uses boot protocol %d.%02d; Panamax needs 2.12 or later (a kernel from 2013 on)",
                    path, version >> 8, version & 0xff));
        }
        if ((h.get(BootParams.LOADFLAGS) & BootParams.LOADED_HIGH) == 0) {
            throw new BootException(path + " is a zImage that must load below 1 MiB; only bzImages are supported");
        }
        if ((Short.toUnsignedInt(h.getShort(BootParams.XLOADFLAGS)) & BootParams.XLF_KERNEL_64) == 0) {
            throw new BootException(path + " has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64): is it a 32-bit kernel?");
        }
        int setupSects = Byte.toUnsignedInt(h.get(BootParams.SETUP_SECTS));
        long protectedModeOffset = (long) ((setupSects == 0 ? 4 : setupSects) + 1) * 512;
        if (protectedModeOffset >= size) {
            throw new BootException(path + " is truncated: no protected-mode kernel after its " + setupSects + " setup sectors");
        }
        long initSize = Integer.toUnsignedLong(h.getInt(BootParams.INIT_SIZE));
        long kernelSize = size - protectedModeOffset;
        long end = PhysicalLayout.KERNEL_LOAD + Math.max(initSize, kernelSize);
        int cmdlineSize = h.getInt(BootParams.CMDLINE_SIZE);
        long initrdMax = Integer.toUnsignedLong(h.getInt(BootParams.INITRD_ADDR_MAX));
        byte[] header = new byte[Math.min(h.limit(), 0x1000)];
        h.get(0, header);
        return new KernelImage(path, Format.BZIMAGE, size, null, PhysicalLayout.KERNEL_LOAD + 0x200, OptionalLong.empty(),
                header, protectedModeOffset, end, cmdlineSize > 0 ? cmdlineSize - 1 : DEFAULT_CMDLINE_SIZE - 1, initrdMax);
    }

    private static ByteBuffer read(FileChannel file, long position, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        while (buffer.hasRemaining()) {
            if (file.read(buffer, position + buffer.position()) < 0) {
                break;
            }
        }
        return buffer.flip();
    }

    public Path path() {
        return path;
    }

    public Format format() {
        return format;
    }

    /** The 64-bit entry point (physical). */
    public long entry64() {
        return entry64;
    }

    /** The PVH 32-bit entry point, if the vmlinux has the note. */
    public OptionalLong pvhEntry() {
        return pvhEntry;
    }

    /** The first byte above everything the kernel occupies while it starts (bzImage: init_size). */
    public long loadEnd() {
        return loadEnd;
    }

    /** The longest command line the kernel accepts, without the terminating NUL. */
    public int commandLineLimit() {
        return commandLineLimit;
    }

    /** The highest address the initrd may occupy. */
    public long initrdAddressMax() {
        return initrdAddressMax;
    }

    /** A zero page with this kernel's setup header (if it has one). */
    BootParams newBootParams() {
        return new BootParams(setupHeader);
    }

    /** Copies the kernel into guest memory; {@code memoryEnd} is the end of RAM below the MMIO hole. */
    void load(GuestMemory memory, long memoryEnd) {
        if (loadEnd > memoryEnd) {
            throw new BootException(String.format("kernel %s needs memory up to %d MiB to start, but the guest has %d MiB below the MMIO hole",
                    path, (loadEnd + (1 << 20) - 1) >> 20, memoryEnd >> 20));
        }
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.READ)) {
            if (format == Format.BZIMAGE) {
                copy(file, protectedModeOffset, fileSize - protectedModeOffset, memory, PhysicalLayout.KERNEL_LOAD);
            } else {
                for (long[] s : segments) {
                    copy(file, s[0], s[2], memory, s[1]);
                }
            }
        } catch (IOException e) {
            throw new BootException("cannot read kernel " + path + ": " + e.getMessage(), e);
        }
    }

    /** Reads {@code length} bytes of {@code file} straight into guest memory (no intermediate copy). */
    static void copy(FileChannel file, long position, long length, GuestMemory memory, long address) throws IOException {
        ByteBuffer target = memory.slice(address, length).asByteBuffer();
        while (target.hasRemaining()) {
            if (file.read(target, position + target.position()) < 0) {
                throw new IOException("unexpected end of file at offset " + (position + target.position()));
            }
        }
    }
}
