package dev.panamax.vmm;

/**
 * A VM's memory balloon (virtio-balloon), as Firecracker's {@code balloon}: checked by {@link VmRules#balloon}.
 *
 * @param amountMib            the balloon's target at boot, in MiB
 * @param deflateOnOom         whether the guest may take pages back from the balloon rather than kill a process
 * @param statsIntervalSeconds how often the guest is asked for memory statistics; 0 for never
 */
public record BalloonConfig(long amountMib, boolean deflateOnOom, int statsIntervalSeconds) {}
