package dev.panamax.virtio;

/** A test device: copies each request's readable bytes into its writable buffers. */
public final class EchoDevice extends VirtioDevice {
    public static final int TYPE = 0x7f;

    public EchoDevice(int queueCount, int maxQueueSize) {
        super("echo (test)", TYPE, 0, queueCount, maxQueueSize, 0);
    }

    @Override
    protected int handle(VirtQueue queue, DescriptorChain chain) {
        int n = (int) Math.min(chain.readableLength(), chain.writableLength());
        byte[] data = new byte[n];
        chain.read(0, data, 0, n);
        chain.write(0, data, 0, n);
        return n;
    }

    /** As a device that changed a configuration field itself (virtio-net's announce bit). */
    public void changeConfig() {
        configChanged();
    }
}
