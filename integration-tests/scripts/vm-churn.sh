#!/bin/sh
# Creates and ends KVM VMs (each with an in-kernel interrupt controller and one vCPU, never run) as fast
# as it can for SECONDS, while two shell loops keep both of the rig's CPUs busy, and prints how many VMs
# came and went. The rig's /init holds one VM open for the rig's life so that this patches no kernel
# code; RELEASE=1 ends that holder first (stop that rig after: ./panamax rig stop), and then the rig may
# freeze (one run of two here froze within about 40 s; its wedge report named a static-key site in
# __schedule and asm_exc_int3). As root where /dev/kvm is real KVM; here:
#   ./panamax rig -- sh integration-tests/scripts/vm-churn.sh [SECONDS]
#   ./panamax rig -- sh -c 'RELEASE=1 sh integration-tests/scripts/vm-churn.sh 300'
set -eu
seconds=${1:-300}
if [ "${RELEASE:-0}" = 1 ]; then
    pkill -f '^panamax-rig-held-vm' && echo "vm-churn: ended the rig's held VM" || echo "vm-churn: no held VM to end"
fi
busy() { while :; do :; done; }
busy & b1=$!
busy & b2=$!
trap 'kill $b1 $b2 2>/dev/null || true' EXIT
perl -e '
    my $end = time + $ARGV[0];
    my $n = 0;
    while (time < $end) {
        open(my $kvm, "+<", "/dev/kvm") or die "vm-churn: /dev/kvm: $!\n";
        my $vm = ioctl($kvm, 0xAE01, 0) or die "vm-churn: KVM_CREATE_VM: $!\n";
        open(my $vmfd, "+<&=", $vm + 0) or die "vm-churn: the VM fd: $!\n";
        ioctl($vmfd, 0xAE60, 0) or die "vm-churn: KVM_CREATE_IRQCHIP: $!\n";
        my $vcpu = ioctl($vmfd, 0xAE41, 0);
        defined($vcpu) or die "vm-churn: KVM_CREATE_VCPU: $!\n";
        POSIX::close($vcpu + 0);
        close($vmfd);
        close($kvm);
        $n++;
    }
    print "vm-churn: $n VMs created and ended in $ARGV[0] s\n";' -MPOSIX "$seconds"
