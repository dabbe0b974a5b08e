package dev.panamax.junit;

/** A guest server whose guest ends at the first request (as a crashed guest's does), for {@link GuestConnectionTest}. */
public final class EndingServer {
    private EndingServer() {}

    public static void main(String[] args) throws Exception {
        GuestServer.MessageWriter wire = GuestServer.takeStdout();
        wire.send(new GuestWire.Ready());
        GuestServer.requests().readLine();
        wire.send(new GuestWire.Console("Kernel panic - not syncing: test"));
        wire.send(new GuestWire.Ended("the guest ended: triple fault (test)"));
        System.exit(0);
    }
}
