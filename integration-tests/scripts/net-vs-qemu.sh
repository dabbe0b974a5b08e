#!/bin/sh
# TCP throughput between the tiny guest and the machine it runs on, Panamax's virtio-net against
# QEMU's virtio-net-pci, both on a tap (QEMU without vhost) whose host side sits in a network
# namespace made here: same kernel, initramfs, memory, vCPUs; busybox nc and dd move MIB MiB of
# zeros each way, timed by the guest's uptime clock (10 ms), after an untimed warm-up of WARM MiB each
# way (JIT compilation in the rig's C1-only JVM would otherwise land in the first timed transfer);
# rounds alternate which VMM goes first. Everything here (both VMMs, the host side's servers) runs on
# the rig's CPU 0 unless CPUS names others (a taskset list, or "all"; HOST_CPUS moves the host side's
# servers elsewhere): with Panamax's threads spread over both rig CPUs the rig's L1 kernel crashed
# (an IPI taken right after VMRUN, while TCG's emulated SVM should hold it back) and guests
# triple-faulted during interrupt delivery, about one run in four; QEMU far less often (one run in
# twelve failed, cause unknown), with as many physical-interrupt exits per run. On one CPU no run
# failed, and both VMMs are measured on the same footing: the work each spends per byte.
# As root where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/net-vs-qemu.sh [ROUNDS] [MIB]
# Needs the built CLI (./panamax build) and guest (./panamax run builds it).
set -eu
rounds=${1:-3}
mib=${2:-64}
warm=${WARM:-4}
cpus=${CPUS:-0}
host_cpus=${HOST_CPUS:-$cpus}
[ "$cpus" = all ] || taskset -p -c "$cpus" $$ > /dev/null
. "$(dirname "$0")/peer-common.sh"
ns=net-vs-qemu-$$
tap=nvq$$
log=$(mktemp)
trap 'stop_namespace $ns; ip netns del $ns 2>/dev/null; rm -f "$log"' EXIT
tap_namespace $ns $tap
# The guest's busybox nc and dd print no rate, so the guest times each transfer with its uptime clock.
run="ip link set eth0 up; ip addr add 10.9.0.2/24 dev eth0; ping -c 1 -w 10 10.9.0.1 > /dev/null;"
run="$run dd if=/dev/zero bs=1M count=$warm 2>/dev/null | nc 10.9.0.1 5001; nc 10.9.0.1 5002 < /dev/null | dd of=/dev/null bs=1M 2>/dev/null;"
run="$run read a x < /proc/uptime; dd if=/dev/zero bs=1M count=$mib 2>/dev/null | nc 10.9.0.1 5003; read b x < /proc/uptime;"
run="$run nc 10.9.0.1 5004 < /dev/null | dd of=/dev/null bs=1M 2>/dev/null; read c x < /proc/uptime; echo net-times \$a \$b \$c"
cmdline="console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run=\"$run\""

# The host side's ends: a sink for each upload, a source for each download (warm-up, then timed); one connection each.
servers() {
    on_host=$([ "$host_cpus" = all ] || echo "taskset -c $host_cpus")
    ip netns exec $ns $on_host busybox nc -l -p 5001 -e sh -c 'cat > /dev/null' &
    ip netns exec $ns $on_host busybox nc -l -p 5002 -e sh -c "dd if=/dev/zero bs=1M count=$warm 2>/dev/null" &
    ip netns exec $ns $on_host busybox nc -l -p 5003 -e sh -c 'cat > /dev/null' &
    ip netns exec $ns $on_host busybox nc -l -p 5004 -e sh -c "dd if=/dev/zero bs=1M count=$mib 2>/dev/null" &
}

# Prints "GUEST_TO_HOST_MBPS HOST_TO_GUEST_MBPS" from a VMM's console. A run without times (the rig's
# software CPU has crashed guests under this load) shows its console's end on stderr and runs once
# more; "0 0" when that fails too.
rates() {
    for attempt in 1 2; do
        servers
        ip netns exec $ns timeout 300 "$@" > "$log" 2>&1 || true
        stop_namespace $ns # servers a failed run left waiting, or their connections' processes
        wait || true
        if awk -v mib="$mib" '/^net-times/ { printf "%.2f %.2f\n", mib * 1.048576 / ($3 - $2), mib * 1.048576 / ($4 - $3); found = 1 }
            END { exit !found }' "$log"; then
            return
        fi
        { echo "net-vs-qemu: $1 ... gave no times (attempt $attempt); its console ended:"; tail -n 20 "$log"; } >&2
    done
    echo "0 0"
}

panamax() {
    # The command itself, not peer-common's panamax_cli: rates runs it through ip netns exec and timeout.
    # shellcheck disable=SC2086 # $aot is one word or none
    rates "$java" $rig_jvm_options $aot --enable-native-access=ALL-UNNAMED -cp "$cli:$top/cli/target/lib/*" dev.panamax.cli.Panamax \
        run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 --net tap=$tap --cmdline "quiet panamax.run=\"$run\""
}

# QEMU's PC machine with its virtio-net-pci on the same tap, its I/O in QEMU's main loop (no vhost-net here).
qemu() {
    rates qemu-system-x86_64 -accel kvm -cpu host -M pc -m 256 -smp 1 -nodefaults -no-user-config -display none -vga none \
        -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
        -netdev tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=off -device virtio-net-pci,netdev=n0
}

compare_rounds guest-to-host host-to-guest
