#!/bin/sh
# Runs every Jazzer fuzz target (each @FuzzTest method of a *FuzzTest class) in fuzzing mode, one at a time,
# for SECONDS each (default 300), and prints a line per target: executions, seconds, coverage, crashes.
# mvn test runs the same targets over their seed corpus only (regression mode, seconds); this is the long run:
#   sh integration-tests/scripts/fuzz-long.sh [SECONDS_PER_TARGET] [FILTER]
# With RUNS=N in the environment each target stops after N executions instead, or at SECONDS, whichever
# comes first (RUNS=10000000 and a generous SECONDS for the ten-million run).
# FILTER (a grep pattern) picks targets by "module Class#method". A crash, hang or OOM fails its target and Jazzer
# writes the input to the target's seed directory (src/test/resources/<package>/<Class>Inputs/<method>/), where
# every later mvn test replays it. The corpus the fuzzer grew is kept in MODULE/.cifuzz-corpus/ (not versioned)
# and is where the next run starts. Logs: target/fuzz-long/<Class>.<method>.log. No /dev/kvm is needed.
set -eu
seconds=${1:-300}
filter=${2:-.}
max_runs=${RUNS:+-Djazzer.max_executions=$RUNS}
cd "$(dirname "$0")/../.."
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
logs=target/fuzz-long
mkdir -p "$logs"

# "module Class#method" for every fuzz target: the method is the first one declared after its @FuzzTest.
targets() {
    grep -rl --include='*FuzzTest.java' '@FuzzTest' */src/test/java | sort | while read -r file; do
        module=${file%%/*}
        class=$(basename "$file" .java)
        awk '/@FuzzTest/ { want = 1; next } want && match($0, /void [A-Za-z0-9_]+\(/) {
                 print substr($0, RSTART + 5, RLENGTH - 6); want = 0 }' "$file" |
            while read -r method; do echo "$module $class#$method"; done
    done
}

# One build of everything the targets need, so that each target's run compiles nothing.
modules=$(targets | grep -e "$filter" | cut -d' ' -f1 | sort -u | paste -sd, -)
[ -n "$modules" ] || { echo "no fuzz target matches '$filter'" >&2; exit 2; }
nice ./mvnw -B -q -o test-compile -pl "$modules" -am >"$logs/build.log" 2>&1 || { echo "build failed: $logs/build.log" >&2; exit 1; }

printf '%-48s %12s %8s %8s %8s  %s\n' target executions seconds cov crashes result
targets | grep -e "$filter" | while read -r module test; do
    log=$logs/$(echo "$test" | tr '#' '.').log
    before=$(find "$module/src/test/resources" -path '*Inputs/*' \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null | wc -l)
    # -am: the reactor finds the other modules' classes; the tests of the others are not run (-Dtest names one).
    # jazzer.hooks: the compare hooks guide the fuzzer (off in mvn test's regression runs, see the root pom).
    # instrumentation_includes: coverage of Panamax's own code only, not of the libraries it calls (Jackson,
    # Micrometer, ...): 40-50 % more executions per second on qcow2 and the REST requests, the same coverage of ours.
    # </dev/null: Maven would read the rest of the target list from the loop's standard input.
    # testForkTimeoutSeconds: the test JVM's own limit (30 minutes) would kill a longer run and lose its count.
    if JAZZER_FUZZ=1 nice ./mvnw -B -o test -pl "$module" -am -Dtest="$test" -Dsurefire.failIfNoSpecifiedTests=false \
            -Djazzer.hooks=true -Dpanamax.testTimeoutMode=disabled -Dpanamax.testForkTimeoutSeconds=$((seconds + 900)) \
            -Djazzer.instrumentation_includes='dev.panamax.**' -Djazzer.max_duration="${seconds}s" $max_runs \
            </dev/null >"$log" 2>&1; then
        result=ok
    else
        result="FAILED, see $log"
    fi
    after=$(find "$module/src/test/resources" -path '*Inputs/*' \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null | wc -l)
    # libFuzzer's last status line, "#N DONE cov: C ft: F ...", and "Done N runs in S second(s)".
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
    cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%-48s %12s %8s %8s %8s  %s\n' "$test" "${runs:--}" "${secs:--}" "${cov:--}" $((after - before)) "$result"
done | tee "$logs/summary.txt"
! grep -q FAILED "$logs/summary.txt"
