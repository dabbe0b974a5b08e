#!/bin/sh
# Chaos: KILLS times, a VMM whose guest writes to a qcow2 disk is killed with SIGKILL at a random
# moment. The guest writes its count i into block i of /dev/vda, fsyncs it, and only then prints
# "synced i". After each kill: `panamax image check` must find the image clean or with leaked
# clusters only (repaired with `image repair`, then checked clean), and every block the guest said
# it had synced must hold its count. The next run goes on writing where the last synced one ended.
# Where /dev/kvm is real KVM; here:
#   ./panamax build && ./panamax rig -- sh integration-tests/scripts/kill-chaos.sh [KILLS]
# Prints a line per kill and a summary; ends with status 1 at the first image or block that is wrong.
set -eu
kills=${1:-100}
# One vCPU by default: in the rig, a guest with two under this load crashed the rig's own kernel within
# minutes (a stack guard page hit in vcpu-1's KVM_RUN: QEMU TCG's emulation of nested SVM), which says
# nothing of Panamax. Where KVM is real, CPUS=2 runs the same with two.
cpus=${CPUS:-1}
. "$(dirname "$0")/peer-common.sh"
work=$(mktemp -d /tmp/panamax-kill-chaos-XXXXXX)
# The VMM by its pid: $(jobs -p) in a trap is a subshell's empty job list, and kill with no pid fails the trap
# under set -e (status 2, the clean-up skipped).
vmm=""
trap '[ -z "$vmm" ] || kill -9 "$vmm" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
panamax_cli image create -f qcow2 data.qcow2 64M > /dev/null
synced=0
leaks=0
crashed=0
k=0
while [ "$k" -lt "$kills" ]; do
    k=$((k + 1))
    first=$((synced + 1))
    # No double quotes inside: the kernel's command line ends panamax.run's value at the first.
    # conv=fsync: fsync on /dev/vda makes the kernel send the disk a FLUSH; sync(1) writes a block
    # device's dirty pages but sends none, and a disk with a write cache (Panamax's qcow2 keeps its
    # tables in memory until a flush, as QEMU's does) may lose writes no FLUSH covered.
    guest="i=$synced; while true; do i=\$((i+1)); echo \$i | dd of=/dev/vda bs=512 seek=\$i conv=sync,fsync 2>/dev/null; echo synced \$i; done"
    panamax_cli_exec run --no-rig --timeout 600 --cpus "$cpus" --memory 128M --kernel "$kernel" --initrd "$initrd" \
        --disk data.qcow2 --cmdline "quiet panamax.run=\"$guest\"" > run.log 2>&1 &
    vmm=$!
    # Kill at a random moment after the guest has synced at least one block of this run.
    n=0
    # The console ends its lines with CR LF.
    until tr -d '\r' < run.log | grep -q "^synced $first\$"; do
        n=$((n + 1))
        if [ "$n" -gt 1200 ] || ! kill -0 "$vmm" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if ! tr -d '\r' < run.log | grep -q "^synced $first\$"; then
        # In the rig, QEMU TCG's nested SVM now and then throws a booting guest to a triple fault
        # (about one boot in thirty here): that boot is not a kill; boot again, and count it.
        if grep -q 'the guest failed: vcpu [0-9]*: triple fault' run.log && ! grep -q 'init reached' run.log \
            && [ "$crashed" -lt 10 ]; then
            crashed=$((crashed + 1))
            echo "kill $k: the guest triple-faulted while booting, before any write ($crashed so far); booting again"
            wait "$vmm" 2>/dev/null || true
            k=$((k - 1))
            continue
        fi
        kill -9 "$vmm" 2>/dev/null || true
        echo "kill $k: the guest never synced block $first; its console:"; cat run.log; exit 1
    fi
    sleep "$(awk -v s="$k" 'BEGIN { srand(s); printf "%.1f", rand() * 3 }')"
    kill -9 "$vmm"
    wait "$vmm" 2>/dev/null || true
    last=$(tr -d '\r' < run.log | grep '^synced ' | tail -n 1 | cut -d' ' -f2)
    check=$(panamax_cli image check data.qcow2 2>&1) && status=0 || status=$?
    case $status in
    0) ;;
    3) # leaked clusters only: repair, then it must be clean
        leaks=$((leaks + 1))
        panamax_cli image repair data.qcow2 > /dev/null
        panamax_cli image check data.qcow2 > /dev/null || { echo "kill $k: still not clean after repair"; exit 1; } ;;
    *) echo "kill $k: image check failed (status $status):"; echo "$check"; exit 1 ;;
    esac
    panamax_cli image convert -O raw data.qcow2 data.raw > /dev/null
    # Block i holds "i\n" padded with NULs: without the NULs, blocks 1..last read as the lines 1..last.
    seq 1 "$last" > expected
    dd if=data.raw bs=512 skip=1 count="$last" 2>/dev/null | tr -d '\000' > found
    if ! cmp -s expected found; then
        echo "kill $k: the guest had synced blocks up to $last, but they read otherwise (expected vs found):"
        diff expected found | head -n 10
        exit 1
    fi
    rm -f data.raw
    echo "kill $k: the guest had synced blocks $first..$last; image check $( [ "$status" = 0 ] && echo clean || echo 'leaks, repaired' ); blocks 1..$last intact"
    synced=$last
done
echo "kill-chaos: $kills kills, $leaks left leaked clusters (repaired), no other damage; $synced blocks synced and intact;" \
    "$crashed boots triple-faulted before any write and were booted again"
