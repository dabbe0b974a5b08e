package dev.panamax.cli.rig;

import dev.panamax.cli.common.UserError;
import dev.panamax.rig.WarmRig;
import java.io.IOException;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** {@code panamax rig status}: what the warm rig's daemon is doing. */
@Command(name = "status", mixinStandardHelpOptions = true,
        description = "Tells whether the warm rig runs: its daemon, QEMU, shares, and whether it is busy."
                + " Exits with 0 when one runs, 3 when none does.")
public final class RigStatusCommand implements Callable<Integer> {
    /** The exit status when no warm rig runs. */
    static final int NONE = 3;

    @Override
    public Integer call() {
        try {
            Optional<String> status = WarmRig.askDaemon(false);
            System.out.print(status.orElse("no warm rig runs\n"));
            return status.isPresent() ? 0 : NONE;
        } catch (IOException e) {
            throw new UserError("cannot reach the warm rig: " + e.getMessage(), e);
        }
    }
}
