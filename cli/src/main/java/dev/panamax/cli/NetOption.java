package dev.panamax.cli;

import dev.panamax.api.NetworkInterface;
import dev.panamax.cli.common.UserError;
import dev.panamax.virtio.net.NetSpec;
import java.util.Optional;

/**
 * {@code --net tap=NAME[,mac=MAC]}, {@code --net tap,fd=N[,mac=MAC]}, {@code --net user[,mac=MAC]} or
 * {@code --net user,socket=PATH[,mac=MAC]}: a network interface given on the command line.
 */
final class NetOption {
    private NetOption() {}

    static final String SYNTAX = "tap=NAME|tap,fd=N|user[,socket=PATH][,mac=MAC]";

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
            case NetSpec.Tap tap -> NetworkInterface.tapDescriptor(id, tap.fd(), mac);
            case NetSpec.User user when user.socket() == null -> NetworkInterface.user(id, mac);
            case NetSpec.User user -> NetworkInterface.passt(id, user.socket(), mac);
        };
    }

    /**
     * The option that describes {@code nic} again, for the copy of a command run in the rig; empty
     * for an interface on this host's descriptor or passt socket, which the rig cannot reach.
     */
    static Optional<String> format(NetworkInterface nic) {
        String mac = nic.guestMac() == null ? "" : ",mac=" + nic.guestMac();
        if (nic.hostDevice() != null) {
            return Optional.of("tap=" + nic.hostDevice() + mac);
        }
        return nic.startsPasst() ? Optional.of("user" + mac) : Optional.empty();
    }
}
