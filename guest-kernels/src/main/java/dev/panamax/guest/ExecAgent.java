package dev.panamax.guest;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The guest's {@code /bin/panamax-agent}, the guest side of {@code panamax exec}: {@code exec-agent.c}
 * compiled as {@link VsockTool} is. /init runs it when the kernel command line has
 * {@code panamax.exec=PORT}; it connects to the host's vsock PORT, receives a command, runs it and
 * streams its output and exit status back (the protocol is described in README.md, "panamax exec").
 */
public final class ExecAgent {
    static final String SOURCE_RESOURCE = "exec-agent.c";
    /** Where the initramfs has it. */
    public static final String GUEST_PATH = "/bin/panamax-agent";

    private ExecAgent() {}

    /** The C source as shipped in this module. */
    public static String source() {
        return Resources.text(ExecAgent.class, SOURCE_RESOURCE);
    }

    /** What the binary is made from: part of the initramfs cache key. */
    static String recipe() {
        return VsockTool.recipe(source());
    }

    /**
     * Compiles the agent into {@code binary} (it also runs on the host: {@code panamax-agent unix PATH}
     * serves a Unix socket, for tests), using {@code workDir} for the source file.
     *
     * @throws MissingIngredientException when gcc or libc6-dev cannot be installed
     */
    public static Path compile(Path workDir, Path binary) throws IOException {
        return VsockTool.compileStatic(workDir, SOURCE_RESOURCE, source(), binary);
    }
}
