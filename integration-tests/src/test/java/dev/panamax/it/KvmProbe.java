package dev.panamax.it;

import java.nio.file.Files;
import java.nio.file.Path;

/** A main that {@code RealKvm.runJava} starts where real KVM is: it reports what it finds there. */
public final class KvmProbe {
    private KvmProbe() {}

    public static void main(String[] args) throws Exception {
        Path kvm = Path.of("/dev/kvm");
        boolean chr = Files.exists(kvm) && Files.getAttribute(kvm, "unix:mode") instanceof Integer m && (m & 0170000) == 0020000;
        System.out.println("probe " + String.join(" ", args) + ": /dev/kvm is " + (chr ? "a character device" : "missing")
                + ", java " + Runtime.version().feature());
    }
}
