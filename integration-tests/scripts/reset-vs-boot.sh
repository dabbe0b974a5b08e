#!/bin/sh
# panamax-junit's fast reset against a boot per test: a class of TESTS tests (one command each, which
# fails when the test before left its file) run with reset = SNAPSHOT (one guest server, booted and
# snapshotted once, the snapshot restored before each test from the second on) and as TESTS classes of
# one test each (a guest server booted per test), through the library's own classes
# (dev.panamax.junit.ResetBenchmark), its guest servers' JVMs C1-only as in the rig; total wall time of
# each, alternating which goes first, medians and their ratio. Where /dev/kvm is real KVM; here:
#   ./panamax build && ./panamax rig -- sh integration-tests/scripts/reset-vs-boot.sh [ROUNDS] [TESTS]
# Uses the built-in guest, as the host's cache has it (built by a boot test or ./panamax run; KERNEL and INITRD
# name others).
set -eu
rounds=${1:-3}
tests=${2:-10}
. "$(dirname "$0")/peer-common.sh"
cp="$top/junit/target/test-classes:$top/junit/target/classes:$cli:$top/cli/target/lib/*"

# Runs the benchmark's MODE ($1) once; prints its line: MODE total-ms tests [median-reset-ms].
bench() {
    # shellcheck disable=SC2086 # $guest is two words
    "$java" $rig_jvm_options --enable-native-access=ALL-UNNAMED -cp "$cp" dev.panamax.junit.ResetBenchmark "$1" "$tests" $guest
}
# peer-common's kernel and initramfs (KERNEL and INITRD, else the newest cached ones), by path: in the rig the
# benchmark cannot build the built-in ones (the rig has no Debian packages to build them from).
guest="$kernel $initrd"

reset=""
boot=""
resets=""
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    if [ $((i % 2)) -eq 1 ]; then
        r=$(bench reset | tail -n 1); b=$(bench boot | tail -n 1)
    else
        b=$(bench boot | tail -n 1); r=$(bench reset | tail -n 1)
    fi
    set -- $r
    rt=$2; rr=$4
    set -- $b
    bt=$2
    echo "round $i: $tests tests with fast reset $rt ms (median reset $rr ms), $tests tests each booting a guest $bt ms"
    reset="$reset $rt"; boot="$boot $bt"; resets="$resets $rr"
done
rm_=$(echo "$reset" | tr ' ' '\n' | grep . | median)
bm=$(echo "$boot" | tr ' ' '\n' | grep . | median)
rrm=$(echo "$resets" | tr ' ' '\n' | grep . | median)
echo "median of $rounds: fast reset $rm_ ms (a reset $rrm ms), a boot per test $bm ms," \
    "ratio boot/reset $(echo "$bm $rm_" | awk '{ printf "%.2f", $1 / $2 }')"
