package dev.panamax.junit;

/** A guest server that says nothing, as one in a wedged rig, for {@link GuestConnectionTest}. */
public final class SilentServer {
    private SilentServer() {}

    public static void main(String[] args) throws InterruptedException {
        Thread.sleep(120_000);
    }
}
