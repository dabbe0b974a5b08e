# Sourced by the measuring scripts (*-vs-qemu.sh and others): where the built Panamax, the guest and a JDK 25 are,
# the rounds and a median.
# Uses the newest kernel and initramfs in the cache unless KERNEL and INITRD name others.
top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${PANAMAX_CACHE:-$HOME/.cache/panamax}
# A script that starts no VM (virtqueue-vs-fio.sh, cli-start-vs-qemu-img.sh, convert-vs-qemu-img.sh) sets uses_vm=no
# first and gets only the rounds and the median: no built CLI, guest or start-up cache is looked for, or missed.
if [ "${uses_vm:-yes}" = yes ]; then
    kernel=${KERNEL:-$(ls -td "$cache"/kernels/*/ | head -n 1)vmlinux}
    initrd=${INITRD:-$(ls -td "$cache"/initramfs/*/ | head -n 1)initramfs.cpio.gz}
    java=$(ls -d /usr/lib/jvm/temurin-25-jdk-amd64/bin/java "${JAVA_HOME:-/nonexistent}"/bin/java 2>/dev/null | head -n 1)
    cli=$(ls "$top"/cli/target/cli-*.jar | head -n 1)
    # The start-up cache 'panamax run' trains for the JVM in the rig. The JVM ignores one older than the CLI's jar without a
    # word, and Panamax's rounds would then measure JVMs starting without one: say so.
    aot=$(ls -t "$cache"/aot/cli-*.aot 2>/dev/null | head -n 1)
    if [ -n "$aot" ] && [ "$cli" -nt "$aot" ]; then aot=""; fi
    [ -n "$aot" ] || echo "$(basename "$0"): no start-up cache for this build of the CLI (./panamax run --timeout 1 makes it);" \
        "Panamax's JVMs start without one" >&2
    aot=${aot:+-XX:AOTCache=$aot}
fi

# The options of the rig's JVMs (Rig.JVM_OPTIONS): C1 only, and the heap settings of every Panamax JVM (the
# launcher's too), the serial collector from a 4 MiB heap.
vmm_heap_options="-XX:+UseSerialGC -Xms4m"
rig_jvm_options="-XX:TieredStopAtLevel=1 $vmm_heap_options"

# Runs Panamax's CLI as the rig's JVMs run with the arguments given.
panamax_cli() { (panamax_cli_exec "$@"); }

# panamax_cli for `panamax_cli_exec ARGS... &`: the JVM replaces the background subshell, so $! is the
# JVM's own pid (a signal to the subshell of a plain function call would not reach it).
panamax_cli_exec() {
    # shellcheck disable=SC2086 # $rig_jvm_options are words, $aot one word or none
    exec "$java" $rig_jvm_options $aot --enable-native-access=ALL-UNNAMED -cp "$cli:$top/cli/target/lib/*" dev.panamax.cli.Panamax "$@"
}

# Makes network namespace $1 with tap $2 in it at 10.9.0.1/24, the host side of a guest at 10.9.0.2.
tap_namespace() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip -n "$1" tuntap add dev "$2" mode tap
    ip -n "$1" addr add 10.9.0.1/24 dev "$2"
    ip -n "$1" link set "$2" up
}

# Ends every process in network namespace $1: its servers, and what busybox nc started for a connection.
stop_namespace() { ip netns pids "$1" 2>/dev/null | xargs -r kill 2>/dev/null || true; }

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The peer the rounds below measure Panamax against, as they print it, and the calling script's function that runs
# it: QEMU and qemu unless the script names another (a C baseline, say).
peer_name=${peer_name:-QEMU}
peer_function=${peer_function:-qemu}

# Runs the calling script's panamax and peer functions for $rounds rounds, alternating which goes first; prints
# each round as "round N: $1: Panamax P$2, $peer_name Q$2" and leaves what they printed, comma-separated, in $p_all and
# $q_all.
alternate_rounds() {
    p_all=""; q_all=""
    i=0
    while [ "$i" -lt "$rounds" ]; do
        i=$((i + 1))
        if [ $((i % 2)) -eq 1 ]; then
            p=$(panamax); q=$($peer_function)
        else
            q=$($peer_function); p=$(panamax)
        fi
        echo "round $i: $1: Panamax $p$2, $peer_name $q$2"
        p_all="$p_all,$p"; q_all="$q_all,$q"
    done
}

# Word $2 (1 or 2) of each of the comma-separated results $1, space-separated.
word_of_each() { echo "$1" | tr ',' '\n' | grep . | awk -v w="$2" '{ printf "%s ", $w }'; }

# alternate_rounds for functions that each print two rates ("A B", MB/s); prints the medians and the
# Panamax/QEMU ratios. $1 and $2 name the two rates.
compare_rounds() {
    alternate_rounds "MB/s $1/$2" ""
    echo "median of $rounds: $1 $(versus "$(word_of_each "$p_all" 1)" "$(word_of_each "$q_all" 1)");" \
        "$2 $(versus "$(word_of_each "$p_all" 2)" "$(word_of_each "$q_all" 2)")"
}

# alternate_rounds for functions that each print one figure in unit $2 (or "none" when they got none); prints
# the medians of the figures each got and the Panamax/QEMU ratio. $1 names the figure.
compare_rounds_one() {
    alternate_rounds "$1" " $2"
    pm=$(word_of_each "$p_all" 1 | tr ' ' '\n' | grep -v none | grep . | median)
    qm=$(word_of_each "$q_all" 1 | tr ' ' '\n' | grep -v none | grep . | median)
    echo "median of $rounds: Panamax $pm $2, $peer_name $qm $2, ratio Panamax/$peer_name $(echo "$pm $qm" | awk '{ printf "%.2f", $1 / $2 }')"
}

# "Panamax P MB/s, QEMU Q MB/s, ratio R" for the medians of two lists of rates.
versus() {
    p=$(echo "$1" | tr ' ' '\n' | grep . | median)
    q=$(echo "$2" | tr ' ' '\n' | grep . | median)
    echo "Panamax $p MB/s, $peer_name $q MB/s, ratio $(echo "$p $q" | awk '{ printf "%.2f", $1 / $2 }')"
}
