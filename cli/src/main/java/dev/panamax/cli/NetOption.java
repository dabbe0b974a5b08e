package dev.panamax.cli;

import dev.panamax.api.NetworkInterface;
import dev.panamax.virtio.net.NetSpec;

/** {@code --net tap=NAME[,mac=MAC]} or {@code --net user[,mac=MAC]}: a network interface given on the command line. */
final class NetOption {
    private NetOption() {}

    static final String SYNTAX = "tap=NAME[,mac=MAC]|user[,mac=MAC]";

    /**
     * @param index the interface's position among the --net options, for its ID ("net0", ...)
     * @throws UserError naming the option when it is malformed
     */
    static NetworkInterface parse(String text, int index) {
        NetSpec spec;
        try {
            spec = NetSpec.parse(text);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage());
        }
        String id = "net" + index;
        // The address is fixed here, random or not, so that a run moved into the rig keeps it.
        String mac = spec.mac().toString();
        return switch (spec) {
            case NetSpec.Tap tap when tap.name() != null -> NetworkInterface.tap(id, tap.name(), mac);
            case NetSpec.User user when user.socket() == null -> NetworkInterface.user(id, mac);
            default -> throw new UserError("--net " + text + ": panamax run opens a tap by name (tap=NAME) or starts passt"
                    + " (user); an inherited tap descriptor or a passt already running are for programs that embed Panamax");
        };
    }

    /** The option that describes {@code nic} again: for the copy of a command run in the rig. */
    static String format(NetworkInterface nic) {
        return (nic.isUserMode() ? "user" : "tap=" + nic.hostDevice()) + (nic.guestMac() == null ? "" : ",mac=" + nic.guestMac());
    }
}
