package dev.panamax.junit;

import java.time.Duration;
import java.util.List;

/**
 * A booted tiny Linux guest, injected into a {@link PanamaxTest} class (as a field or a parameter).
 * One guest serves every test of the class, in order; it runs where real KVM is (this host, or the
 * nested rig where this host's KVM only emulates) without the test knowing.
 */
public interface Guest {

    /**
     * Runs {@code command} with {@code args} exactly as given (no shell: use {@code "sh", "-c", ...} for one)
     * in the guest, with the class's timeout ({@link PanamaxTest#execTimeoutSeconds}, scaled for the rig),
     * and waits for it.
     *
     * @throws GuestException when the guest could not run it (it ended, or its server failed)
     */
    ExecResult exec(String command, String... args);

    /** The same with {@code argv} (command first) and its own {@code timeout}, used as given. */
    ExecResult exec(Duration timeout, List<String> argv);

    /** The guest's serial console so far (its last lines), kernel messages of level 5 and up among them. */
    String console();

    /** The guest kernel's whole log ({@code dmesg}), read now. */
    String kernelLog();

    /** Where the guest runs: {@code "this host"} or {@code "the nested KVM rig"}. */
    String where();
}
