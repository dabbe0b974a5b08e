#!/bin/sh
# Image conversion from the formats issue 21 added, Panamax's `image convert` against `qemu-img convert`, both from
# the command line (the JVM's start included, with the launcher's start-up cache), on the host, no KVM needed:
#   [CASES="NAME..."] sh integration-tests/scripts/convert-vs-qemu-img.sh [ROUNDS] [SIZE_MIB]
# The source is a raw disk of SIZE_MIB (default 1024) with 20 % of it random data (1 MiB in every 5), made into a
# monolithicSparse and a streamOptimized VMDK, a dynamic VDI, a dynamic VHDX, a qcow2 and a zstd-compressed qcow2 by qemu-img.
# Cases: each of those to raw, and raw to a qcow2 and to a zstd-compressed qcow2. Neither tool syncs its output (qemu-img's default, Panamax's
# --no-sync). Rounds alternate which tool goes first; prints each round, then medians and Panamax/qemu-img ratios.
set -eu
rounds=${1:-3}
size=${2:-1024}
uses_vm=no
. "$(dirname "$0")/peer-common.sh" # top, median
"$top/panamax" --version > /dev/null # builds Panamax when its sources changed
work=$(mktemp -d "${TMPDIR:-/var/tmp}/convert-vs-qemu-img.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

truncate -s "${size}M" src.raw
i=0
while [ $((i * 5)) -lt "$size" ]; do
    head -c 1048576 /dev/urandom | dd of=src.raw bs=1M seek=$((i * 5)) conv=notrunc status=none
    i=$((i + 1))
done
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse src.raw src.vmdk
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw src-stream.vmdk
qemu-img convert -f raw -O vdi src.raw src.vdi
qemu-img convert -f raw -O vhdx src.raw src.vhdx
qemu-img convert -f raw -O qcow2 src.raw src.qcow2
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd src.raw src-zstd.qcow2

# The sync first: the last run's output, written back meanwhile, would slow whichever tool runs next.
ms() { sync; s=$(date +%s%N); "$@" > /dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }

# case NAME SOURCE FORMAT [-c -o compression_type=zstd]: Panamax's and qemu-img's times for one round, "P Q".
one() {
    src=$1; fmt=$2; shift 2
    rm -f out.*
    p() { ms "$top/panamax" image convert --no-sync -q -O "$fmt" "$@" "$src" "out.p.$fmt"; }
    q() { ms qemu-img convert -O "$fmt" "$@" "$src" "out.q.$fmt"; }
    if [ $((round % 2)) -eq 1 ]; then a=$(p "$@"); b=$(q "$@"); else b=$(q "$@"); a=$(p "$@"); fi
    # Both outputs hold the source's data: a wrong conversion must not pass for a fast one.
    qemu-img compare -q "out.p.$fmt" "$src" || { echo "Panamax's conversion of $src to $fmt differs from its source" >&2; exit 1; }
    echo "$a $b"
}

cases="raw-to-qcow2:src.raw:qcow2 qcow2-to-raw:src.qcow2:raw vmdk-sparse-to-raw:src.vmdk:raw vmdk-stream-to-raw:src-stream.vmdk:raw vdi-to-raw:src.vdi:raw vhdx-to-raw:src.vhdx:raw zstd-qcow2-to-raw:src-zstd.qcow2:raw raw-to-zstd-qcow2:src.raw:qcow2"
if [ -n "${CASES:-}" ]; then # CASES="raw-to-qcow2 qcow2-to-raw" runs those alone
    keep=""
    for c in $cases; do case " $CASES " in *" ${c%%:*} "*) keep="$keep $c" ;; esac; done
    cases=$keep
fi
for c in $cases; do : > "times.$c"; done
round=0
while [ "$round" -lt "$rounds" ]; do
    round=$((round + 1))
    for c in $cases; do
        name=${c%%:*}; rest=${c#*:}; src=${rest%%:*}; fmt=${rest#*:}
        if [ "$name" = raw-to-zstd-qcow2 ]; then t=$(one "$src" "$fmt" -c -o compression_type=zstd); else t=$(one "$src" "$fmt"); fi
        echo "$t" >> "times.$c"
        echo "round $round: $name: Panamax ${t% *} ms, qemu-img ${t#* } ms"
    done
done
echo "medians of $rounds rounds, $size MiB disk with 20 % data:"
for c in $cases; do
    p=$(cut -d' ' -f1 "times.$c" | median); q=$(cut -d' ' -f2 "times.$c" | median)
    echo "  ${c%%:*}: Panamax $p ms, qemu-img $q ms, ratio $(echo "$p $q" | awk '{ printf "%.2f", $1 / $2 }')"
done
