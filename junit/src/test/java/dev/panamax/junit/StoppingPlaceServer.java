package dev.panamax.junit;

import java.io.BufferedReader;
import java.nio.charset.StandardCharsets;

/**
 * A guest server whose place can stop under it, for {@link ClassGuestTest}: it answers each command with
 * {@code served by NAME} (its argument) and status 0, but a reset, or the command {@code stop-place}, ends
 * it with {@link ClassGuestTest.StoppingPlace#STOPPED} and no answer, as a wedged rig ends a server; {@code
 * stop-place-in NAME} does so only in the server named NAME.
 * The command {@code end} ends its guest by itself (a panic). Named {@code stops-at-boot}, it ends so before its guest is ready.
 */
public final class StoppingPlaceServer {
    private StoppingPlaceServer() {}

    public static void main(String[] args) throws Exception {
        GuestServer.MessageWriter wire = GuestServer.takeStdout();
        wire.send(new GuestWire.Console("panamax: init reached"));
        if (args[0].equals("stops-at-boot")) System.exit(ClassGuestTest.StoppingPlace.STOPPED);
        wire.send(new GuestWire.Ready());
        BufferedReader requests = GuestServer.requests();
        for (String line; (line = requests.readLine()) != null && !line.equals(GuestWire.QUIT.strip()); ) {
            if (GuestWire.isReset(line)) System.exit(ClassGuestTest.StoppingPlace.STOPPED);
            GuestWire.ExecRequest exec = GuestWire.decodeExec(line);
            String command = exec.argv().getFirst();
            if (command.equals("stop-place-in") && exec.argv().get(1).equals(args[0])) System.exit(ClassGuestTest.StoppingPlace.STOPPED);
            switch (command) {
                case "stop-place" -> System.exit(ClassGuestTest.StoppingPlace.STOPPED);
                case "end" -> {
                    wire.send(new GuestWire.Ended("the guest ended: guest panic (test)"));
                    System.exit(0);
                }
                default -> {
                    wire.send(new GuestWire.Output(exec.id(), 1, ("served by " + args[0] + "\n").getBytes(StandardCharsets.UTF_8)));
                    wire.send(new GuestWire.Done(exec.id(), 0, false, 1, ""));
                }
            }
        }
        System.exit(0);
    }
}
