/**
 * The KVM bindings (FFM): {@code /dev/kvm}, VM and vCPU file descriptors as {@link
 * dev.panamax.kvm.Kvm}, {@link dev.panamax.kvm.VmFd} and {@link dev.panamax.kvm.VcpuFd}, each ioctl
 * a typed method, the struct layouts of {@code <linux/kvm.h>} declared once in {@code KvmAbi}. With
 * {@code dev.panamax.sys}, whose libc calls it makes, the only native calls in Panamax.
 *
 * <p>Internal to Panamax: public for its own modules only. Programs that embed Panamax use
 * {@code dev.panamax.api}; this package may change in any release.
 */
package dev.panamax.kvm;
