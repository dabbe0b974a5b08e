#!/bin/sh
# `panamax image convert --salvage` on a corpus of damaged images, on the host, no KVM needed:
#   sh integration-tests/scripts/salvage-corpus.sh
# qemu-img makes each image from one 8 MiB raw pattern (4 KiB clusters, every third one a hole, the others half
# random bytes and half a constant), then one kind of damage is done to it: an L1 entry overwritten, an L1 entry
# pointing past the end of the file, three L2 entries (past the end, misaligned, on the L1 table), the file cut in
# its last zlib- or zstd-compressed cluster, the refcount table zeroed (no data lost), a VHD block-table entry past
# the end of the file. Panamax salvages each to raw; per image the script prints the bytes of the pattern's data
# recovered exactly against the bytes the damage left intact (goal: all of them), the ranges Panamax listed as
# lost and its exit status (3 when it lost data, 0 when not).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
"$top/panamax" --version > /dev/null # builds Panamax when its sources changed
work=$(mktemp -d "${TMPDIR:-/var/tmp}/salvage-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

python3 - <<'EOF'
import os
cs = 4096
with open("pattern.raw", "wb") as f:
    f.truncate(8 << 20)
    for i in range((8 << 20) // cs):
        if i % 3 == 2:
            continue
        f.seek(i * cs)
        f.write(os.urandom(cs // 2) + bytes([(i & 0xff) | 1]) * (cs // 2))
EOF

# poke FILE OFFSET VALUE [SIZE]: writes VALUE big-endian (8 bytes, or SIZE) at OFFSET; peek FILE OFFSET prints 8 bytes.
# Values are signed, as the shell's 64-bit arithmetic is: an entry with bit 63 set is negative.
poke() { python3 -c "import sys; n=int(sys.argv[4]); f=open(sys.argv[1],'r+b'); f.seek(int(sys.argv[2])); f.write((int(sys.argv[3]) % (1 << 8 * n)).to_bytes(n,'big'))" "$1" "$2" "$3" "${4:-8}"; }
peek() { python3 -c "import sys; f=open(sys.argv[1],'rb'); f.seek(int(sys.argv[2])); print(int.from_bytes(f.read(8),'big',signed=True))" "$1" "$2"; }
# l2entry FILE G: the file offset of guest cluster G's L2 entry.
l2entry() { l1=$(peek "$1" 40); e=$(peek "$1" $((l1 + 8 * ($2 / 512)))); echo $(((e & 0x00fffffffffffe00) + 8 * ($2 % 512))); }

qcow2() { qemu-img convert -f raw -O qcow2 -o cluster_size=4096"${2:-}" ${3:-} pattern.raw "$1"; }

# Each case: NAME, made here; the guest ranges its damage destroys go to NAME.lost as "offset length" lines.
qcow2 l1-entry.qcow2
poke l1-entry.qcow2 $(($(peek l1-entry.qcow2 40) + 8)) $((0x8000000000001234))
echo "2097152 2097152" > l1-entry.qcow2.lost

qcow2 l2-table-past-eof.qcow2
poke l2-table-past-eof.qcow2 $(($(peek l2-table-past-eof.qcow2 40) + 16)) $(((1 << 63) | (1 << 40)))
echo "4194304 2097152" > l2-table-past-eof.qcow2.lost

qcow2 l2-entries.qcow2
size=$(stat -c %s l2-entries.qcow2)
poke l2-entries.qcow2 "$(l2entry l2-entries.qcow2 9)" $(((1 << 63) | $(peek l2-entries.qcow2 40)))
poke l2-entries.qcow2 "$(l2entry l2-entries.qcow2 1027)" $(((1 << 63) | (size / 4096 + 100) * 4096))
at=$(l2entry l2-entries.qcow2 1539); poke l2-entries.qcow2 "$at" $(($(peek l2-entries.qcow2 "$at") + 512))
printf '%s\n' "36864 4096" "4206592 4096" "6303744 4096" > l2-entries.qcow2.lost

for c in zlib zstd; do
    qcow2 "truncated-$c.qcow2" ",compression_type=$c" -c
    # The compressed cluster that lies furthest into the file, and its guest cluster.
    set -- $(python3 - "truncated-$c.qcow2" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
l1, n = struct.unpack(">Q", d[40:48])[0], struct.unpack(">I", d[36:40])[0]
best = (-1, -1)
for i in range(n):
    t = struct.unpack(">Q", d[l1 + 8 * i:l1 + 8 * i + 8])[0] & 0x00fffffffffffe00
    for k in range(512 if t else 0):
        e = struct.unpack(">Q", d[t + 8 * k:t + 8 * k + 8])[0]
        if e >> 62 == 1:
            best = max(best, (e & ((1 << 58) - 1), i * 512 + k))
print(best[0], best[1])
EOF
)
    truncate -s $(($1 + 100)) "truncated-$c.qcow2"
    echo "$(($2 * 4096)) 4096" > "truncated-$c.qcow2.lost"
done

qcow2 refcounts-zeroed.qcow2
rt=$(peek refcounts-zeroed.qcow2 48)
dd if=/dev/zero of=refcounts-zeroed.qcow2 bs=4096 seek=$((rt / 4096)) count=1 conv=notrunc status=none
: > refcounts-zeroed.qcow2.lost

qemu-img convert -f raw -O vpc -o force_size=on pattern.raw bat-past-eof.vhd
dyn=$(peek bat-past-eof.vhd 16); bat=$(peek bat-past-eof.vhd $((dyn + 16)))
poke bat-past-eof.vhd $((bat + 4)) $((($(stat -c %s bat-past-eof.vhd) >> 9) + 131072)) 4
echo "2097152 2097152" > bat-past-eof.vhd.lost

total_intact=0; total_recovered=0
for image in l1-entry.qcow2 l2-table-past-eof.qcow2 l2-entries.qcow2 truncated-zlib.qcow2 truncated-zstd.qcow2 \
        refcounts-zeroed.qcow2 bat-past-eof.vhd; do
    status=0
    "$top/panamax" image convert -q --no-sync --salvage -O raw "$image" "$image.raw" 2> "$image.err" || status=$?
    listed=$(grep -c "lost guest range" "$image.err" || true)
    set -- $(python3 - "$image" <<'EOF'
import sys
image = sys.argv[1]
cs = 4096
pattern = open("pattern.raw", "rb").read()
out = open(image + ".raw", "rb").read()[:len(pattern)]
lost = [tuple(map(int, l.split())) for l in open(image + ".lost") if l.strip()]
intact = recovered = 0
for b in range(0, len(pattern), cs):
    block = pattern[b:b + cs]
    if block == bytes(cs):
        continue  # a hole of the pattern: no data to recover
    if any(o <= b < o + n for o, n in lost):
        continue  # destroyed by the damage
    intact += cs
    if out[b:b + cs] == block:
        recovered += cs
print(intact, recovered)
EOF
)
    total_intact=$((total_intact + $1)); total_recovered=$((total_recovered + $2))
    echo "$image: recovered $2 of $1 intact bytes ($(wc -l < "$image.lost") ranges destroyed, $listed listed as lost, exit status $status)"
done
echo "all images: recovered $total_recovered of $total_intact intact bytes"
