#!/bin/sh
# Random 4 KiB reads through virtio-blk's virtqueue on one core (VirtioBlkBenchmark.virtioRead4k: a Java
# driver makes 128 requests available, the device thread reads them from a raw file in the page cache with
# one io_uring_enter, the driver sleeps until the used-ring interrupt), against fio doing the I/O part
# alone in C: 4 KiB random reads from a file of the same size in the page cache, io_uring, 128 submitted
# at once and reaped together, no clock read per request (gtod_reduce). Both on the same CPU, files on the
# same file system; rounds alternate which goes first; prints each round, the medians and Panamax's rate
# over fio's. No KVM needed:
#   sh integration-tests/scripts/virtqueue-vs-fio.sh [ROUNDS] [CPU]
# Needs fio (apt-get install fio) and JAVA_HOME at a JDK 25; builds the modules the benchmark needs.
set -eu
rounds=${1:-5}
cpu=${2:-0}
uses_vm=no
. "$(dirname "$0")/peer-common.sh" # top, compare_rounds_one
command -v fio > /dev/null || { echo "virtqueue-vs-fio: needs fio (apt-get install fio)" >&2; exit 2; }
[ -n "${JAVA_HOME:-}" ] || { echo "virtqueue-vs-fio: set JAVA_HOME to a JDK 25 (Maven and the benchmark run on it)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/var/tmp}/virtqueue-vs-fio.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building the benchmark's modules..." >&2
"$top/mvnw" -B -q -f "$top/pom.xml" install -DskipTests -Djacoco.skip=true -pl virtio -am > "$work/build.log" 2>&1 \
    && "$top/mvnw" -B -q -f "$top/pom.xml" -pl virtio test-compile dependency:build-classpath -Djacoco.skip=true \
        -Dmdep.includeScope=test -Dmdep.outputFile="$work/classpath" >> "$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
class_path=$top/virtio/target/test-classes:$top/virtio/target/classes:$(cat "$work/classpath")

# The benchmark's disk is 64 MiB (VirtioBlkBenchmark.DISK_SIZE); fio's file too, read once into the page cache.
head -c 67108864 /dev/urandom > "$work/fio.raw"
cat "$work/fio.raw" > /dev/null

# One JMH fork, 2 warm-up and 3 measured iterations of 2 s: prints the requests per second. (-jvmArgsAppend
# replaces the class's own, so it names native access again.)
panamax() {
    taskset -c "$cpu" "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -cp "$class_path" org.openjdk.jmh.Main \
        'VirtioBlkBenchmark.virtioRead4k' -p limiter=none -f 1 -wi 2 -w 2 -i 3 -r 2 \
        -jvmArgsAppend "--enable-native-access=ALL-UNNAMED -Djava.io.tmpdir=$work" > "$work/jmh.out" 2>&1 || { cat "$work/jmh.out" >&2; exit 1; }
    awk '$1 ~ /virtioRead4k$/ && $3 == "thrpt" { printf "%d\n", $5 }' "$work/jmh.out"
}

# fio for 6 s after 2 s of ramp: prints the reads per second (field 8 of its terse output).
fio_reads() {
    taskset -c "$cpu" fio --name=read4k --filename="$work/fio.raw" --rw=randread --bs=4k --ioengine=io_uring \
        --iodepth=128 --iodepth_batch_submit=128 --iodepth_batch_complete_min=128 --norandommap --randrepeat=0 --gtod_reduce=1 \
        --ramp_time=2 --runtime=6 --time_based --output-format=terse --terse-version=3 | cut -d';' -f 8
}

peer_name=fio
peer_function=fio_reads
compare_rounds_one "4 KiB reads" "per s"
