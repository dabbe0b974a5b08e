package dev.panamax.storage.vmdk;

import dev.panamax.storage.InvalidImageException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A VMDK text descriptor, either a file of its own (monolithicFlat) or embedded in a sparse extent:
 * {@code key=value} lines (createType, parentCID, ...), then one line per extent
 * ({@code RW 8192 FLAT "disk-flat.vmdk" 0}). Only what Panamax uses is kept.
 *
 * @param createType the {@code createType} value without quotes, or null when absent
 * @param parentCid  the {@code parentCID} value, or null; anything but {@code ffffffff} names a parent image
 */
record VmdkDescriptor(String createType, String parentCid, List<ExtentLine> extents) {
    /** A descriptor larger than this is no descriptor; VMware's are well under 1 KiB plus one line per extent. */
    static final int MAX_BYTES = 64 << 10;
    static final int MAX_EXTENTS = 1024;
    /** The largest disk Panamax reads from VMDK (64 TiB): far beyond the format's hosted limits, small enough for every table. */
    static final long MAX_SECTORS = (64L << 40) / 512;

    /**
     * One extent line. {@code type} is upper case (FLAT, SPARSE, ZERO, VMFS, ...); {@code fileName} is
     * null for a ZERO extent; {@code offsetSectors} is where the extent's data starts in its file.
     */
    record ExtentLine(String access, long sectors, String type, String fileName, long offsetSectors) {}

    private static final Pattern EXTENT = Pattern.compile(
            "(RW|RDONLY|NOACCESS)\\s+(\\d{1,19})\\s+([A-Za-z]+)(?:\\s+\"([^\"]*)\"(?:\\s+(\\d{1,19}))?)?\\s*");
    private static final Pattern KEY_VALUE = Pattern.compile("([A-Za-z][A-Za-z0-9_.]*)\\s*=\\s*(.*)");

    /** Parses {@code bytes} (text up to its first NUL); {@code where} names the descriptor in messages. */
    static VmdkDescriptor parse(byte[] bytes, int length, String where) throws InvalidImageException {
        int end = 0;
        while (end < length && bytes[end] != 0) end++;
        String text = new String(bytes, 0, end, StandardCharsets.ISO_8859_1);
        String createType = null, parentCid = null;
        List<ExtentLine> extents = new ArrayList<>();
        int lineNumber = 0;
        for (String raw : text.split("\n", -1)) {
            lineNumber++;
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) continue;
            Matcher e = EXTENT.matcher(line);
            if (e.matches()) {
                if (extents.size() == MAX_EXTENTS) {
                    throw new InvalidImageException(where + ": VMDK descriptor has more than " + MAX_EXTENTS + " extents");
                }
                extents.add(extent(e, where, lineNumber));
                continue;
            }
            Matcher kv = KEY_VALUE.matcher(line);
            if (!kv.matches()) {
                throw new InvalidImageException(where + ": VMDK descriptor line " + lineNumber + " is neither a setting nor an"
                        + " extent: '" + printable(line) + "'");
            }
            String value = unquote(kv.group(2).strip());
            switch (kv.group(1)) {
                case "createType" -> createType = value;
                case "parentCID" -> parentCid = value.toLowerCase(Locale.ROOT);
                default -> { } // version, CID, ddb.* and others do not change how the disk reads
            }
        }
        return new VmdkDescriptor(createType, parentCid, List.copyOf(extents));
    }

    private static ExtentLine extent(Matcher e, String where, int lineNumber) throws InvalidImageException {
        long sectors = parseCount(e.group(2), where, lineNumber, "size");
        String type = e.group(3).toUpperCase(Locale.ROOT);
        long offset = e.group(5) == null ? 0 : parseCount(e.group(5), where, lineNumber, "offset");
        if (sectors > MAX_SECTORS) { // 0 is an empty disk's one extent
            throw new InvalidImageException(where + ": VMDK extent on descriptor line " + lineNumber + " has " + sectors
                    + " sectors (at most " + MAX_SECTORS + ")");
        }
        if (offset > MAX_SECTORS) {
            throw new InvalidImageException(where + ": VMDK extent on descriptor line " + lineNumber + " starts at sector "
                    + offset + " of its file, beyond any disk Panamax reads");
        }
        if (!type.equals("ZERO") && e.group(4) == null) {
            throw new InvalidImageException(where + ": VMDK " + type + " extent on descriptor line " + lineNumber
                    + " names no file");
        }
        return new ExtentLine(e.group(1), sectors, type, e.group(4), offset);
    }

    private static long parseCount(String digits, String where, int lineNumber, String what) throws InvalidImageException {
        try {
            return Long.parseLong(digits);
        } catch (NumberFormatException ex) {
            throw new InvalidImageException(where + ": VMDK extent " + what + " '" + digits + "' on descriptor line "
                    + lineNumber + " is too large");
        }
    }

    private static String unquote(String v) {
        return v.length() >= 2 && v.startsWith("\"") && v.endsWith("\"") ? v.substring(1, v.length() - 1) : v;
    }

    /** A line for a message: control characters shown as '?', at most 80 characters. */
    static String printable(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length() && i < 80; i++) {
            char c = s.charAt(i);
            b.append(c < 0x20 || c > 0x7e ? '?' : c);
        }
        return s.length() > 80 ? b + "..." : b.toString();
    }

    boolean hasParent() {
        return parentCid != null && !parentCid.equals("ffffffff");
    }

    /** The text of a monolithicSparse descriptor for a disk of {@code sectors} in {@code fileName}. */
    static String sparse(long sectors, String fileName, int cid) {
        long cylinders = Math.min(65535, sectors / (16 * 63));
        return "# Disk DescriptorFile\n"
                + "version=1\n"
                + "CID=" + String.format("%08x", cid) + "\n"
                + "parentCID=ffffffff\n"
                + "createType=\"monolithicSparse\"\n"
                + "\n"
                + "# Extent description\n"
                + "RW " + sectors + " SPARSE \"" + fileName + "\"\n"
                + "\n"
                + "# The Disk Data Base\n"
                + "#DDB\n"
                + "\n"
                + "ddb.virtualHWVersion = \"4\"\n"
                + "ddb.geometry.cylinders = \"" + cylinders + "\"\n"
                + "ddb.geometry.heads = \"16\"\n"
                + "ddb.geometry.sectors = \"63\"\n"
                + "ddb.adapterType = \"ide\"\n";
    }
}
