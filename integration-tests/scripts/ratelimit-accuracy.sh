#!/bin/sh
# Rate limiter accuracy: the tiny guest's disk limited to RATE MiB/s (run --disk ...,bw=RATEM: a
# bucket of one second's worth, refilled each second), timed by the guest's uptime clock (10 ms)
# over dd of MIB MiB with 1 MiB direct I/O, written then read (both count against the one
# bandwidth bucket); then PATCH /drives/disk0 doubles the limit while the guest runs, and the guest
# measures again. Before each timed pair an untimed dd of a bucket's worth empties the bucket (it
# starts full), so the times show the rate, not the burst. The guest waits for the PATCH by polling
# a sector of its own disk, where this script writes a mark once the API has answered.
# Prints limit against measured for each; Firecracker's own test allows 15%.
# Where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/ratelimit-accuracy.sh [RATE_MIB_PER_S] [MIB]
# Needs the built CLI (./panamax build) and guest (./panamax run builds it).
set -eu
rate=${1:-10}
mib=${2:-64}
. "$(dirname "$0")/peer-common.sh"
work=$(mktemp -d /dev/shm/ratelimit.XXXXXX)
vmm=""
trap '[ -z "$vmm" ] || kill "$vmm" 2>/dev/null; rm -rf "$work"' EXIT
image=$work/disk.raw
sock=$work/api.sock
log=$work/console.log
dd if=/dev/zero of="$image" bs=1M count=$((mib + 16)) 2>/dev/null
mark=$(((mib + 8) * 2048)) # the sector the script marks once the PATCH is done, past what dd touches
fast=$((2 * rate))

# In the guest: empty the bucket, time a write and a read of MIB MiB; twice, the PATCH between.
pair="dd if=/dev/vda of=/dev/null bs=1M count=\$n iflag=direct 2>/dev/null; read a x < /proc/uptime;"
pair="$pair dd if=/dev/zero of=/dev/vda bs=1M count=$mib oflag=direct 2>/dev/null; read b x < /proc/uptime;"
pair="$pair dd if=/dev/vda of=/dev/null bs=1M count=$mib iflag=direct 2>/dev/null; read c x < /proc/uptime;"
run="n=$rate; $pair echo rl-times 1 \$a \$b \$c; echo rl-patch-now;"
run="$run until dd if=/dev/vda bs=512 skip=$mark count=1 iflag=direct 2>/dev/null | grep -q patched; do sleep 1; done;"
run="$run n=$fast; $pair echo rl-times 2 \$a \$b \$c"

panamax_cli run --no-rig --kernel "$kernel" --initrd "$initrd" --memory 256M --cpus 1 --api-sock "$sock" \
    --disk "$image,bw=${rate}M" --cmdline "quiet panamax.run=\"$run\"" > "$log" 2>&1 &
vmm=$!

# Waits up to $2 seconds for the console to show $1.
await_console() {
    i=0
    until grep -q "$1" "$log"; do
        i=$((i + 1))
        if [ "$i" -gt "$2" ] || ! kill -0 "$vmm" 2>/dev/null; then
            echo "ratelimit-accuracy: no '$1' on the console after ${2} s; it ended:" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        sleep 1
    done
}

await_console rl-patch-now $((60 + 3 * mib / rate))
panamax_cli api --api-sock "$sock" PATCH /drives/disk0 \
    "{\"drive_id\": \"disk0\", \"rate_limiter\": {\"bandwidth\": {\"size\": $((fast * 1048576)), \"refill_time\": 1000}}}"
printf patched | dd of="$image" bs=512 seek="$mark" conv=notrunc 2>/dev/null
await_console "rl-times 2" $((60 + 3 * mib / fast))
wait "$vmm" || true
vmm=""

# "rl-times PHASE A B C": the write took B - A seconds, the read C - B.
awk -v mib="$mib" -v r1="$rate" -v r2="$fast" '
    /^rl-times/ {
        limit = $2 == 1 ? r1 : r2
        what = $2 == 1 ? "as configured" : "after PATCH"
        w = mib / ($4 - $3); r = mib / ($5 - $4)
        printf "%-13s write: limit %d MiB/s, measured %.2f MiB/s (%+.1f%%)\n", what, limit, w, 100 * (w / limit - 1)
        printf "%-13s read:  limit %d MiB/s, measured %.2f MiB/s (%+.1f%%)\n", what, limit, r, 100 * (r / limit - 1)
        if (w > 1.15 * limit || w < 0.85 * limit || r > 1.15 * limit || r < 0.85 * limit) off = 1
        n++
    }
    END {
        if (n != 2) { print "ratelimit-accuracy: expected two phases of times, got " n; exit 1 }
        print off ? "outside 15% of the limit" : "within 15% of the limit"
    }' "$log"
