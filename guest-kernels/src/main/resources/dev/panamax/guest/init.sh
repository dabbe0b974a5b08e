#!/bin/sh
# /init of the tiny Panamax guest (busybox). Kernel command line parameters it reads:
#   panamax.run="COMMAND"          shell command to run; without it, an interactive shell
#   panamax.shares=TAG:DIR[,TAG:DIR...]
#                                  host folders to mount first, each with `mount -t virtiofs TAG DIR`
#                                  (DIR made when missing). TAG: 1-36 of A-Z a-z 0-9 . _ -; DIR: an
#                                  absolute path of A-Z a-z 0-9 . _ / -, not / and without . or ..
#                                  parts. Each share that is malformed or does not mount is reported
#                                  on one line (`panamax: cannot mount share TAG at DIR: REASON`, or
#                                  `panamax: cannot mount share 'ENTRY': ...`); the others are mounted
#                                  all the same, before panamax.run runs.
#   panamax.exec=PORT              run /bin/panamax-agent (panamax exec's guest side), which connects to
#                                  the host's vsock PORT and runs the command it receives; instead of
#                                  panamax.run
#   panamax.rootfs=TAG             with panamax.exec: the command runs in the host's root directory, the
#                                  read-only virtio-fs share TAG under an overlay whose writes go to a
#                                  tmpfs (exec --rootfs host), with /proc, /sys, /dev, /tmp and /run of
#                                  its own, and the shares mounted inside it. When that cannot be made,
#                                  one line says why and no command runs.
#   panamax.exit=reboot|poweroff   how to end afterwards. Default reboot: with reboot=k it goes
#                                  through the i8042, and any VMM sees the reset. The tiny kernel
#                                  has no ACPI, so poweroff only halts the CPUs (for a VMM that
#                                  watches for halted vCPUs).
# The kernel keeps dotted parameters away from init's environment (it takes them for module
# parameters), so they are read from /proc/cmdline.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# User space has begun: tell the VMM's boot timer (a write of 123 to port 0x440; Panamax reports the
# time from its process start to here). Where no device is at that port the write goes nowhere.
printf '\173' | dd of=/dev/port bs=1 seek=1088 count=1 2>/dev/null
echo "panamax: init reached"

# kernel_param NAME: prints the value of NAME=VALUE on the kernel command line with the quotes the
# kernel strips removed (a value may be "double quoted" to hold spaces); fails when NAME is absent.
kernel_param() {
    awk -v key="$1" '
    {
        s = $0; n = length(s); i = 1
        while (i <= n) {
            while (i <= n && substr(s, i, 1) ~ /[ \t]/) i++
            if (i > n) break
            tok = ""; q = 0
            for (; i <= n; i++) {
                c = substr(s, i, 1)
                if (c == "\"") q = !q
                else if (!q && c ~ /[ \t]/) break
                tok = tok c
            }
            if (substr(tok, 1, 1) == "\"") { tok = substr(tok, 2); if (substr(tok, length(tok)) == "\"") tok = substr(tok, 1, length(tok) - 1) }
            if (index(tok, key "=") != 1) continue
            val = substr(tok, length(key) + 2)
            if (substr(val, 1, 1) == "\"") { val = substr(val, 2); if (substr(val, length(val)) == "\"") val = substr(val, 1, length(val) - 1) }
            found = 1; last = val
        }
    }
    END { if (found) print last; exit !found }' /proc/cmdline
}

