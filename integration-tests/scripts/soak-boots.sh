#!/bin/sh
# Soak: BOOTS boots and ends of the tiny guest in one JVM through the Java API; this JVM's open fds
# and resident memory after 200 must be within 5 % of after 10 (SoakBoots.java says how). Where
# /dev/kvm is real KVM; here:
#   ./panamax build && ./panamax rig -- sh integration-tests/scripts/soak-boots.sh [BOOTS] [WARM]
# Uses the built-in guest (KERNEL and INITRD name others), one vCPU (CPUS=2 where KVM is real: in the
# rig, guests with two broke QEMU TCG's nested SVM under load, see kill-chaos.sh). Ends with SoakBoots' status.
# NMT=1 also prints what grew after the warm boots, by the JVM's Native Memory Tracking categories (inside the rig:
#   ./panamax rig -- sh -c 'NMT=1 sh integration-tests/scripts/soak-boots.sh'). The two-vCPU rig wedged on this churn
# until its /init held a VM open (rig-init.sh says why; vm-churn.sh).
set -eu
. "$(dirname "$0")/peer-common.sh"
nmt=""
if [ "${NMT:-0}" = 1 ]; then nmt=-XX:NativeMemoryTracking=summary; fi
# shellcheck disable=SC2086 # rig_jvm_options and nmt are words or none
"$java" $rig_jvm_options $nmt --enable-native-access=ALL-UNNAMED -cp "$cli:$top/cli/target/lib/*" \
    "$(dirname "$0")/SoakBoots.java" "$kernel" "$initrd" "${1:-200}" "${2:-10}" "${CPUS:-1}"
