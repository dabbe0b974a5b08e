#!/bin/sh
# A repeated `panamax run` through the warm rig (the default; the script sets PANAMAX_RIG_DAEMON=1 all the same) against QEMU booting the same guest
# in the same rig: the tiny guest (same kernel, initramfs, 256 MiB, one vCPU) to its /init marker.
#   sh integration-tests/scripts/warm-run-vs-qemu.sh [ROUNDS] [COLD_ROUNDS]
# Runs on this host, not under `panamax rig --`: it starts the warm rig itself (one untimed run first),
# then alternates, each round after the rig's standby JVM is ready (its warm-up, which follows every command,
# kept out of the timed rounds, as a user's pause between commands does):
#   Panamax: `./panamax run ...` from this host's shell, wall time to the marker line: the launcher, the host
#            JVM, the daemon's reply, the standby JVM in the rig taking the run, the VM's set-up and the guest's boot;
#   QEMU:    `./panamax rig -- ...measure-l2-boot.sh 1 microvm` through the same warm rig: QEMU's own time
#            from its start in the rig to the marker, and the wall time from this host's shell to that line.
# Prints each round, the medians and two ratios: Panamax against QEMU's own time (the issue's goal is 1.5)
# and against QEMU's wall time from the host. COLD_ROUNDS (default 1) more rounds of Panamax with the warm
# rig off (PANAMAX_RIG_DAEMON=0: a rig of its own each time) give today's figure beside it.
# Needs the built CLI (./panamax build) and guest (./panamax run builds it); the machine should be quiet.
set -eu
rounds=${1:-5}
cold_rounds=${2:-1}
. "$(dirname "$0")/peer-common.sh"
panamax="$top/panamax"
guest="--kernel $kernel --initrd $initrd --memory 256M --cpus 1"

# Prints the ms from its start to the first line of its output containing $1, then lets it finish.
ms_to() {
    text=$1
    shift
    start=$(date +%s%N)
    "$@" </dev/null 2>&1 | {
        found=""
        while IFS= read -r line; do
            case $line in *"$text"*) [ -n "$found" ] || { found=$((($(date +%s%N) - start) / 1000000)); echo "$found"; } ;; esac
        done
    }
}

# Waits (up to a minute) until the warm rig's standby JVM is ready: its warm-up must not land in a timed round.
await_standby() {
    n=0
    until "$panamax" rig status 2>/dev/null | grep -q "standby JVM: ready"; do
        n=$((n + 1))
        [ "$n" -lt 60 ] || { echo "no standby JVM became ready within a minute" >&2; return 0; }
        sleep 1
    done
}

export PANAMAX_RIG_DAEMON=1
"$panamax" rig stop >/dev/null
echo "warming up: the first run starts the daemon and its rig (untimed)"
# shellcheck disable=SC2086 # $guest is words on purpose
"$panamax" run $guest --cmdline 'quiet panamax.run="true"' </dev/null >/dev/null 2>&1

p_all=""; q_all=""; h_all=""
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    run_panamax() { ms_to "panamax: init reached" "$panamax" run $guest --cmdline 'quiet panamax.run="true"'; }
    run_qemu() {
        start=$(date +%s%N)
        out=$("$panamax" rig -- env KERNEL="$kernel" INITRD="$initrd" sh "$top/integration-tests/scripts/measure-l2-boot.sh" 1 microvm </dev/null 2>&1)
        own=$(echo "$out" | sed -n 's/.*\/init marker after \([0-9]*\) ms.*/\1/p' | head -n 1)
        echo "$own $((($(date +%s%N) - start) / 1000000))"
    }
    if [ $((i % 2)) -eq 1 ]; then
        await_standby; p=$(run_panamax); await_standby; q=$(run_qemu)
    else
        await_standby; q=$(run_qemu); await_standby; p=$(run_panamax)
    fi
    echo "round $i: Panamax warm run ${p:-none} ms from the host; QEMU in the rig ${q% *} ms from its start (${q#* } ms wall from the host, its exit included)"
    p_all="$p_all $p"; q_all="$q_all ${q% *}"; h_all="$h_all ${q#* }"
done
pm=$(echo "$p_all" | tr ' ' '\n' | grep . | median)
qm=$(echo "$q_all" | tr ' ' '\n' | grep . | median)
hm=$(echo "$h_all" | tr ' ' '\n' | grep . | median)
echo "median of $rounds: Panamax warm run $pm ms, QEMU in the rig $qm ms (wall from the host $hm ms)"
echo "ratio Panamax/QEMU-in-the-rig $(echo "$pm $qm" | awk '{ printf "%.2f", $1 / $2 }') (goal 1.5); Panamax/QEMU-wall-from-the-host $(echo "$pm $hm" | awk '{ printf "%.2f", $1 / $2 }')"
"$panamax" rig stop >/dev/null

c_all=""
i=0
while [ "$i" -lt "$cold_rounds" ]; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    c=$(PANAMAX_RIG_DAEMON=0 ms_to "panamax: init reached" "$panamax" run $guest --cmdline 'quiet panamax.run="true"')
    echo "cold round $i: Panamax run with a rig of its own ${c:-none} ms from the host"
    c_all="$c_all $c"
done
[ -z "$c_all" ] || echo "median of $cold_rounds cold: $(echo "$c_all" | tr ' ' '\n' | grep . | median) ms"
