package dev.panamax.cli;

import dev.panamax.api.Drive;
import dev.panamax.api.RateLimiter;
import dev.panamax.api.TokenBucket;
import dev.panamax.api.Transport;
import dev.panamax.cli.common.UserError;
import dev.panamax.control.VmConfig;
import dev.panamax.storage.ImageFormat;
import dev.panamax.storage.ImageRequestException;
import dev.panamax.vmm.VmRules;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code --disk PATH[,readonly][,root][,id=ID][,transport=pci|mmio][,format=raw|qcow2|vhd|vmdk|vdi|vhdx][,bw=RATE][,iops=N]}:
 * a drive given on the command line; {@code format} gives the image's format instead of detecting it
 * ({@code raw} reads any file as the disk's bytes); {@code bw} limits its bytes a second ({@code 10M}:
 * 10 MiB), {@code iops} its requests a second, each in a bucket of one second's worth (Firecracker's
 * {@code rate_limiter} with a refill time of 1000 ms). A comma in PATH is written twice ({@link OptionSettings}).
 */
final class DiskOption {
    private DiskOption() {}

    static final String SYNTAX = "PATH[,readonly][,root][,id=ID][,transport=pci|mmio][,format=raw|qcow2|vhd|vmdk|vdi|vhdx][,bw=RATE][,iops=N]";
    private static final Pattern RATE = Pattern.compile("(\\d{1,18})([KMGT]?)", Pattern.CASE_INSENSITIVE);

    /**
     * @param index the disk's position among the --disk options, for its default ID ("disk0", ...)
     * @throws UserError naming the option when it is malformed
     * @throws dev.panamax.vmm.ConfigException when the ID or the image file is unusable
     */
    static Drive parse(String spec, int index) {
        String[] parts = OptionSettings.split(spec).toArray(String[]::new);
        if (parts[0].isEmpty()) {
            throw new UserError("--disk " + spec + ": the image path is missing (" + SYNTAX + ")");
        }
        boolean readOnly = false;
        boolean root = false;
        String id = "disk" + index;
        Transport transport = Transport.PCI;
        ImageFormat format = null;
        TokenBucket bandwidth = null;
        TokenBucket ops = null;
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i];
            if (part.equals("readonly")) {
                readOnly = true;
            } else if (part.equals("root")) {
                root = true;
            } else if (part.startsWith("id=")) {
                id = part.substring(3);
            } else if (part.startsWith("transport=")) {
                try {
                    transport = Transport.valueOf(part.substring(10).toUpperCase(Locale.ROOT));
                } catch (IllegalArgumentException e) {
                    throw new UserError("--disk " + spec + ": the transport is pci or mmio, not '" + part.substring(10) + "'");
                }
            } else if (part.startsWith("format=")) {
                try {
                    format = ImageFormat.parse(part.substring(7));
                } catch (ImageRequestException e) {
                    throw new UserError("--disk " + spec + ": " + e.getMessage());
                }
            } else if (part.startsWith("bw=")) {
                bandwidth = TokenBucket.perSecond(rate("--disk " + spec, part.substring(3), true));
            } else if (part.startsWith("iops=")) {
                ops = TokenBucket.perSecond(rate("--disk " + spec, part.substring(5), false));
            } else {
                throw new UserError("--disk " + spec + ": unknown setting '" + part + "' (" + SYNTAX + ")");
            }
        }
        VmRules.id(id, "--disk " + spec);
        Path image = VmRules.diskImage(parts[0], format, readOnly, "--disk " + spec).toAbsolutePath().normalize();
        RateLimiter limiter = bandwidth == null && ops == null ? null : new RateLimiter(bandwidth, ops);
        return new Drive(id, image, readOnly, root, transport, limiter, VmConfig.diskFormat(format));
    }

    /** A rate above 0: a number, for bytes with a binary unit K, M, G or T; {@code option} names the option in messages. */
    static long rate(String option, String text, boolean bytes) {
        Matcher m = RATE.matcher(text);
        if (!m.matches() || (!bytes && !m.group(2).isEmpty())) {
            throw new UserError(option + ": '" + text + "' is not a rate: give " + (bytes ? "bytes a second, e.g. 10M for 10 MiB"
                    : "requests a second, e.g. 500"));
        }
        int shift = switch (m.group(2).toUpperCase(Locale.ROOT)) {
            case "K" -> 10;
            case "M" -> 20;
            case "G" -> 30;
            case "T" -> 40;
            default -> 0;
        };
        long value = Long.parseLong(m.group(1));
        if (value == 0 || value > Long.MAX_VALUE >> shift) {
            throw new UserError(option + ": the rate '" + text + "' is 0 or too large");
        }
        return value << shift;
    }

    /** The option that names {@code drive} again, with its absolute path: for the copy of a command run in the rig. */
    static String format(Drive drive) {
        RateLimiter limiter = drive.rateLimiter();
        return OptionSettings.escape(drive.path().toString()) + (drive.readOnly() ? ",readonly" : "") + (drive.root() ? ",root" : "") + ",id=" + drive.id()
                + ",transport=" + drive.transport().name().toLowerCase(Locale.ROOT)
                + (drive.format() != null ? ",format=" + drive.format().name().toLowerCase(Locale.ROOT) : "")
                + (limiter != null && limiter.bandwidth() != null ? ",bw=" + limiter.bandwidth().size() : "")
                + (limiter != null && limiter.ops() != null ? ",iops=" + limiter.ops().size() : "");
    }
}
