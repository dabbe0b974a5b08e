# The rescue guest's half of `panamax image extract`, run as root by panamax exec's agent:
#   sh -c SCRIPT extract list|copy PARTITION PATH...
# Mounts the image (/dev/vda; its partition PARTITION when that is not empty) read-only and lists each
# PATH's tree (list) or copies each PATH into the shared folder at /mnt/out (copy). With PARTITION empty
# it takes the whole disk when there is no partition table, else the one partition with a file system
# this guest reads. The host has checked each PATH: absolute, without . or .. parts.
# Status: 0 all done; 1 some PATH was missing or not read or copied whole (each said on stderr); 2 none
# done: no such partition, no file system this guest reads.
mode=$1
part=$2
shift 2

say() { echo "panamax: $*" >&2; }

# try_mount DEVICE DIR: mounts DEVICE at DIR read-only with the first file system that takes it and
# prints that file system's name. Nothing is written to the image: the disk is read-only, and journals
# and logs that would need replaying are left as they are.
try_mount() {
    for type in ext4 xfs btrfs vfat exfat ntfs3; do
        case $type in
            ext4) options=ro,noload ;;
            xfs) options=ro,norecovery ;;
            btrfs) options=ro,rescue=nologreplay ;;
            vfat|exfat) options=ro,iocharset=utf8 ;;
            *) options=ro ;;
        esac
        modprobe -q $type 2>/dev/null
        if mount -t $type -o $options "$1" "$2" 2>/dev/null; then
            echo $type
            return 0
        fi
    done
    return 1
}

# The partitions of the disk, one "NUMBER SIZE_IN_BYTES" line each.
partitions() {
    for p in /sys/block/vda/vda*; do
        [ -e "$p/partition" ] && echo "$(cat "$p/partition") $(($(cat "$p/size") * 512))"
    done | sort -n
}

if [ ! -b /dev/vda ]; then
    say "the image did not appear as a disk in the rescue guest"
    exit 2
fi
mkdir -p /mnt/image
found=$(partitions)
if [ -n "$part" ]; then
    if [ ! -b "/dev/vda$part" ]; then
        if [ -z "$found" ]; then
            say "the image has no partition table, so no partition $part: leave PARTITION out to read the whole disk"
        else
            say "the image has no partition $part; its partitions are $(echo "$found" | awk '{ printf "%s%s (%d bytes)", NR > 1 ? ", " : "", $1, $2 }')"
        fi
        exit 2
    fi
    if ! type=$(try_mount "/dev/vda$part" /mnt/image); then
        say "partition $part holds no file system the rescue guest reads (ext4, ext3, ext2, xfs, btrfs, vfat, exfat, ntfs3)"
        exit 2
    fi
elif [ -z "$found" ]; then
    if ! type=$(try_mount /dev/vda /mnt/image); then
        say "the image has neither a partition table nor a file system the rescue guest reads (ext4, ext3, ext2, xfs, btrfs, vfat, exfat, ntfs3)"
        exit 2
    fi
else
    # Each partition is tried; exactly one with a file system is taken, else the user names one.
    readable=""
    described=""
    for n in $(echo "$found" | awk '{ print $1 }'); do
        mkdir -p "/mnt/probe$n"
        if t=$(try_mount "/dev/vda$n" "/mnt/probe$n"); then
            umount "/mnt/probe$n"
            readable="$readable $n"
            described="$described, $n ($t)"
        else
            described="$described, $n (no file system the rescue guest reads)"
        fi
    done
    count=$(echo $readable | wc -w)
    if [ "$count" -ne 1 ]; then
        say "the image has partitions ${described#, }: name the one to read after IMAGE"
        exit 2
    fi
    part=${readable# }
    type=$(try_mount "/dev/vda$part" /mnt/image) || exit 2
fi
say "reading ${part:+partition $part, }$type"

cd /mnt/image || exit 2
status=0
for path in "$@"; do
    if [ ! -e ".$path" ] && [ ! -L ".$path" ]; then
        say "$path: not in the image"
        status=1
        continue
    fi
    case $mode in
        list)
            # mode, size and path of each entry; stat's %n is the path as find gave it, ./ first
            find ".$path" -exec stat -c '%A %s %n' {} + 2>/tmp/errors | sed 's#^\([^ ]* [^ ]*\) \.\(/\)*#\1 /#' || status=1
            ;;
        copy)
            if [ "$path" = / ]; then source=./.; else source=.$path; fi
            # -f: what DEST has under the same names (an earlier run's, or one a rig died under) is replaced;
            # without it busybox's cp refuses to make a symbolic link where one is ("File exists").
            if ! cp -a -f "$source" /mnt/out/ 2>/tmp/errors; then
                status=1
                # cp names no file when reading one fails (a damaged image): those that came out short are named here.
                parent=${path%/*}
                if [ "$path" = / ]; then source=.; fi
                find "$source" -type f -exec stat -c '%s %n' {} + 2>/dev/null | while read -r size name; do
                    copied=$(stat -c %s "/mnt/out/${name#.$parent/}" 2>/dev/null)
                    [ "$copied" = "$size" ] || say "${name#.}: not copied whole (${copied:-0} of $size bytes)"
                done
            fi
            ;;
    esac
    # The host user may not own files as the image's owners: that is said once, below, not per file.
    if grep -q "can't preserve ownership" /tmp/errors; then
        owners=1
    fi
    grep -v "can't preserve ownership" /tmp/errors | sed "s#'\./#'/#g; s#/mnt/out/#DEST/#g" >&2
    if grep -v "can't preserve ownership" /tmp/errors | grep -q .; then
        status=1
    fi
done
[ -n "$owners" ] && say "the files belong to the user Panamax runs as: it may not give them the owners they have in the image"
exit $status
