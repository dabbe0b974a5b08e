package dev.panamax.cli;

import dev.panamax.sys.Credentials;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Run in a JVM of its own by {@link PrivilegeDropTest} (as root): starts threads, gives up its privileges through
 * {@link PrivilegeDrop}, starts another thread, and prints what every thread then has, one line each, and what a process
 * that a thread started before the drop spawns has.
 */
public final class PrivilegeDropProbe {
    public static void main(String[] args) throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        CountDownLatch spawn = new CountDownLatch(1);
        AtomicReference<String> child = new AtomicReference<>();
        List<Thread> before = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            int n = i;
            before.add(Thread.ofPlatform().daemon().name("before-" + i).start(() -> {
                try {
                    if (n == 0) { // a thread from before the drop spawns a process after it, as the JVM does from the asking thread
                        spawn.await();
                        Process p = new ProcessBuilder("grep", "-E", "^(Uid|Gid|Groups|NoNewPrivs|CapEff):", "/proc/self/status")
                                .redirectErrorStream(true).start();
                        child.set(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
                        p.waitFor();
                    }
                    release.await();
                } catch (InterruptedException | IOException e) {
                    child.set("failed: " + e);
                }
            }));
        }
        PrivilegeDrop drop = PrivilegeDrop.parse(args[0], args[1]);
        drop.prepare();
        drop.apply();
        Thread after = Thread.ofPlatform().daemon().name("after").start(() -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        spawn.countDown();
        while (child.get() == null) {
            Thread.sleep(10);
        }
        for (Credentials.ThreadCredentials t : Credentials.threads()) {
            System.out.println("THREAD " + t.name() + " uids=" + t.uids() + " gids=" + t.gids() + " groups=" + t.groups() + " nnp="
                    + t.noNewPrivs() + " capeff=" + t.capabilitiesEffective() + " capprm=" + t.capabilitiesPermitted());
        }
        System.out.println("CHILD " + child.get().replace('\n', ' ').replace('\t', ' '));
        try {
            PrivilegeDrop.parse("0".equals(args[0]) ? "1" : "1000", "1000").prepare();
            System.out.println("OTHER-USER allowed");
        } catch (PrivilegeDrop.Refused e) {
            System.out.println("OTHER-USER refused: " + e.getMessage());
        }
        drop.prepare(); // staying the same user is allowed to anyone
        drop.apply(); // and then sets only no_new_privs, again
        System.out.println("SAME-USER again");
        release.countDown();
        after.join();
        for (Thread t : before) {
            t.join();
        }
    }
}
