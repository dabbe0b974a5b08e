package dev.panamax.guest;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The guest's {@code /bin/vsock} (busybox has no AF_VSOCK applet): {@code vsock.c} compiled on the host
 * with {@code gcc -static -Os} when the initramfs is built, so it needs no library in the guest.
 */
public final class VsockTool {
    static final String SOURCE_RESOURCE = "vsock.c";
    /** gcc and glibc's static {@code libc.a}; installed when missing, as the kernel build's tools are. */
    static final String[] TOOLS = {"gcc", "libc6-dev"};
    /** gcc's options: static (the initramfs has no libc), small, and every warning an error. */
    static final List<String> GCC_OPTIONS = List.of("-static", "-Os", "-s", "-std=gnu11", "-Wall", "-Wextra", "-Werror");

    private VsockTool() {}

    /** The C source as shipped in this module. */
    public static String source() {
        return Resources.text(VsockTool.class, SOURCE_RESOURCE);
    }

    /** The header the guest's C programs share ({@code parse_u32}), written beside each source compiled. */
    static final String HEADER_RESOURCE = "decimal.h";

    /** What the binary is made from (the source and gcc's options): part of the initramfs cache key. */
    static String recipe() {
        return recipe(source());
    }

    /** What a guest program compiled from {@code source} is made from: gcc's options, the shared header and the source. */
    static String recipe(String source) {
        return String.join(" ", GCC_OPTIONS) + "\n" + Resources.text(VsockTool.class, HEADER_RESOURCE) + "\n" + source;
    }

    /**
     * Compiles the tool into {@code binary}, using {@code workDir} for the source file.
     *
     * @throws MissingIngredientException when gcc or libc6-dev (glibc's static {@code libc.a}) cannot be installed
     */
    public static Path compile(Path workDir, Path binary) throws IOException {
        return compileStatic(workDir, SOURCE_RESOURCE, source(), binary);
    }

    /** Writes {@code source} as {@code workDir/sourceName}, with the header it includes beside it. */
    static Path writeSource(Path workDir, String sourceName, String source) throws IOException {
        Files.writeString(workDir.resolve(HEADER_RESOURCE), Resources.text(VsockTool.class, HEADER_RESOURCE));
        return Files.writeString(workDir.resolve(sourceName), source);
    }

    /** Compiles the C program {@code source} (named {@code sourceName} in {@code workDir}) static, as the guest's programs are. */
    static Path compileStatic(Path workDir, String sourceName, String source, Path binary) throws IOException {
        DebianPackages.ensureInstalled(TOOLS);
        Path sourceFile = writeSource(workDir, sourceName, source);
        // A compiler error is a bug in the source, not a missing package: HostCommandException quotes gcc's output.
        List<String> argv = new ArrayList<>(List.of("gcc"));
        argv.addAll(GCC_OPTIONS);
        argv.addAll(List.of("-o", binary.toString(), sourceFile.toString()));
        HostCommand.run(workDir, argv, line -> {});
        return binary;
    }
}
