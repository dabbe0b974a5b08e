package dev.panamax.cli;

import dev.panamax.demo.KvmAcceleration;
import dev.panamax.guest.DebianPackages;
import dev.panamax.guest.PanamaxCache;
import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.KvmUnavailableException;
import dev.panamax.sys.NativeCallException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;

/** {@code panamax doctor}: what this host offers Panamax, and the command that installs what is missing. */
@Command(name = "doctor", mixinStandardHelpOptions = true,
        description = "Report the JDK, KVM and its acceleration, and the Debian packages and caches Panamax uses, with the command that installs anything missing.")
final class DoctorCommand implements Callable<Integer> {

    /** A Debian package Panamax uses, and for what. */
    private record Ingredient(String pkg, String purpose, boolean required) {}

    private static final List<Ingredient> INGREDIENTS = List.of(
            new Ingredient("binutils", "assembles the demo guests (build)", true),
            new Ingredient("gcc", "the ABI tests and the C baseline of 'bench exits'", true),
            new Ingredient("qemu-system-x86", "the nested KVM rig, and the peer VMM of benchmarks", false),
            new Ingredient("util-linux", "setpriv, which ties the rig's life to Panamax's", false),
            new Ingredient("busybox-static", "the init of the tiny guest and of the rig", false),
            new Ingredient("qemu-utils", "qemu-img, for disk image interoperability tests", false),
            new Ingredient("passt", "user-mode networking for --net user", false));

    private int problems;

    @Override
    public Integer call() {
        report("JDK", true, Runtime.version() + " at " + System.getProperty("java.home"), null);
        checkKvm();
        for (Ingredient i : INGREDIENTS) {
            String version = DebianPackages.installedVersion(i.pkg());
            report(i.pkg(), version != null, version != null ? version + ": " + i.purpose() : "missing: " + i.purpose(),
                    version != null ? null : "apt-get install " + i.pkg(), i.required());
        }
        report("guest kernel", true, cached("kernels"), null);
        report("rig images", true, cached("rig"), null);
        return problems == 0 ? 0 : 1;
    }

    private void checkKvm() {
        try (Kvm kvm = Kvm.open()) {
            report("/dev/kvm", true, "KVM API " + kvm.apiVersion() + ", up to "
                    + kvm.checkExtension(Kvm.Capability.MAX_VCPUS) + " vCPUs per VM", null);
        } catch (KvmUnavailableException | NativeCallException e) {
            report("/dev/kvm", false, e.getMessage(), null);
            return;
        }
        KvmAcceleration a = KvmAcceleration.detect();
        report("acceleration", true, a.detail() + (a.hardware() ? "" : "; Linux guests boot in the nested KVM rig"), null);
    }

    private static String cached(String kind) {
        Path dir = PanamaxCache.root().resolve(kind);
        try (Stream<Path> entries = Files.isDirectory(dir) ? Files.list(dir) : Stream.empty()) {
            List<String> names = entries.filter(Files::isDirectory).map(p -> p.getFileName().toString()).sorted().toList();
            return names.isEmpty() ? "not built yet (built on first use, under " + dir + ")" : dir + ": " + String.join(", ", names);
        } catch (IOException e) {
            return "cannot list " + dir + ": " + e.getMessage();
        }
    }

    private void report(String what, boolean ok, String detail, String fix) {
        report(what, ok, detail, fix, true);
    }

    private void report(String what, boolean ok, String detail, String fix, boolean required) {
        String mark = ok ? "ok" : required ? "MISSING" : "missing";
        System.out.printf("%-16s %-8s %s%n", what, mark, detail);
        if (fix != null) {
            System.out.printf("%-16s %-8s install with: %s%n", "", "", fix);
        }
        if (!ok && required) {
            problems++;
        }
    }
}
