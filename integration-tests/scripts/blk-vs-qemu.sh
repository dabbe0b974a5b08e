#!/bin/sh
# Sequential disk throughput in the tiny guest, Panamax's virtio-blk against QEMU's virtio-blk-pci:
# same kernel, initramfs, memory, vCPUs and raw image (in RAM, so the disk is not what is measured),
# dd with 1 MiB direct I/O, alternating which goes first. Where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/blk-vs-qemu.sh [ROUNDS] [MIB]
# Needs the built CLI (./panamax build) and guest (./panamax run builds it).
set -eu
rounds=${1:-3}
mib=${2:-256}
. "$(dirname "$0")/peer-common.sh"
work=$(mktemp -d /dev/shm/blk-vs-qemu.XXXXXX)
trap 'rm -rf "$work"' EXIT
image=$work/disk.raw
# Written through, so neither VMM pays for the first allocation of the image's pages.
dd if=/dev/zero of="$image" bs=1M count=$((mib + 16)) 2>/dev/null
# The guest's busybox dd prints no rate, so the guest times each dd with its uptime clock (10 ms).
# A first untimed pass warms both paths up (Panamax's JIT, both VMMs' caches): the rounds measure steady state.
run="dd if=/dev/zero of=/dev/vda bs=1M count=64 oflag=direct; dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct;"
run="$run read a x < /proc/uptime; dd if=/dev/zero of=/dev/vda bs=1M count=$mib oflag=direct; read b x < /proc/uptime;"
run="$run dd if=/dev/vda of=/dev/null bs=1M count=$mib iflag=direct; read c x < /proc/uptime; echo dd-times \$a \$b \$c"
cmdline="console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run=\"$run\""

# Prints "WRITE_MBPS READ_MBPS" from a VMM's console.
rates() {
    "$@" 2>&1 | awk -v mib="$mib" '/^dd-times/ { printf "%.0f %.0f\n", mib / ($3 - $2), mib / ($4 - $3) }'
}

panamax() {
    rates panamax_cli \
        run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 --disk "$image" --cmdline "quiet panamax.run=\"$run\""
}

# QEMU's PC machine: its virtio-blk-pci, with the same page-cache I/O as Panamax (no O_DIRECT) on a thread pool.
qemu() {
    rates qemu-system-x86_64 -accel kvm -cpu host -M pc -m 256 -smp 1 -nodefaults -no-user-config -display none -vga none \
        -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
        -drive file="$image",format=raw,if=none,id=d0,aio=threads -device virtio-blk-pci,drive=d0
}

compare_rounds write read
