package dev.panamax.it;

import dev.panamax.api.VirtualMachine;
import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Run where real KVM is by {@link ControlPlaneBootTest}: boots the tiny guest through the Java API,
 * whose /init prints the guest's clock (/proc/uptime) twice a second; pauses it for a while, resumes
 * it, and shuts it down with Ctrl-Alt-Del. Prints what it saw as "embedding: " lines.
 */
public final class EmbeddingApiGuest {
    static final Duration PAUSE = Duration.ofSeconds(6);
    private static final String TICKS = "while :; do read up idle < /proc/uptime; echo tick $up; sleep 0.5; done";

    private EmbeddingApiGuest() {}

    public static void main(String[] args) throws InterruptedException {
        BlockingQueue<Double> ticks = new LinkedBlockingQueue<>();
        AtomicReference<Double> lastTick = new AtomicReference<>();
        AtomicLong streamed = new AtomicLong();
        OutputStream console = new OutputStream() {
            @Override
            public void write(int b) {
                streamed.incrementAndGet();
            }

            @Override
            public void write(byte[] b, int off, int len) {
                streamed.addAndGet(len);
                System.out.write(b, off, len);
            }
        };
        try (VirtualMachine vm = VirtualMachine.builder().kernel(Path.of(args[0])).initrd(Path.of(args[1]))
                .commandLine("quiet panamax.run=\"" + TICKS + "\"").cpus(2).memoryMib(256).console(console).build()) {
            vm.addConsoleLineListener(line -> {
                if (line.startsWith("tick ")) {
                    lastTick.set(Double.parseDouble(line.substring(5)));
                    ticks.add(lastTick.get());
                }
            });
            vm.start();
            for (int i = 0; i < 3; i++) { // the guest's shell runs its loop
                if (ticks.poll(180, TimeUnit.SECONDS) == null) {
                    say("no-ticks");
                    return;
                }
            }

            vm.pause(); // the console's lines come from the vCPUs: none after this until resume()
            say("state-when-paused " + vm.state());
            double beforePause = lastTick.get();
            ticks.clear();
            Thread.sleep(PAUSE.toMillis());
            say("ticks-while-paused " + ticks.size());
            vm.resume();
            say("state-when-resumed " + vm.state());
            Double afterPause = ticks.poll(60, TimeUnit.SECONDS);
            say(afterPause == null ? "no-ticks-after-resume" : String.format("guest-seconds-across-pause %.2f", afterPause - beforePause));

            say("shutdown-accepted " + vm.shutdown());
            VirtualMachine.Exit exit = vm.awaitExit(Duration.ofSeconds(120)).orElse(null);
            say("exit " + (exit == null ? "none" : exit.reason() + " clean=" + exit.clean()));
            say("console-bytes streamed=" + streamed.get() + " counted=" + vm.consoleOutputBytes());
            say("vcpu-exits " + vm.vcpuExits());
        }
    }

    private static void say(String fact) {
        System.out.println("embedding: " + fact);
        System.out.flush();
    }
}