# share_is_valid TAG DIR: whether a panamax.shares entry is one this script mounts (see the header).
share_is_valid() {
    case $1 in ''|*[!A-Za-z0-9._-]*) return 1 ;; esac
    [ ${#1} -le 36 ] || return 1
    case $2 in /*) ;; *) return 1 ;; esac
    case $2 in *[!A-Za-z0-9._/-]*) return 1 ;; esac
    case $2 in *[!/]*) ;; *) return 1 ;; esac
    case $2/ in */./*|*/../*) return 1 ;; esac
    [ ${#2} -le 255 ]
}

# mount_shares LIST [ROOT]: mounts each TAG:DIR of the comma-separated LIST as virtiofs at ROOT/DIR,
# one line per failure.
mount_shares() {
    saved_ifs=$IFS
    IFS=,
    set -f
    for share in $1; do
        tag=${share%%:*}
        dir=${share#*:}
        if [ "$tag" = "$share" ] || ! share_is_valid "$tag" "$dir"; then
            echo "panamax: cannot mount share '$share': not TAG:DIR with the characters /init's header allows"
            continue
        fi
        if ! reason=$(mkdir -p "$2$dir" 2>&1 && mount -t virtiofs "$tag" "$2$dir" 2>&1); then
            reason=${reason##*: }
            echo "panamax: cannot mount share $tag at $dir: ${reason:-mount failed}"
        fi
    done
    set +f
    IFS=$saved_ifs
}

# Kernel modules: an initramfs that carries some (the rescue guest of `panamax image extract`) has them
# below /lib/modules and names in /etc/modules those to load now; busybox's modprobe, which the kernel
# also runs for what it loads on demand, finds them through the modules.dep depmod writes.
if [ -d /lib/modules ]; then
    depmod
    while read -r module; do
        modprobe "$module" || echo "panamax: cannot load kernel module $module"
    done < /etc/modules
fi

# host_root TAG: /host-root becomes the share TAG (read-only) under a tmpfs overlay, with the file
# systems a program expects mounted inside it; prints the failing step's error otherwise.
host_root() {
    mkdir -p /rootfs/lower /rootfs/rw /host-root &&
        mount -t virtiofs -o ro "$1" /rootfs/lower &&
        mount -t tmpfs -o mode=0755 rootfs-rw /rootfs/rw &&
        mkdir /rootfs/rw/upper /rootfs/rw/work &&
        mount -t overlay -o lowerdir=/rootfs/lower,upperdir=/rootfs/rw/upper,workdir=/rootfs/rw/work overlay /host-root &&
        mkdir -p /host-root/proc /host-root/sys /host-root/dev /host-root/tmp /host-root/run &&
        mount -t proc proc /host-root/proc &&
        mount -t sysfs sysfs /host-root/sys &&
        mount -t devtmpfs devtmpfs /host-root/dev &&
        mount -t tmpfs -o mode=1777 tmpfs /host-root/tmp &&
        mount -t tmpfs -o mode=0755 tmpfs /host-root/run
}

root=
if tag=$(kernel_param panamax.rootfs); then
    if reason=$(host_root "$tag" 2>&1); then
        root=/host-root
    else
        echo "panamax: cannot make the host's root directory (share $tag) the command's: ${reason:-a mount failed}"
        root=failed
    fi
fi

if shares=$(kernel_param panamax.shares) && [ "$root" != failed ]; then
    mount_shares "$shares" "$root"
fi

if [ "$root" = failed ]; then
    : # said above; exec reports the missing status
elif port=$(kernel_param panamax.exec); then
    # panamax exec: the agent receives the command from the host over vsock and reports its status there.
    /bin/panamax-agent vsock "$port" $root || echo "panamax: the exec agent failed (status $?)"
elif command=$(kernel_param panamax.run); then
    sh -c "$command"
    echo "panamax: exit status $?"
else
    echo "panamax: no panamax.run= on the kernel command line; starting a shell"
    setsid cttyhack sh
fi

# reboot: the VMM ends the VM at the reset, so the kernel need not stop its other CPUs first (an IPI,
# then an NMI, then a wait without end for a CPU that does not answer). Under nested virtualization
# (the rig) a second vCPU has triple-faulted at that point. /sys/kernel/reboot/force (Linux 5.11) skips
# it; an older kernel reboots as before. Not for poweroff: with no ACPI that halts, and the other
# CPUs must halt too.
reboot_now() {
    echo 1 2>/dev/null > /sys/kernel/reboot/force
    reboot -f
}
action=$(kernel_param panamax.exit) || action=reboot
case $action in
    poweroff) poweroff -f ;;
    reboot) reboot_now ;;
    *) echo "panamax: unknown panamax.exit=$action (reboot or poweroff); rebooting"; reboot_now ;;
esac
