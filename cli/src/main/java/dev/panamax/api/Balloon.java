package dev.panamax.api;

/**
 * A memory balloon (virtio-balloon), as Firecracker's {@code balloon}: the guest's driver hands the
 * host as many pages as the target asks for, which leave the VMM's resident memory. Not on
 * {@linkplain HugePages huge pages}, which cannot give back 4 KiB pages.
 *
 * @param amountMib                the target at boot, in MiB, 0 up to the guest's memory; changed
 *                                 while the VM runs with {@link VirtualMachine#setBalloonTarget}
 * @param deflateOnOom             the guest may take pages back from the balloon rather than kill a process
 * @param statsPollingIntervalSeconds how often the guest is asked for its memory statistics ({@link
 *                                 VirtualMachine#balloonStatistics}); 0 for never. Statistics chosen
 *                                 at boot cannot be turned off later, nor turned on
 */
public record Balloon(long amountMib, boolean deflateOnOom, int statsPollingIntervalSeconds) {}
