#!/rig/busybox sh
# /init of the nested KVM rig (L1): Debian's stock kernel under QEMU TCG with emulated AMD SVM, so
# that kvm_amd gives a real /dev/kvm. The host's /usr and /etc come in read-only over 9p, the
# folders of a run (listed in /rig/shares) at the same paths as on the host. Then an agent serves
# the host on the virtio-serial port "panamax.ctl":
#   host -> rig   RUN <nonce> <base64 of a shell script>    run it, stdin empty, output back on the port
#                 RUNI <nonce> <base64 of a shell script>   the same, stdin fed by IN and ended by EOF
#                 IN <nonce> <base64 of bytes>              input for the running RUNI command
#                 EOF <nonce>                               its input ends
#                 KILL <nonce>                               kill that run's process group
#                 PING <token>                               answer "\npanamax-rig-alive <token>\n"
#   rig -> host   READY, once; after each run "\npanamax-rig-exit <nonce> <status>\n"
# A rig that answers no ping for minutes is wedged (QEMU's software CPU stuck); the host stops it.
# When the host closes the port (or dies), the rig powers off: it never outlives its caller.
B=/rig/busybox
# The initramfs root (rootfs) refuses pivot_root, with which passt sandboxes itself: first move the
# root to a tmpfs and start this script again there.
if [ ! -e /.rig-tmpfs ]; then
    $B mkdir /newroot && $B mount -t tmpfs -o mode=0755 tmpfs /newroot &&
        for e in /*; do [ "$e" = /newroot ] || $B cp -a "$e" /newroot/; done &&
        $B touch /newroot/.rig-tmpfs && exec $B switch_root /newroot /init
    echo "panamax-rig: cannot move the root to a tmpfs (passt will not start in the rig)"
fi
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B mount -t tmpfs -o mode=1777 tmpfs /tmp
$B mkdir -p /dev/pts /dev/shm /run /var/tmp
$B mount -t devpts devpts /dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs /dev/shm
$B ln -s /proc/self/fd /dev/fd
$B hostname rig

for ko in /rig/modules/*.ko; do
    $B insmod "$ko" || echo "panamax-rig: insmod $ko failed"
done

# mount9p TAG ro|rw PATH: read-only shares are cached loosely (nobody changes /usr during a run);
# read-write ones are not cached, so files the host writes between commands are seen.
mount9p() {
    cache=loose
    [ "$2" = rw ] && cache=mmap
    $B mkdir -p "$3" &&
        $B mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,cache=$cache,$2" "$1" "$3" ||
        echo "panamax-rig: cannot mount 9p share $1 at $3"
}
mount9p usr ro /usr
mount9p etc ro /etc
for d in bin sbin lib lib64; do $B ln -s usr/$d /$d; done
while IFS='	' read -r tag mode path; do
    mount9p "$tag" "$mode" "$path"
done < /rig/shares

# Networking inside the rig only: loopback up, and a placeholder interface (a dummy, which drops
# everything) with a default route, without which Debian 12's passt refuses to start. Taps come from
# tun, which needs /dev/net/tun.
/usr/sbin/ip link set lo up
/usr/sbin/ip link add rig0 type dummy && /usr/sbin/ip addr add 10.0.2.15/24 dev rig0 && /usr/sbin/ip link set rig0 up &&
    /usr/sbin/ip route add default via 10.0.2.2 dev rig0 || echo "panamax-rig: no placeholder network (rig0)"
$B mkdir -p /dev/net && { [ -c /dev/net/tun ] || $B mknod /dev/net/tun c 10 200; }

[ -c /dev/kvm ] || echo "panamax-rig: /dev/kvm is missing: kvm_amd did not load (see the messages above)"

# One VM with one vCPU (its local APIC in the kernel, never run) held open for the rig's life. A VM
# that KVM creates while no other exists turns static keys on (preempt notifiers, and the count of
# software-disabled local APICs), and its end turns them off again; Linux patches its own code for
# each such turn, live, with int3 and IPIs. Under QEMU's threaded TCG a vCPU now and then seems to
# keep running a stale translation of a patched site: it takes the int3 over and over (the kernel
# finds the byte gone and runs the site again), and the rig freezes for good, its vCPUs at a site in
# __schedule or in asm_exc_int3. With these keys kept on, VMs coming and going patch nothing (vm-churn.sh). perl
# (perl-base, essential in Debian) has the ioctl a shell lacks: KVM_CREATE_VM, KVM_CREATE_IRQCHIP,
# KVM_CREATE_VCPU (_IO(0xAE, 0x01), 0x60, 0x41).
[ -c /dev/kvm ] && /usr/bin/perl -e '
    open(my $kvm, "+<", "/dev/kvm") or die "panamax-rig: cannot open /dev/kvm to hold a VM: $!\n";
    my $vm = ioctl($kvm, 0xAE01, 0) or die "panamax-rig: cannot create the held VM: $!\n";
    open(my $vmfd, "+<&=", $vm + 0) or die "panamax-rig: the held VM: $!\n";
    ioctl($vmfd, 0xAE60, 0) or die "panamax-rig: the held VM has no interrupt controller: $!\n";
    defined(ioctl($vmfd, 0xAE41, 0)) or die "panamax-rig: the held VM has no vCPU: $!\n";
    $0 = "panamax-rig-held-vm";
    open(my $held, ">", "/run/panamax-held-vm") and close($held);
    sleep while 1;' < /dev/null &
# Creating the held VM patches the kernel once more: let that happen before any command runs beside it
# (a first run froze at that moment once). Up to 30 s, then the rig goes on without.
n=0
while [ -c /dev/kvm ] && [ ! -e /run/panamax-held-vm ] && [ "$n" -lt 30 ]; do $B sleep 1; n=$((n + 1)); done
[ -e /run/panamax-held-vm ] || echo "panamax-rig: no VM held open: VMs coming and going may freeze the rig"

port=
for p in /sys/class/virtio-ports/*; do
    [ "$($B cat "$p/name" 2>/dev/null)" = panamax.ctl ] && port=/dev/${p##*/}
