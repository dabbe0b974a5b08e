#!/bin/sh
# vsock throughput each way between the tiny guest and a host program, Panamax's virtio-vsock (its
# Firecracker-style Unix-socket host side) against QEMU's vhost-vsock-pci (the host kernel's vsock,
# AF_VSOCK on the host side): same kernel, initramfs, memory, one vCPU; the guest's /bin/vsock moves
# MIB MiB of zeros each way, timed by the guest's uptime clock (10 ms), after an untimed warm-up of
# WARM MiB each way; the host side is the same Python program for both, on a Unix socket or an
# AF_VSOCK one; rounds alternate which VMM goes first. Both VMMs and the host programs run on the
# rig's CPU 0 (net-vs-qemu.sh says why). Needs /dev/vhost-vsock (the rig loads vhost_vsock).
# As root where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/vsock-vs-qemu.sh [ROUNDS] [MIB]
# Needs the built CLI (./panamax build) and guest (./panamax run builds it).
set -eu
rounds=${1:-3}
mib=${2:-64}
warm=${WARM:-4}
taskset -p -c 0 $$ > /dev/null
. "$(dirname "$0")/peer-common.sh"
[ -c /dev/vhost-vsock ] || { echo "vsock-vs-qemu: no /dev/vhost-vsock here (load vhost_vsock)" >&2; exit 1; }
dir=$(mktemp -d)
log=$dir/console
uds=$dir/v.sock
trap 'rm -rf "$dir"' EXIT # each run's peer is waited for in rates

# The host programs: ports 5001 and 5003 read to the end (warm-up, timed), 5002 and 5004 send
# WARM and MIB MiB of zeros and close; one connection each. "unix PATH" listens on PATH_PORT (Panamax's
# host side for the guest's connections to host port PORT), "vsock" on AF_VSOCK PORT (QEMU's vhost).
cat > "$dir/peer.py" <<'PY'
import os, socket, sys, threading
kind, warm, mib = sys.argv[1], int(sys.argv[3]), int(sys.argv[4])
def serve(port, send):
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sys.argv[2] + "_" + str(port))
    else:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.bind((socket.VMADDR_CID_ANY, port))
    s.listen(1)
    c, _ = s.accept()
    if send:
        block = bytes(1 << 20)
        for _ in range(send):
            c.sendall(block)
    else:
        while c.recv(1 << 20):
            pass
    c.close()
    s.close()
threads = [threading.Thread(target=serve, args=a) for a in ((5001, 0), (5002, warm), (5003, 0), (5004, mib))]
for t in threads:
    t.start()
for t in threads:
    t.join()
PY

run="dd if=/dev/zero bs=1M count=$warm 2>/dev/null | vsock connect 2 5001 > /dev/null; vsock connect 2 5002 < /dev/null | dd of=/dev/null bs=1M 2>/dev/null;"
run="$run read a x < /proc/uptime; dd if=/dev/zero bs=1M count=$mib 2>/dev/null | vsock connect 2 5003 > /dev/null; read b x < /proc/uptime;"
run="$run vsock connect 2 5004 < /dev/null | dd of=/dev/null bs=1M 2>/dev/null; read c x < /proc/uptime; echo vsock-times \$a \$b \$c"
cmdline="console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run=\"$run\""

# Prints "GUEST_TO_HOST_MBPS HOST_TO_GUEST_MBPS" from a VMM's console; a run without times shows its
# console's end on stderr and runs once more; "0 0" when that fails too. $1 is the peer's kind.
rates() {
    kind=$1; shift
    for attempt in 1 2; do
        rm -f "$uds"_*
        python3 "$dir/peer.py" "$kind" "$uds" "$warm" "$mib" &
        peer=$!
        timeout 300 "$@" > "$log" 2>&1 || true
        kill $peer 2>/dev/null || true
        wait $peer 2>/dev/null || true
        if awk -v mib="$mib" '/^vsock-times/ { printf "%.2f %.2f\n", mib * 1.048576 / ($3 - $2), mib * 1.048576 / ($4 - $3); found = 1 }
            END { exit !found }' "$log"; then
            return
        fi
        { echo "vsock-vs-qemu: $1 ... gave no times (attempt $attempt); its console ended:"; tail -n 20 "$log"; } >&2
    done
    echo "0 0"
}

panamax() {
    # shellcheck disable=SC2086 # $aot is one word or none
    rates unix "$java" $rig_jvm_options $aot --enable-native-access=ALL-UNNAMED -cp "$cli:$top/cli/target/lib/*" dev.panamax.cli.Panamax \
        run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 --vsock cid=3,uds="$uds" --cmdline "quiet panamax.run=\"$run\""
}

qemu() {
    rates vsock qemu-system-x86_64 -accel kvm -cpu host -M pc -m 256 -smp 1 -nodefaults -no-user-config -display none -vga none \
        -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" -append "$cmdline" -device vhost-vsock-pci,guest-cid=3
}

compare_rounds guest-to-host host-to-guest
