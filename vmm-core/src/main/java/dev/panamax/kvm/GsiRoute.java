package dev.panamax.kvm;

/** An entry of the VM's GSI routing table ({@code struct kvm_irq_routing_entry}). */
public sealed interface GsiRoute {
    int gsi();

    /** GSI delivered to a pin of the in-kernel PIC ({@code chip} 0 or 1) or IOAPIC ({@code chip} 2). */
    record Irqchip(int gsi, int chip, int pin) implements GsiRoute {}

    /** GSI delivered as a message-signalled interrupt. */
    record Msi(int gsi, long address, int data) implements GsiRoute {}
}
