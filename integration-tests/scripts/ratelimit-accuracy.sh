#!/bin/sh
# Rate limiter accuracy: the tiny guest's disk limited to RATE MiB/s (run --disk ...,bw=RATEM: a
# bucket of one second's worth, refilled each second), timed by the guest's uptime clock (10 ms)
# over dd of MIB MiB with 1 MiB direct I/O, written then read (both count against the one
# bandwidth bucket); then PATCH /drives/disk0 doubles the limit while the guest runs, and the guest
# measures again. Before each timed pair an untimed dd of a bucket's worth empties the bucket (it
# starts full), so the times show the rate, not the burst. The guest waits for the PATCH by polling
# a sector of its own disk, where this script writes a mark once the API has answered.
# Then the network: a second guest on a tap whose host side sits in a network namespace made here,
# its interface limited to NET_KIB KiB/s each way (tx_rate_limiter and rx_rate_limiter in a config
# file), sends NET_MIB MiB to the host with busybox nc and receives NET_MIB MiB, each after an untimed
# transfer of a bucket's worth. The buckets count whole Ethernet frames (as Firecracker's do), so
# TCP's payload comes out about 4% under the limit at MTU 1500. In the rig the guest's upload runs at
# about 350 KiB/s unlimited (QEMU's software CPU), so a limit there must be well under that to be
# what is measured: 128 KiB/s and 2 MiB, say.
# Prints limit against measured for each; Firecracker's own test allows 15%.
# As root where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/ratelimit-accuracy.sh [RATE_MIB_PER_S] [MIB] [NET_KIB_PER_S] [NET_MIB]
# Needs the built CLI (./panamax build) and guest (./panamax run builds it).
set -eu
rate=${1:-10}
mib=${2:-64}
net_kib=${3:-$((rate * 1024))}
net_mib=${4:-$mib}
# Everything on the rig's CPU 0: a VMM moving frames with its threads over both rig CPUs has crashed
# the rig's L1 kernel (net-vs-qemu.sh says more), as it did here once.
taskset -p -c 0 $$ > /dev/null
. "$(dirname "$0")/peer-common.sh"
work=$(mktemp -d /dev/shm/ratelimit.XXXXXX)
vmm=""
ns=ratelimit-$$
tap=rl$$
trap '[ -z "$vmm" ] || kill "$vmm" 2>/dev/null; stop_namespace $ns; ip netns del $ns 2>/dev/null; rm -rf "$work"' EXIT
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

# The network: a guest limited to NET_KIB KiB/s each way on a tap in a namespace of its own.
tap_namespace $ns $tap
bucket="{\"bandwidth\": {\"size\": $((net_kib * 1024)), \"refill_time\": 1000}}"
net="ip link set eth0 up; ip addr add 10.9.0.2/24 dev eth0; ping -c 1 -w 10 10.9.0.1 > /dev/null;"
net="$net dd if=/dev/zero bs=1K count=$net_kib 2>/dev/null | nc 10.9.0.1 5001; read a x < /proc/uptime;"
net="$net dd if=/dev/zero bs=1M count=$net_mib 2>/dev/null | nc 10.9.0.1 5003; read b x < /proc/uptime;"
net="$net nc 10.9.0.1 5002 < /dev/null | dd of=/dev/null bs=1M 2>/dev/null; read c x < /proc/uptime;"
net="$net nc 10.9.0.1 5004 < /dev/null | dd of=/dev/null bs=1M 2>/dev/null; read d x < /proc/uptime;"
net="$net echo nl-times \$a \$b \$c \$d"
cat > "$work/net.json" <<JSON
{
  "boot-source": {"kernel_image_path": "$kernel", "initrd_path": "$initrd",
                  "boot_args": "console=ttyS0 quiet panamax.run=\"$(printf '%s' "$net" | sed 's/\\/\\\\/g; s/"/\\"/g')\""},
  "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
  "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "$tap",
                          "tx_rate_limiter": $bucket, "rx_rate_limiter": $bucket}]
}
JSON
ip netns exec $ns busybox nc -l -p 5001 -e sh -c 'cat > /dev/null' &
ip netns exec $ns busybox nc -l -p 5002 -e sh -c "dd if=/dev/zero bs=1K count=$net_kib 2>/dev/null" &
ip netns exec $ns busybox nc -l -p 5003 -e sh -c 'cat > /dev/null' &
ip netns exec $ns busybox nc -l -p 5004 -e sh -c "dd if=/dev/zero bs=1M count=$net_mib 2>/dev/null" &
ip netns exec $ns timeout $((120 + 4 * net_mib * 1024 / net_kib)) sh -c "$(command -v "$java") $rig_jvm_options $aot \
    --enable-native-access=ALL-UNNAMED -cp '$cli:$top/cli/target/lib/*' dev.panamax.cli.Panamax run --no-rig \
    --config '$work/net.json'" >> "$log" 2>&1 || true
grep -q "^nl-times" "$log" || { echo "ratelimit-accuracy: the network guest printed no times; it ended:" >&2; tail -n 20 "$log" >&2; exit 1; }

# "rl-times PHASE A B C": the write took B - A seconds, the read C - B.
# "nl-times A B C D": the upload took B - A seconds, the download D - C.
awk -v mib="$mib" -v r1="$rate" -v r2="$fast" -v nmib="$net_mib" -v nkib="$net_kib" '
    /^rl-times/ {
        limit = $2 == 1 ? r1 : r2
        what = $2 == 1 ? "as configured" : "after PATCH"
        w = mib / ($4 - $3); r = mib / ($5 - $4)
        printf "%-13s write: limit %d MiB/s, measured %.2f MiB/s (%+.1f%%)\n", what, limit, w, 100 * (w / limit - 1)
        printf "%-13s read:  limit %d MiB/s, measured %.2f MiB/s (%+.1f%%)\n", what, limit, r, 100 * (r / limit - 1)
        if (w > 1.15 * limit || w < 0.85 * limit || r > 1.15 * limit || r < 0.85 * limit) off = 1
        n++
    }
    /^nl-times/ {
        tx = nmib * 1024 / ($3 - $2); rx = nmib * 1024 / ($5 - $4)
        printf "%-13s tx:    limit %d KiB/s, measured %.1f KiB/s of TCP payload (%+.1f%%)\n", "network", nkib, tx, 100 * (tx / nkib - 1)
        printf "%-13s rx:    limit %d KiB/s, measured %.1f KiB/s of TCP payload (%+.1f%%)\n", "network", nkib, rx, 100 * (rx / nkib - 1)
        if (tx > 1.15 * nkib || tx < 0.85 * nkib || rx > 1.15 * nkib || rx < 0.85 * nkib) off = 1
        n++
    }
    END {
        if (n != 3) { print "ratelimit-accuracy: expected three sets of times, got " n; exit 1 }
        print off ? "outside 15% of the limit" : "within 15% of the limit"
    }' "$log"
