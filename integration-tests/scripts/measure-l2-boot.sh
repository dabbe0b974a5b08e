#!/bin/sh
# Times the tiny guest booted by QEMU with KVM to its /init marker, where /dev/kvm is real KVM.
# Here that is inside the nested rig:
#   ./panamax rig -- sh integration-tests/scripts/measure-l2-boot.sh [ROUNDS] [MACHINE]
# MACHINE is microvm (default, as the tests' QemuPeer runs it) or pc. Needs the built guest (the
# first test run or `java -cp ... dev.panamax.guest.GuestImages` builds it); ms are from QEMU's start.
# KERNEL and INITRD name another kernel and initramfs than the newest in the cache.
set -eu
rounds=${1:-3}
machine=${2:-microvm}
cache=${PANAMAX_CACHE:-$HOME/.cache/panamax}
kernel=${KERNEL:-$(ls -td "$cache"/kernels/*/vmlinux | head -n 1)} # the newest build, unless KERNEL names one
initrd=${INITRD:-$(ls -td "$cache"/initramfs/*/initramfs.cpio.gz | head -n 1)}
case $machine in
    microvm) m="-M microvm,rtc=on -device i8042" ;;
    pc) m="-M pc" ;;
    *) echo "MACHINE is microvm or pc, not $machine" >&2; exit 2 ;;
esac
i=0
while [ $i -lt "$rounds" ]; do
    i=$((i + 1))
    start=$(date +%s%N)
    # shellcheck disable=SC2086 # $m is two or three words on purpose
    qemu-system-x86_64 -accel kvm -cpu host $m -m 256 -smp 1 -nodefaults -no-user-config -display none \
        -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" \
        -append 'console=ttyS0 quiet reboot=k panic=-1 panamax.run="true"' |
        while IFS= read -r line; do
            case $line in
            *"panamax: init reached"*) echo "round $i ($machine): /init marker after $((($(date +%s%N) - start) / 1000000)) ms" ;;
            *"panamax: exit status"*) echo "round $i ($machine): exit status line after $((($(date +%s%N) - start) / 1000000)) ms" ;;
            esac
        done
    echo "round $i ($machine): QEMU exited after $((($(date +%s%N) - start) / 1000000)) ms"
done
