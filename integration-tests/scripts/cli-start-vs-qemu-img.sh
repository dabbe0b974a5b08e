#!/bin/sh
# Start-up of Panamax's command line through its launcher (the JVM, the ahead-of-time cache the launcher trains
# once per build, picocli), against qemu-img doing the same, on the host, no KVM needed:
#   sh integration-tests/scripts/cli-start-vs-qemu-img.sh [ROUNDS]
# Cases: `--version`, and `image info` of a 1 GiB qcow2 with some data. Rounds alternate which tool goes first;
# prints each round, then the median wall time and peak RSS of each, and the Panamax/qemu-img ratios.
set -eu
rounds=${1:-10}
uses_vm=no
. "$(dirname "$0")/peer-common.sh" # top, median
"$top/panamax" --version > /dev/null # builds Panamax when its sources changed, and trains the start-up cache
work=$(mktemp -d "${TMPDIR:-/var/tmp}/cli-start.XXXXXX")
trap 'rm -rf "$work"' EXIT
truncate -s 1G "$work/src.raw"
head -c 16777216 /dev/urandom | dd of="$work/src.raw" conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$work/src.raw" "$work/disk.qcow2"

# measure CMD...: "MS KIB", wall time and peak resident set of one run
measure() {
    s=$(date +%s%N)
    /usr/bin/time -f '%M' -o "$work/time" "$@" > /dev/null 2>&1
    e=$(date +%s%N)
    echo "$(((e - s) / 1000000)) $(tail -n 1 "$work/time")"
}

for c in version info; do : > "$work/p.$c"; : > "$work/q.$c"; done
round=0
while [ "$round" -lt "$rounds" ]; do
    round=$((round + 1))
    for c in version info; do
        if [ "$c" = version ]; then p="$top/panamax --version"; q="qemu-img --version"
        else p="$top/panamax image info $work/disk.qcow2"; q="qemu-img info $work/disk.qcow2"; fi
        if [ $((round % 2)) -eq 1 ]; then
            a=$(measure $p); b=$(measure $q)
        else
            b=$(measure $q); a=$(measure $p)
        fi
        echo "$a" >> "$work/p.$c"; echo "$b" >> "$work/q.$c"
        echo "round $round: $c: Panamax ${a% *} ms ${a#* } KiB, qemu-img ${b% *} ms ${b#* } KiB"
    done
done
echo "medians of $rounds rounds (wall time, peak RSS):"
for c in version info; do
    pt=$(cut -d' ' -f1 "$work/p.$c" | median); pm=$(cut -d' ' -f2 "$work/p.$c" | median)
    qt=$(cut -d' ' -f1 "$work/q.$c" | median); qm=$(cut -d' ' -f2 "$work/q.$c" | median)
    echo "  $c: Panamax $pt ms $((pm / 1024)) MiB, qemu-img $qt ms $((qm / 1024)) MiB, time ratio $(echo "$pt $qt" | awk '{ printf "%.1f", $1 / $2 }')"
done
