package dev.panamax.it;

import static dev.panamax.it.PanamaxBootTest.tinyGuest;
import static dev.panamax.it.ScriptOutput.fact;
import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.Panamax;
import dev.panamax.guest.GuestImages;
import dev.panamax.junit.PanamaxTest;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.RunResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The tiny guest's Linux mounts two host folders through Panamax's in-process virtio-fs, where real
 * KVM is (the rig here): it checksums a read-only tree of 1,000 files to the host's own sum and is
 * refused every change there; it writes, renames and links in a read-write share and the host finds
 * the result; and its attempts to reach a host file beside the shares (absolute and relative
 * symbolic links the host put in the share, a directory swapped for a symbolic link while the guest
 * writes into it, a hard link across shares) all fail, the file and its directory untouched.
 */
@PanamaxTest
@Timeout(900)
class SharedFoldersRigTest {
    private static final int FILES = 1000;

    @Test
    void aGuestReadsWritesAndCannotLeaveItsShares(RealKvm kvm) {
        // Everything on the rig's side, in its own memory (/tmp): DIR/ro (the tree), DIR/rw, and
        // DIR/outside/secret.txt, which no share contains. $d is the shell's, expanded before the guest
        // sees its script (no double quotes in it: the kernel's command line would end panamax.run's value).
        String guest = String.join(" ",
                "for t in ro rw; do mkdir -p /mnt/$t; grep -q ' /mnt/'$t' ' /proc/mounts || mount -t virtiofs $t /mnt/$t || echo mount-$t-failed; done;",
                "cd /mnt/ro/tree; echo guest-files=$(find . -type f | wc -l);",
                "echo guest-tree-sha=$(find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-64); cd /;",
                "echo x > /mnt/ro/new; echo ro-write-status=$?; mkdir /mnt/ro/newdir; echo ro-mkdir-status=$?;",
                "rm /mnt/ro/tree/d0/f0; echo ro-rm-status=$?;",
                "echo hello-from-guest > /mnt/rw/new.txt && mkdir /mnt/rw/sub && mv /mnt/rw/new.txt /mnt/rw/sub/moved.txt",
                "&& ln /mnt/rw/sub/moved.txt /mnt/rw/hard.txt && ln -s sub/moved.txt /mnt/rw/soft.txt; echo rw-status=$?;",
                "head -c 3000000 /dev/urandom > /mnt/rw/big; echo guest-big-sha=$(sha256sum < /mnt/rw/big | cut -c1-64);",
                "cat /mnt/rw/link-abs; echo link-abs-status=$?;",
                "echo pwned > /mnt/rw/link-rel; echo link-rel-status=$?;",
                "echo pwned > /mnt/rw/out-dir/secret.txt; echo out-dir-status=$?;",
                "cat /mnt/rw/../outside/secret.txt; echo dotdot-status=$?;",
                "ln /mnt/ro/tree/d1/f1 /mnt/rw/across; echo hard-across-status=$?;",
                // The race: the directory the writer writes into is now and then a symbolic link to the
                // host's outside directory; a server that followed it on the host would write there.
                "( i=0; while [ $i -lt 200 ]; do mv /mnt/rw/dir /mnt/rw/dir.away; ln -s $d/outside /mnt/rw/dir;",
                "rm /mnt/rw/dir; mv /mnt/rw/dir.away /mnt/rw/dir; i=$((i+1)); done ) &",
                "j=0; while [ $j -lt 400 ]; do echo pwned > /mnt/rw/dir/f$j; j=$((j+1)); done 2>/dev/null; wait; echo race-done;",
                "sync; echo guest-done");
        List<String> args = new ArrayList<>(List.of("run", "--no-rig", "--timeout", "600", "--memory", "256M",
                "--share", "$d/ro,tag=ro,readonly", "--share", "$d/rw,tag=rw"));
        args.addAll(List.of(tinyGuest(GuestImages.defaultVmlinux(), "--cmdline", "quiet panamax.run=\"" + guest + "\"")));
        String run = kvm.javaCommand(Panamax.class.getName(), args).stream().map(SharedFoldersRigTest::quoteExceptShareDir).collect(Collectors.joining(" "));
        String script = String.join("\n",
                "d=$(mktemp -d /tmp/pnx-share.XXXXXX); trap 'rm -rf $d' EXIT",
                "mkdir -p $d/ro/tree $d/rw/dir $d/outside",
                "python3 - $d <<'PY'",
                "import os, sys",
                "for n in range(" + FILES + "):",
                "    p = '%s/ro/tree/d%d' % (sys.argv[1], n % 10)",
                "    os.makedirs(p, exist_ok=True)",
                "    open('%s/f%d' % (p, n), 'wb').write(os.urandom(1 + n * 37 % 5000))",
                "PY",
                "echo secret > $d/outside/secret.txt",
                "ln -s $d/outside/secret.txt $d/rw/link-abs; ln -s ../outside/secret.txt $d/rw/link-rel; ln -s $d/outside $d/rw/out-dir",
                "echo host-tree-sha=$(cd $d/ro/tree && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)",
                run + " > $d/console 2>&1; echo vm-status=$?",
                "sed 's/^/guest: /' $d/console",
                "echo host-secret=$(cat $d/outside/secret.txt) host-outside-entries=$(ls -A $d/outside | wc -l)",
                "echo host-ro-entries=$(ls -A $d/ro | wc -l) host-ro-f0=$(test -f $d/ro/tree/d0/f0 && echo kept)",
                "echo host-moved=$(cat $d/rw/sub/moved.txt) host-links=$(stat -c %h $d/rw/hard.txt) host-soft=$(readlink $d/rw/soft.txt)",
                "echo host-big-sha=$(sha256sum < $d/rw/big | cut -c1-64) host-dir=$(test -d $d/rw/dir && test ! -L $d/rw/dir && echo directory)");

        RunResult r = kvm.run(List.of("sh", "-c", script), Duration.ofSeconds(800), System.out);

        String out = r.output();
        assertThat(r.timedOut()).as(out).isFalse();
        assertThat(out).doesNotContain("mount-ro-failed", "mount-rw-failed").contains("guest: guest-done", "vm-status=0");
        assertThat(fact(out, "guest: guest-files=(\\d+)")).as("files the guest found in the read-only tree").isEqualTo(String.valueOf(FILES));
        assertThat(fact(out, "guest: guest-tree-sha=([0-9a-f]{64})")).as("the tree's checksum in the guest")
                .isEqualTo(fact(out, "host-tree-sha=([0-9a-f]{64})"));
        for (String refused : List.of("ro-write", "ro-mkdir", "ro-rm")) {
            assertThat(fact(out, "guest: " + refused + "-status=(\\d+)")).as(refused + " in the read-only share").isNotEqualTo("0");
        }
        assertThat(out).as("the read-only share is as the host made it").contains("host-ro-entries=1 host-ro-f0=kept");
        assertThat(fact(out, "guest: rw-status=(\\d+)")).as("writing, renaming and linking in the read-write share").isEqualTo("0");
        assertThat(out).contains("host-moved=hello-from-guest host-links=2 host-soft=sub/moved.txt");
        assertThat(fact(out, "host-big-sha=([0-9a-f]{64})")).as("3 MB the guest wrote, on the host")
                .isEqualTo(fact(out, "guest: guest-big-sha=([0-9a-f]{64})"));
        for (String escape : List.of("link-abs", "link-rel", "out-dir", "dotdot", "hard-across")) {
            assertThat(fact(out, "guest: " + escape + "-status=(\\d+)")).as(escape + ": reaching outside the shares").isNotEqualTo("0");
        }
        assertThat(out).contains("guest: race-done", "host-dir=directory");
        assertThat(out).as("the file beside the shares, and its directory, untouched").contains("host-secret=secret host-outside-entries=1");
        assertThat(out).doesNotContain("guest: secret");
        assertThat(r.exitStatus()).isZero();
    }

    /** Single-quotes a word for sh, except {@code $d}, the share directory's variable, which the shell expands. */
    private static String quoteExceptShareDir(String word) {
        return RealKvm.shellQuote(word).replace("$d", "'\"$d\"'");
    }
}