done
[ -n "$port" ] || { echo "panamax-rig: no virtio-serial port panamax.ctl"; $B poweroff -f; }

# Names each process a finished command left running in its process group $1: such a process runs on
# beside the commands after it, on the rig's software CPU, slowing them all. Named, not killed: a command
# may mean to leave a server behind. (No fork per process: a fork costs milliseconds here.)
left_in_group() {
    g=$1
    kill -0 "-$g" 2>/dev/null || return 0
    for d in /proc/[0-9]*; do
        read -r s 2>/dev/null < "$d/stat" || continue # (a process that ended meanwhile)
        set -- ${s##*) } # after the command's name, which may hold spaces: state, ppid, pgrp
        [ "$3" = "$g" ] && [ "$1" != Z ] || continue
        args=$($B tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
        printf 'panamax-rig: the command left pid %s running: %s\n' "${d#/proc/}" "${args% }"
    done
}

exec 3<>"$port"
echo READY >&3
while read -r verb nonce arg <&3; do
    case $verb in
    RUN|RUNI)
        echo "$arg" | $B base64 -d > "/tmp/.rig-$nonce.sh"
        if [ "$verb" = RUNI ]; then
            # The agent holds the FIFO open for writing (fd 4) so that the command's reads block,
            # not end, until input comes; EOF closes it. The read end (fd 5) is opened here, before
            # an EOF can close fd 4: opening a FIFO with no writer would block for ever. Runs
            # come one at a time, so fixed fds serve.
            input=/tmp/.rig-$nonce.in
            $B mkfifo "$input" && exec 4<>"$input" 5<"$input"
        else
            exec 5</dev/null
        fi
        (
            exec 4>&- # the subshell must not hold the FIFO open, or the command never sees its end
            # In this background subshell the command is no process group leader, so setsid
            # makes it one without forking: its pid names the group KILL ends.
            $B setsid /bin/sh "/tmp/.rig-$nonce.sh" <&5 5<&- >&3 2>&3 &
            echo $! > "/tmp/.rig-$nonce.pid"
            exec 5<&-
            group=$!
            wait $group
            status=$?
            $B rm -f "/tmp/.rig-$nonce.pid" "/tmp/.rig-$nonce.sh" "/tmp/.rig-$nonce.in" # a late KILL must not hit a reused pid
            left_in_group "$group" >&3
            printf '\npanamax-rig-exit %s %s\n' "$nonce" "$status" >&3
        ) &
        exec 5<&-
        ;;
    IN)
        [ -e "/tmp/.rig-$nonce.in" ] && echo "$arg" | $B base64 -d >&4
        ;;
    EOF)
        exec 4>&-
        ;;
    PING)
        printf '\npanamax-rig-alive %s\n' "$nonce" >&3
        ;;
    KILL)
        pid=$($B cat "/tmp/.rig-$nonce.pid" 2>/dev/null) && $B kill -KILL "-$pid" # busybox kill takes no "--"
        ;;
    esac
done
echo "panamax-rig: control channel closed, powering off"
$B poweroff -f
