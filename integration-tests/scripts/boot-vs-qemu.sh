#!/bin/sh
# Boot time to the tiny guest's /init marker, Panamax against QEMU (-M microvm with an i8042 and
# the CMOS RTC, as the tests' QemuPeer runs it), same kernel, initramfs, command line, memory and
# vCPUs, alternating rounds, times from each VMM's process start. Where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/boot-vs-qemu.sh [ROUNDS]
# Needs the built CLI (./panamax build) and guest (./panamax run builds it); uses the newest kernel
# and initramfs in the cache unless KERNEL and INITRD name others.
set -eu
rounds=${1:-5}
. "$(dirname "$0")/peer-common.sh"
cmdline='console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run="true"'

# Runs a VMM, prints the ms from its start to the marker line.
marker_ms() {
    start=$(date +%s%N)
    "$@" 2>&1 | while IFS= read -r line; do
        case $line in *"panamax: init reached"*) echo $((($(date +%s%N) - start) / 1000000)) ;; esac
    done
}

panamax=""
qemu=""
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    p=$(marker_ms panamax_cli \
        run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 --cmdline 'quiet panamax.run="true"')
    q=$(marker_ms qemu-system-x86_64 -accel kvm -cpu host -M microvm,rtc=on -device i8042 -m 256 -smp 1 -nodefaults \
        -no-user-config -display none -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" -append "$cmdline")
    echo "round $i: Panamax ${p:-none} ms, QEMU ${q:-none} ms"
    panamax="$panamax $p"
    qemu="$qemu $q"
done
pm=$(echo "$panamax" | tr ' ' '\n' | grep . | median)
qm=$(echo "$qemu" | tr ' ' '\n' | grep . | median)
echo "median of $rounds: Panamax $pm ms, QEMU $qm ms, ratio Panamax/QEMU $(echo "scale=2; $pm / $qm" | bc)"
