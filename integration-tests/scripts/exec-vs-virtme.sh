#!/bin/sh
# One command in a fresh guest, wall time from the start to the exit of the process that runs it:
# `panamax exec -- true` against QEMU as virtme-ng runs it (`vng -- true`): -M microvm, the same
# kernel, no initramfs, the host's root shared read-only over 9p (virtio-9p on virtio-mmio, tag
# /dev/root, multidevs=remap) and mounted as the guest's root (rootfstype=9p), the command run by an
# init script on it that then reboots, which ends QEMU (-no-reboot; the tiny kernel has no ACPI, so
# a power-off would not end it, and microvm needs an i8042 for the reboot, as in boot-vs-qemu.sh). virtme-ng's own
# init also sets up /proc, /sys, a tmpfs overlay and the console before the command, which this
# init skips: QEMU's figure is a lower bound for vng. Panamax runs `exec --rootfs host`, the same
# job: its built-in initramfs's /init lays a tmpfs overlay over the host's root (virtio-fs, read-only),
# then its exec agent receives the command over vsock and runs `true` from the host's root.
# Same kernel, 256 MiB, one vCPU; rounds alternate which goes first; prints each round, the medians
# and the ratio Panamax/QEMU. Where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/exec-vs-virtme.sh [ROUNDS]
# Needs the built CLI (./panamax build) and guest (./panamax run builds it; run it once for the AOT
# cache too); uses the newest kernel and initramfs in the cache unless KERNEL and INITRD name others.
set -eu
rounds=${1:-5}
. "$(dirname "$0")/peer-common.sh"
# Under / so that the guest sees it through the shared root; /tmp is on the root's filesystem in the rig.
dir=$(mktemp -d /tmp/exec-vs-virtme.XXXXXX)
trap 'rm -rf "$dir"' EXIT
busybox=$(command -v busybox || echo /usr/bin/busybox)
# virtme-ng's init runs the command and powers off; here: the command, a line to check it ran, a reboot.
cat > "$dir/init" <<EOF2
#!/bin/sh
true && echo exec-vs-virtme: true ran
exec $busybox reboot -f
EOF2
chmod +x "$dir/init"

# Runs a command (a shell function too: each side bounds its own time), prints the ms from its start
# to its exit, or nothing when it fails or CHECK ($1, a grep pattern for its output; empty: exit
# status 0 is enough) is not met (then its output's end goes to stderr).
wall_ms() {
    check=$1; shift
    start=$(date +%s%N)
    if "$@" > "$dir/out" 2>&1 && { [ -z "$check" ] || grep -q "$check" "$dir/out"; }; then
        echo $((($(date +%s%N) - start) / 1000000))
    else
        { echo "exec-vs-virtme: $1 ... failed; its output ended:"; tail -n 15 "$dir/out"; } >&2
    fi
}

panamax=""
qemu=""
run_panamax() {
    wall_ms "" panamax_cli exec --no-rig --timeout 300s --kernel "$kernel" --initrd "$initrd" --rootfs host --memory 256M --cpus 1 -- true
}
run_qemu() {
    wall_ms "exec-vs-virtme: true ran" timeout 300 qemu-system-x86_64 -accel kvm -cpu host -M microvm,acpi=off,rtc=on -device i8042 -m 256 -smp 1 \
        -nodefaults -no-user-config -display none -no-reboot -serial stdio -kernel "$kernel" \
        -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap -device virtio-9p-device,fsdev=root,mount_tag=/dev/root \
        -append "console=ttyS0 reboot=k panic=-1 tsc=reliable quiet root=/dev/root rootfstype=9p rootflags=version=9p2000.L,trans=virtio,access=any ro init=$dir/init"
}
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    if [ $((i % 2)) -eq 1 ]; then
        p=$(run_panamax); q=$(run_qemu)
    else
        q=$(run_qemu); p=$(run_panamax)
    fi
    echo "round $i: Panamax exec ${p:-failed} ms, QEMU as virtme-ng ${q:-failed} ms"
    panamax="$panamax $p"
    qemu="$qemu $q"
done
pm=$(echo "$panamax" | tr ' ' '\n' | grep . | median || true)
qm=$(echo "$qemu" | tr ' ' '\n' | grep . | median || true)
if [ -z "$pm" ] || [ -z "$qm" ]; then
    echo "exec-vs-virtme: no median: every round of one side failed" >&2
    exit 1
fi
echo "median of $rounds: Panamax exec $pm ms, QEMU as virtme-ng $qm ms, ratio Panamax/QEMU $(echo "scale=2; $pm / $qm" | bc)"
