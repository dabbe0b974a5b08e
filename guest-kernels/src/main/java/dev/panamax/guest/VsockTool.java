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

    /** What the binary is made from (the source and gcc's options): part of the initramfs cache key. */
    static String recipe() {
        return String.join(" ", GCC_OPTIONS) + "\n" + source();
    }

    /**
     * Compiles the tool into {@code binary}, using {@code workDir} for the source file.
     *
     * @throws MissingIngredientException when gcc or libc6-dev (glibc's static {@code libc.a}) cannot be installed
     */
    public static Path compile(Path workDir, Path binary) throws IOException {
        return compileStatic(workDir, SOURCE_RESOURCE, source(), binary);
    }

    /** Compiles the C program {@code source} (named {@code sourceName} in {@code workDir}) static, as the guest's programs are. */
    static Path compileStatic(Path workDir, String sourceName, String source, Path binary) throws IOException {
        DebianPackages.ensureInstalled(TOOLS);
        Path sourceFile = workDir.resolve(sourceName);
        Files.writeString(sourceFile, source);
        // A compiler error is a bug in the source, not a missing package: HostCommandException quotes gcc's output.
        List<String> argv = new ArrayList<>(List.of("gcc"));
        argv.addAll(GCC_OPTIONS);
        argv.addAll(List.of("-o", binary.toString(), sourceFile.toString()));
        HostCommand.run(workDir, argv, line -> {});
        return binary;
    }
}
