#!/bin/sh
# Chaos: a guest floods the console, its disk and the network at once for SECONDS (default 600):
# `yes` to the console, dd over its disk in a loop, and UDP datagrams as fast as nc sends them to a
# host address where nothing listens (a tap in a network namespace). Every 10 s the VMM's resident
# memory is sampled, and every second a GET / on its API socket is timed. Prints the samples' range
# and the API's median and worst answer time; ends with status 1 if the API went unanswered, the VMM
# died, or its memory at the end is more than 10 % above its memory after the first minute.
# Where /dev/kvm is real KVM, as root (the tap); here:
#   ./panamax build && ./panamax rig -- sh integration-tests/scripts/flood-chaos.sh [SECONDS]
set -eu
seconds=${1:-600}
# One vCPU by default, as kill-chaos.sh (see there): CPUS=2 where KVM is real.
cpus=${CPUS:-1}
. "$(dirname "$0")/peer-common.sh"
ns=pnx-flood-$$
tap=pnxflood$$
work=$(mktemp -d /tmp/panamax-flood-chaos-XXXXXX)
sock=/tmp/$ns.sock
# The VMM by its pid: $(jobs -p) in a trap is a subshell's empty job list, and kill with no pid fails the trap
# under set -e (status 2, the clean-up skipped).
vmm=""
trap '[ -z "$vmm" ] || kill -9 "$vmm" 2>/dev/null || true; stop_namespace $ns || true; ip netns del $ns 2>/dev/null || true; rm -rf "$work" $sock' EXIT
tap_namespace "$ns" "$tap"
cd "$work"
panamax_cli image create -f qcow2 data.qcow2 256M > /dev/null
# One line, no double quotes inside: the kernel's command line ends panamax.run's value at the first.
guest="ip link set eth0 up; ip addr add 10.9.0.2/24 dev eth0;"
guest="$guest (while true; do dd if=/dev/zero of=/dev/vda bs=1M count=200 conv=fsync 2>/dev/null; done) &"
guest="$guest (while true; do yes flood-udp | nc -u 10.9.0.1 9 2>/dev/null; done) &"
guest="$guest echo flooding; yes flood-console"
# Through the environment, not a nested sh -c string: the command line is full of quotes.
export FLOOD_CMDLINE="quiet panamax.run=\"$guest\"" FLOOD_CPUS=$cpus FLOOD_TAP=$tap FLOOD_SOCK=$sock FLOOD_TIMEOUT=$((seconds + 600))
ip netns exec "$ns" sh -c '. "$0"; panamax_cli run --no-rig --timeout "$FLOOD_TIMEOUT" --cpus "$FLOOD_CPUS" --memory 256M \
    --kernel "$kernel" --initrd "$initrd" --disk data.qcow2 --net tap="$FLOOD_TAP" --api-sock "$FLOOD_SOCK" \
    --cmdline "$FLOOD_CMDLINE"' "$top/integration-tests/scripts/peer-common.sh" >> console.log 2>&1 & # appending: truncated below
vmm=$!
n=0
until [ -S "$sock" ] && grep -q flood-console console.log 2>/dev/null; do
    n=$((n + 1))
    if [ "$n" -gt 1800 ] || ! kill -0 "$vmm" 2>/dev/null; then echo "the guest never started flooding:"; tail -n 30 console.log; exit 1; fi
    sleep 0.1
done
java_pid=$(pgrep -f -- "--api-sock $sock" | head -n 1)
: > console.log # the flood fills the file; only its end matters from here
echo "flooding for $seconds s (VMM pid $java_pid)"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$java_pid/status"; }
api_ms() {
    start=$(date +%s%N)
    if curl -s --max-time 10 --unix-socket "$sock" http://localhost/ > /dev/null; then
        echo $(( ($(date +%s%N) - start) / 1000000 ))
    else
        echo fail
    fi
}
samples=""
first=""
times=""
failed=0
# Seconds of the wall clock: each pass (a GET, a second's sleep) takes longer than a second on a slow CPU.
began=$(date +%s)
next_sample=0
while t=$(($(date +%s) - began)); [ "$t" -lt "$seconds" ]; do
    kill -0 "$vmm" 2>/dev/null || { echo "the VMM died after $t s:"; tail -n 30 console.log; exit 1; }
    ms=$(api_ms)
    if [ "$ms" = fail ]; then failed=$((failed + 1)); else times="$times $ms"; fi
    if [ "$t" -ge "$next_sample" ]; then
        r=$(rss)
        samples="$samples $r"
        if [ -z "$first" ] && [ "$t" -ge 60 ]; then first=$r; fi
        echo "$t s: VMM resident $r KiB, GET / in $ms ms"
        : > console.log
        next_sample=$((next_sample + 10))
    fi
    sleep 1
done
last=$(rss)
echo "resident memory: min $(echo "$samples" | tr ' ' '\n' | grep . | sort -n | head -n 1) KiB," \
    "max $(echo "$samples" | tr ' ' '\n' | grep . | sort -n | tail -n 1) KiB, after 1 min ${first:-?} KiB, at the end $last KiB"
echo "GET / during the flood: median $(echo "$times" | tr ' ' '\n' | grep . | median) ms," \
    "worst $(echo "$times" | tr ' ' '\n' | grep . | sort -n | tail -n 1) ms, $failed unanswered"
bounded=$(awk -v a="${first:-$last}" -v b="$last" 'BEGIN { print (b <= a * 1.10) ? "yes" : "no" }')
echo "memory bounded (end within 10 % of the first minute): $bounded"
[ "$failed" -eq 0 ] && [ "$bounded" = yes ]
