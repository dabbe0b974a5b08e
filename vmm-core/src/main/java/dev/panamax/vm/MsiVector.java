package dev.panamax.vm;

/**
 * A message-signalled interrupt a device raises: the guest programs its message (address and data,
 * for example through an MSI-X table entry) and the device signals it from its own thread.
 */
public interface MsiVector extends AutoCloseable {
    /** The guest programmed the message that {@link #signal()} delivers. */
    void program(long address, int data);

    /** Delivers the programmed message. Safe from any thread; allocates nothing. */
    void signal();

    /** Releases the vector's interrupt route and event. */
    @Override
    void close();
}
