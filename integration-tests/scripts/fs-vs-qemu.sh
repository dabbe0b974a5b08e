#!/bin/sh
# Host folders in the tiny guest, Panamax's in-process virtio-fs against QEMU's virtio-9p-pci and
# QEMU with virtiofsd (vhost-user-fs-pci), on the same directory of the rig's memory (/tmp): a
# sequential read of a MIB MiB file (dd, 1 MiB blocks) and find + stat over a tree of FILES files in
# 100 directories, each timed by the guest's uptime clock (10 ms) on a freshly booted guest (its
# page cache empty; the host's holds the files for all three). Same kernel, initramfs, 256 MiB, one
# vCPU; everything on the rig's CPU 0 (net-vs-qemu.sh says why) unless CPUS names others (a taskset
# list, or "all": the rig's two CPUs, each VMM's threads where the rig's kernel puts them, as a VMM
# runs on a machine with a core to spare: Panamax's compiler and device thread then run beside the
# guest's vCPU; the README's shared folders section says what that changed); rounds rotate which VMM goes first; prints
# each round, the medians and Panamax's ratios (read: Panamax's rate over the peer's; find + stat:
# the peer's time over Panamax's, so above 1 means Panamax is faster on both). Panamax and virtiofsd
# run with the cache mode CACHE (default none: no guest page cache, direct I/O, no attribute caching,
# as QEMU's 9p mount has by default; CACHE=auto or always for the others). Panamax's JVM compiles
# with C1 only, as every JVM in the rig does (Rig.JVM_OPTIONS: C2's code patching raced TCG's
# vCPUs), unless JIT=tiered gives it the JVM's default, C1 then C2, as on a host with hardware KVM:
# on one rig CPU only (the default CPUS), where that race cannot happen.
# As root where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/fs-vs-qemu.sh [ROUNDS] [MIB] [FILES]
# The rig passes only a few of the host's environment variables in, so set CACHE, CPUS and JIT inside it:
#   ./panamax rig -- sh -c 'CPUS=all CACHE=auto sh integration-tests/scripts/fs-vs-qemu.sh 1'
# Needs the built CLI (./panamax build) and guest (./panamax run builds it).
set -eu
rounds=${1:-3}
mib=${2:-256}
files=${3:-10000}
fs_cache=${CACHE:-none}
cpus=${CPUS:-0}
. "$(dirname "$0")/peer-common.sh"
case ${JIT:-c1} in
    c1) jit=$rig_jvm_options ;;
    tiered) case $cpus in *[!0-9]*) echo "fs-vs-qemu: JIT=tiered only on one CPU (CPUS=0): C2's code patching races the rig's CPUs" >&2; exit 2 ;; esac
        jit=$vmm_heap_options ;;
    *) echo "fs-vs-qemu: JIT is c1 or tiered, not '$JIT'" >&2; exit 2 ;;
esac
[ "$cpus" = all ] || taskset -p -c "$cpus" $$ > /dev/null
virtiofsd=/usr/lib/qemu/virtiofsd
dir=$(mktemp -d /tmp/fs-vs-qemu.XXXXXX)
log=$dir/console
share=$dir/share
trap 'rm -rf "$dir"' EXIT

mkdir -p "$share/tree"
dd if=/dev/urandom of="$share/big" bs=1M count="$mib" 2> /dev/null
i=0
while [ "$i" -lt 100 ]; do mkdir "$share/tree/d$i"; i=$((i + 1)); done
# FILES small files spread over the 100 directories, made by one process (a shell loop would take minutes under TCG).
python3 -c "
import sys
for n in range(int(sys.argv[2])):
    with open('%s/tree/d%d/f%d' % (sys.argv[1], n % 100, n), 'w') as f:
        f.write('file %d\n' % n)
" "$share" "$files"

# The guest mounts the share at /mnt/bench (9p or virtiofs, tag "bench"; Panamax's initramfs may
# have mounted it there already), then times both workloads.
guest() {
    # (One line, and no double quotes: the kernel's command line would end panamax.run's value at the first.)
    echo "m=/mnt/bench; grep -q ' /mnt/bench ' /proc/mounts || { mkdir -p \$m; $1 bench \$m; } || echo mount-failed;" \
        "read a x < /proc/uptime; dd if=\$m/big of=/dev/null bs=1M 2>/dev/null; read b x < /proc/uptime;" \
        "n=\$(find \$m/tree | xargs stat -c %s | wc -l); read c x < /proc/uptime; echo fs-times \$a \$b \$c \$n"
}
virtiofs_run=$(guest "mount -t virtiofs")
ninep_run=$(guest "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144")

