#!/bin/sh
# Native start: the wall time from a VMM's exec to its first KVM_RUN, Panamax (./panamax, its launcher and
# start-up cache included) against QEMU (-M microvm as boot-vs-qemu.sh runs it), the same kernel, initramfs,
# memory and vCPUs, on this host's /dev/kvm (no boot needed: the guest's first instruction is the end of
# the measure), alternating rounds, medians and their ratio. Both times come from the kernel's tracepoints
# (perf: the execve, and the first ioctl KVM_RUN), which slow neither VMM as strace would the JVM.
#   ./panamax build && ./panamax run --timeout 1 && sh integration-tests/scripts/start-vs-qemu.sh [ROUNDS]
# As root (tracepoints); needs perf (Debian's linux-perf) and qemu-system-x86.
set -eu
rounds=${1:-10}
. "$(dirname "$0")/peer-common.sh"
command -v perf > /dev/null || { echo "start-vs-qemu: needs perf (apt-get install linux-perf)" >&2; exit 2; }
data=$(mktemp)
trap 'rm -f "$data"' EXIT

# Runs a VMM under perf for 3 s; prints the ms from the first execve to the first KVM_RUN, or "none".
first_run_ms() {
    perf record -q -e syscalls:sys_enter_execve -e syscalls:sys_enter_ioctl --filter 'cmd == 0xae80' -o "$data" \
        -- timeout 3 "$@" > /dev/null 2>&1 < /dev/null || true
    perf script -i "$data" -F time,event 2>/dev/null | awk '
        /sys_enter_execve/ && start == "" { start = $1 + 0 }
        /sys_enter_ioctl/ { printf "%d\n", ($1 - start) * 1000; found = 1; exit }
        END { if (!found) print "none" }'
}

panamax() {
    first_run_ms "$top/panamax" run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 \
        --cmdline 'quiet panamax.run="true"'
}

qemu() {
    first_run_ms qemu-system-x86_64 -accel kvm -cpu host -M microvm,rtc=on -device i8042 -m 256 -smp 1 -nodefaults \
        -no-user-config -display none -no-reboot -serial stdio -kernel "$kernel" -initrd "$initrd" \
        -append 'console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run="true"'
}

"$top/panamax" --version > /dev/null # builds the launcher's start-up cache if this build has none yet
compare_rounds_one "exec to first KVM_RUN" ms
