package dev.panamax.it;

import dev.panamax.rig.Rig;

/** Run in a child JVM by {@link RigLifetimeTest}: starts a rig, says QEMU's pid, and waits to be killed. */
public final class RigHolder {
    private RigHolder() {}

    public static void main(String[] args) throws InterruptedException {
        Rig rig = Rig.start();
        System.out.println("qemu-pid " + rig.qemuPid());
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