# Prints "READ_MBPS FIND_SECONDS" from a VMM's console (a run without times shows its console's end
# on stderr and runs once more; "0 0" when that fails too).
fs_times() {
    for attempt in 1 2; do
        timeout 600 "$@" > "$log" 2>&1 || true
        if awk -v mib="$mib" -v files="$files" '/^fs-times/ { if ($5 < files) exit 1; printf "%.2f %.2f\n", mib * 1.048576 / ($3 - $2), $4 - $3; found = 1 }
            END { exit !found }' "$log"; then
            return
        fi
        { echo "fs-vs-qemu: $1 ... gave no times (attempt $attempt); its console ended:"; tail -n 20 "$log"; } >&2
    done
    echo "0 0"
}

panamax() {
    # shellcheck disable=SC2086 # $aot is one word or none
    fs_times "$java" $jit $aot --enable-native-access=ALL-UNNAMED -cp "$cli:$top/cli/target/lib/*" dev.panamax.cli.Panamax \
        run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 --share "$share,tag=bench,readonly,cache=$fs_cache" \
        --cmdline "quiet panamax.run=\"$virtiofs_run\""
}

qemu_cmd() {
    echo qemu-system-x86_64 -accel kvm -cpu host -M pc -m 256 -smp 1 -nodefaults -no-user-config -display none -vga none \
        -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd"
}

qemu_9p() {
    # shellcheck disable=SC2046 # qemu_cmd's words
    fs_times $(qemu_cmd) -append "console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run=\"$ninep_run\"" \
        -fsdev local,id=f0,path="$share",security_model=none,readonly=on -device virtio-9p-pci,fsdev=f0,mount_tag=bench
}

# virtiofsd serves one VM and ends: each attempt starts its own, through this wrapper.
cat > "$dir/virtiofsd-qemu.sh" <<EOF2
rm -f "$dir/vfsd.sock"
"$virtiofsd" --socket-path="$dir/vfsd.sock" -o source="$share" -o cache=$fs_cache -o sandbox=chroot > "$dir/vfsd.log" 2>&1 &
vfsd=\$!
n=0; until [ -S "$dir/vfsd.sock" ] || [ \$n -gt 100 ]; do n=\$((n + 1)); sleep 0.1; done
"\$@"
status=\$?
kill \$vfsd 2>/dev/null; wait
exit \$status
EOF2

qemu_virtiofsd() {
    # shellcheck disable=SC2046 # qemu_cmd's words
    fs_times sh "$dir/virtiofsd-qemu.sh" $(qemu_cmd) -append "console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run=\"$virtiofs_run\"" \
        -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
        -chardev socket,id=c0,path="$dir/vfsd.sock" -device vhost-user-fs-pci,chardev=c0,tag=bench
}

pr=""; pf=""; nr=""; nf=""; vr=""; vf=""
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    case $((i % 3)) in
        1) p=$(panamax); n=$(qemu_9p); v=$(qemu_virtiofsd) ;;
        2) n=$(qemu_9p); v=$(qemu_virtiofsd); p=$(panamax) ;;
        0) v=$(qemu_virtiofsd); p=$(panamax); n=$(qemu_9p) ;;
    esac
    echo "round $i: read MB/s and find+stat s: Panamax $p, QEMU 9p $n, QEMU virtiofsd $v"
    pr="$pr ${p% *}"; pf="$pf ${p#* }"; nr="$nr ${n% *}"; nf="$nf ${n#* }"; vr="$vr ${v% *}"; vf="$vf ${v#* }"
done
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
echo "median of $rounds (cache=$fs_cache, CPUs $cpus): read MB/s Panamax $(med "$pr"), QEMU 9p $(med "$nr"), QEMU virtiofsd $(med "$vr");" \
    "find+stat of $files files, s: Panamax $(med "$pf"), QEMU 9p $(med "$nf"), QEMU virtiofsd $(med "$vf")"
echo "$(med "$pr") $(med "$nr") $(med "$vr") $(med "$pf") $(med "$nf") $(med "$vf")" | awk '{
    printf "Panamax against QEMU 9p: read %.2f, find+stat %.2f; against QEMU virtiofsd: read %.2f, find+stat %.2f (above 1: Panamax faster)\n",
        ($2 == 0 ? 0 : $1 / $2), ($4 == 0 ? 0 : $5 / $4), ($3 == 0 ? 0 : $1 / $3), ($4 == 0 ? 0 : $6 / $4) }'
