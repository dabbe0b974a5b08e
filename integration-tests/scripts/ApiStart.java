import dev.panamax.api.VirtualMachine;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * What an embedder sees: in this one running JVM, the tiny guest built and started through the Java API
 * ({@code VirtualMachine.builder()...build()} and {@code start()}), timed from before {@code build()} to
 * the guest's /init marker on its console; against QEMU (-M microvm, as boot-vs-qemu.sh runs it) started
 * from this JVM as a process, timed from its start to the same marker on its serial output. Same kernel,
 * initramfs, command line, memory and vCPUs; WARM untimed boots of Panamax first (an embedder's JVM
 * has booted before), then ROUNDS rounds alternating which goes first; prints each round, the medians
 * and the ratio. Run by api-start-vs-qemu.sh where real KVM is.
 *
 * <p>Usage: java -cp CLI-CLASSPATH ApiStart.java KERNEL INITRD [ROUNDS] [WARM]
 */
public final class ApiStart {
    private static final String MARKER = "panamax: init reached";
    private static final String COMMAND = "quiet panamax.run=\"true\"";

    public static void main(String[] args) throws Exception {
        Path kernel = Path.of(args[0]);
        Path initrd = Path.of(args[1]);
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 9;
        int warm = args.length > 3 ? Integer.parseInt(args[3]) : 3;
        for (int i = 1; i <= warm; i++) {
            System.out.println("warm-up " + i + ": Panamax " + panamaxMs(kernel, initrd) + " ms");
        }
        List<Long> panamax = new ArrayList<>();
        List<Long> qemu = new ArrayList<>();
        for (int i = 1; i <= rounds; i++) {
            long p;
            long q;
            if (i % 2 == 1) {
                p = panamaxMs(kernel, initrd);
                q = qemuMs(kernel, initrd);
            } else {
                q = qemuMs(kernel, initrd);
                p = panamaxMs(kernel, initrd);
            }
            panamax.add(p);
            qemu.add(q);
            System.out.println("round " + i + ": Panamax start() " + p + " ms, QEMU process " + q + " ms");
        }
        long pm = median(panamax);
        long qm = median(qemu);
        System.out.printf("median of %d: Panamax start() %d ms, QEMU process %d ms, ratio Panamax/QEMU %.2f%n", rounds, pm, qm,
                (double) pm / qm);
    }

    /** Builds and starts the guest through the API; the ms from before build() to the marker. */
    private static long panamaxMs(Path kernel, Path initrd) throws Exception {
        CountDownLatch reached = new CountDownLatch(1);
        long[] at = new long[1];
        long start = System.nanoTime();
        try (VirtualMachine vm = VirtualMachine.builder().kernel(kernel).initrd(initrd).commandLine(COMMAND).cpus(1).memoryMib(256)
                .console(OutputStream.nullOutputStream()).build()) {
            vm.addConsoleLineListener(line -> {
                if (line.contains(MARKER) && reached.getCount() > 0) {
                    at[0] = System.nanoTime();
                    reached.countDown();
                }
            });
            vm.start();
            if (!reached.await(300, TimeUnit.SECONDS)) throw new IllegalStateException("Panamax's guest never printed " + MARKER);
            VirtualMachine.Exit exit = vm.awaitExit(Duration.ofSeconds(120))
                    .orElseThrow(() -> new IllegalStateException("Panamax's guest did not end after " + MARKER));
            if (!exit.clean()) throw new IllegalStateException("Panamax's guest ended so: " + exit);
        }
        return (at[0] - start) / 1_000_000;
    }

    /** Starts QEMU on the guest; the ms from its start to the marker on its serial output. */
    private static long qemuMs(Path kernel, Path initrd) throws Exception {
        long start = System.nanoTime();
        Process p = new ProcessBuilder("qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "microvm,rtc=on", "-device", "i8042",
                "-m", "256", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
                "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                "-append", VirtualMachine.BASE_COMMAND_LINE + " " + COMMAND).redirectErrorStream(true).start();
        // A guest that never ends would leave the read below waiting for ever: bounded as Panamax's boot is.
        CompletableFuture.delayedExecutor(300, TimeUnit.SECONDS).execute(p::destroyForcibly);
        long at = -1;
        try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = out.readLine()) != null; ) {
                if (at < 0 && line.contains(MARKER)) at = System.nanoTime();
            }
        }
        if (!p.waitFor(120, TimeUnit.SECONDS)) p.destroyForcibly();
        if (at < 0) throw new IllegalStateException("QEMU's guest never printed " + MARKER + " (status " + p.waitFor() + ")");
        return (at - start) / 1_000_000;
    }

    private static long median(List<Long> values) {
        List<Long> sorted = values.stream().sorted().toList();
        return sorted.get((sorted.size() - 1) / 2);
    }
}
