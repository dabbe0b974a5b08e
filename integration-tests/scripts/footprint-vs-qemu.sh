#!/bin/sh
# VMM memory with the tiny guest, one disk (qcow2) and one NIC (a tap), Panamax against QEMU
# (-M microvm, virtio-blk and virtio-net on virtio-mmio, as boot-vs-qemu.sh runs it): the VMM's
# resident memory minus what the guest's RAM has resident, both read from the process's
# /proc/PID/smaps (the guest RAM mapping is the one 256 MiB mapping), one second after the guest's
# /init ran its command, alternating rounds; prints each round, the medians and the ratio. Panamax's
# JVM runs as the rig's JVMs run (C1 only, the rig's start-up cache), plus JVM_OPTS if
# given (to try settings: JVM_OPTS='-XX:+UseSerialGC' ...). NMT=1 prints the JVM's own account of
# its memory (Native Memory Tracking) and the resident memory of each mapped file in each round, on stderr.
# As root where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/footprint-vs-qemu.sh [ROUNDS]
# (the rig does not pass the host's JVM_OPTS or NMT in: ./panamax rig -- sh -c 'NMT=1 sh integration-tests/...')
# Needs the built CLI (./panamax build) and guest, and the rig's start-up cache for this build (./panamax run --timeout 1
# makes both): a stale cache is refused by the JVM, which then maps no class archive at all.
set -eu
rounds=${1:-5}
. "$(dirname "$0")/peer-common.sh"
dir=$(mktemp -d /tmp/footprint.XXXXXX)
namespace=pnx-fp-$$
tap=pnxfp$$
trap 'stop_namespace $namespace; ip netns del $namespace 2>/dev/null; rm -rf "$dir"' EXIT
tap_namespace "$namespace" "$tap"
qemu-img create -q -f qcow2 "$dir/disk.qcow2" 64M
guest='echo footprint-ready; sleep 30'
cmdline="console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run=\"$guest\""

# The KiB a process has resident beyond its mapping of SIZE_KIB (the guest's RAM).
beyond_guest_kib() {
    awk -v size="$2" '
        /^[0-9a-f]+-[0-9a-f]+ / { in_guest = 0 }
        /^Size:/ { in_guest = ($2 == size) }
        /^Rss:/ { total += $2; if (in_guest) guest += $2 }
        END { print total - guest }' "/proc/$1/smaps"
}

# Starts a VMM in the namespace, waits for its guest's marker and a second more, prints the VMM's
# memory beyond the guest's in MiB, and stops it.
measure() {
    log=$dir/console
    ip netns exec "$namespace" "$@" > "$log" 2>&1 &
    pid=$!
    n=0
    until grep -q '^footprint-ready' "$log"; do
        n=$((n + 1))
        if [ "$n" -gt 1200 ] || ! kill -0 "$pid" 2> /dev/null; then
            echo "footprint: $1 ... never reached the guest's command; its output ended:" >&2
            tail -n 20 "$log" >&2
            kill -9 "$pid" 2> /dev/null || true
            echo none
            return
        fi
        sleep 0.1
    done
    sleep 1
    # The JVM's pid is the one java below ip netns exec (which execs it), so $pid is the VMM.
    kib=$(beyond_guest_kib "$pid" $((256 * 1024)))
    if [ "${NMT:-0}" = 1 ] && [ "$1" = "$java" ]; then
        "${java%/java}/jcmd" "$pid" VM.native_memory summary | grep -E '^(Total|-)' | sed 's/^/nmt: /' >&2 || true
        # Where the resident memory is, by mapped file (anonymous memory as [anon]), largest first.
        awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]") } /^Rss:/ { rss[name] += $2 }
            /^Private_Dirty:/ { dirty[name] += $2 }
            END { for (n in rss) if (rss[n] >= 1024) printf "rss: %6d KiB (%6d KiB private dirty) %s\n", rss[n], dirty[n], n }' \
            "/proc/$pid/smaps" | sort -k2 -n -r >&2
    fi
    kill -9 "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    echo $((kib / 1024))
}

panamax() {
    nmt=""
    if [ "${NMT:-0}" = 1 ]; then nmt=-XX:NativeMemoryTracking=summary; fi
    # shellcheck disable=SC2086 # $aot, $nmt and JVM_OPTS are words or none
    measure "$java" $rig_jvm_options $aot $nmt ${JVM_OPTS:-} --enable-native-access=ALL-UNNAMED \
        -cp "$cli:$top/cli/target/lib/*" dev.panamax.cli.Panamax \
        run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 --disk "$dir/disk.qcow2" \
        --net "tap=$tap" --cmdline "quiet panamax.run=\"$guest\""
}

qemu() {
    measure qemu-system-x86_64 -accel kvm -cpu host -M microvm,rtc=on -device i8042 -m 256 -smp 1 -nodefaults \
        -no-user-config -display none -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
        -drive "file=$dir/disk.qcow2,if=none,id=d0,format=qcow2" -device virtio-blk-device,drive=d0 \
        -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device virtio-net-device,netdev=n0
}

compare_rounds_one "VMM memory beyond guest RAM" MiB
