package dev.panamax.sys;

/** A model-specific register and its value ({@code struct kvm_msr_entry}). */
public record MsrEntry(int index, long data) {}
