package dev.panamax.virtio.net;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One NIC as {@code panamax run --net} describes it:
 * <ul>
 *   <li>{@code tap=NAME[,mac=MAC]}: the host's tap NAME, created if it does not exist (needs CAP_NET_ADMIN);
 *   <li>{@code tap,fd=N[,mac=MAC]}: a tap descriptor Panamax inherits, already attached;
 *   <li>{@code user[,mac=MAC][,socket=PATH]}: passt's user-mode network, no privileges needed; passt
 *       is started for the NIC, or the one listening at PATH is used.
 * </ul>
 * Without {@code mac=} a NIC gets a random locally administered address.
 */
public sealed interface NetSpec permits NetSpec.Tap, NetSpec.User {

    /** The guest's address on this NIC. */
    MacAddress mac();

    /** A tap by name, or (name null) by inherited descriptor {@code fd}. */
    record Tap(String name, int fd, MacAddress mac) implements NetSpec {}

    /** passt: started for this NIC when {@code socket} is null, else the one listening there. */
    record User(Path socket, MacAddress mac) implements NetSpec {}

    /**
     * Reads one {@code --net} value.
     *
     * @throws IllegalArgumentException with a sentence naming the value and what is expected
     */
    static NetSpec parse(String text) {
        String[] items = text.strip().split(",", -1);
        String[] kind = items[0].split("=", 2);
        Map<String, String> options = new LinkedHashMap<>();
        for (int i = 1; i < items.length; i++) {
            String[] option = items[i].split("=", 2);
            if (option.length != 2 || option[0].isEmpty() || option[1].isEmpty()) {
                throw problem(text, "'" + items[i] + "' is not KEY=VALUE");
            }
            if (options.put(option[0], option[1]) != null) {
                throw problem(text, option[0] + "= is given twice");
            }
        }
        MacAddress mac;
        try {
            String given = options.remove("mac");
            mac = given == null ? MacAddress.random() : MacAddress.parse(given);
        } catch (IllegalArgumentException e) {
            throw problem(text, e.getMessage());
        }
        return switch (kind[0]) {
            case "tap" -> {
                String fd = options.remove("fd");
                rejectOthers(text, options, "a tap takes mac= and, instead of a name, fd=");
                if (kind.length == 2 && fd != null) {
                    throw problem(text, "give a tap a name (tap=NAME) or an open descriptor (tap,fd=N), not both");
                }
                if (fd != null) {
                    yield new Tap(null, descriptor(text, fd), mac);
                }
                if (kind.length == 1) {
                    throw problem(text, "name the tap (tap=NAME), or pass an open one (tap,fd=N)");
                }
                String name = kind[1];
                String nameProblem = dev.panamax.sys.Tap.nameProblem(name);
                if (nameProblem != null) {
                    throw problem(text, nameProblem);
                }
                yield new Tap(name, -1, mac);
            }
            case "user" -> {
                if (kind.length == 2) {
                    throw problem(text, "user takes no value; write user, or user,socket=PATH for a passt already running");
                }
                String socket = options.remove("socket");
                rejectOthers(text, options, "user takes mac= and socket=");
                yield new User(socket == null ? null : Path.of(socket), mac);
            }
            default -> throw problem(text, "'" + kind[0] + "' is not a kind of NIC: use tap=NAME, tap,fd=N or user");
        };
    }

    private static int descriptor(String text, String fd) {
        try {
            int n = Integer.parseInt(fd);
            if (n >= 0) return n;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw problem(text, "fd=" + fd + " is not a file descriptor number");
    }

    private static void rejectOthers(String text, Map<String, String> options, String allowed) {
        if (!options.isEmpty()) {
            throw problem(text, "unknown option " + options.keySet().iterator().next() + "=; " + allowed);
        }
    }

    private static IllegalArgumentException problem(String text, String what) {
        return new IllegalArgumentException("--net " + text + ": " + what);
    }
}
