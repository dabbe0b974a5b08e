package dev.panamax.cli.rig;

import dev.panamax.cli.common.UserError;
import dev.panamax.rig.WarmRig;
import java.io.IOException;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/** {@code panamax rig stop}: ends the warm rig and its daemon. */
@Command(name = "stop", mixinStandardHelpOptions = true,
        description = "Stops the warm rig and its daemon, killing a command it runs. Without one, says so.")
public final class RigStopCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        try {
            System.out.println(WarmRig.askDaemon(true).isPresent() ? "panamax: the warm rig stopped" : "panamax: no warm rig runs");
            return 0;
        } catch (IOException e) {
            throw new UserError("cannot reach the warm rig: " + e.getMessage(), e);
        }
    }
}
