#!/bin/sh
# The Java API's start in a running JVM against QEMU's process start, to the tiny guest's /init marker:
# in one JVM (the rig's JVM options), WARM untimed boots through the API, then ROUNDS rounds alternating
# a boot through VirtualMachine.builder()...build() and start() (timed from before build()) and a QEMU
# (-M microvm, as boot-vs-qemu.sh runs it) started from that JVM (timed from its process start); prints
# each round, the medians and the ratio (ApiStart.java says how). Where /dev/kvm is real KVM; here:
#   ./panamax build && ./panamax rig -- sh integration-tests/scripts/api-start-vs-qemu.sh [ROUNDS] [WARM]
# Uses the built-in guest unless KERNEL and INITRD name others.
set -eu
. "$(dirname "$0")/peer-common.sh"
# shellcheck disable=SC2086 # rig_jvm_options are words
"$java" $rig_jvm_options --enable-native-access=ALL-UNNAMED -cp "$cli:$top/cli/target/lib/*" \
    "$(dirname "$0")/ApiStart.java" "$kernel" "$initrd" "${1:-9}" "${2:-3}"
