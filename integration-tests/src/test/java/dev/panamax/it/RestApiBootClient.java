package dev.panamax.it;

import dev.panamax.cli.Panamax;
import dev.panamax.control.ApiClient;
import dev.panamax.control.Json;
import dev.panamax.guest.GuestImages;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * Run where real KVM is by {@link ControlPlaneBootTest}: starts {@code panamax serve} in this JVM
 * and drives it as a Firecracker client would, over the Unix socket with the JDK's own channel:
 * the pre-boot resources, InstanceStart, 50 concurrent reads while the guest boots, pause,
 * resume and Ctrl-Alt-Del. Prints what it saw as "api: " lines.
 */
public final class RestApiBootClient {
    private static final String GUEST_LOOP = "while :; do echo tick; sleep 0.5; done";

    private RestApiBootClient() {}

    public static void main(String[] args) throws Exception {
        Path dir = Files.createTempDirectory("panamax-api-");
        Path socket = dir.resolve("api.sock");
        Path console = dir.resolve("console.log");
        CompletableFuture<Integer> serve = CompletableFuture.supplyAsync(
                () -> Panamax.execute("serve", "--api-sock", socket.toString(), "--console", "file:" + console));
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        while (!Files.exists(socket) && !serve.isDone() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        ApiClient api = new ApiClient(socket);
        say("before-start", api.send("GET", "/", null));
        say("boot-source", api.send("PUT", "/boot-source", "{\"kernel_image_path\": " + Json.quote(args[0])
                + ", \"initrd_path\": " + Json.quote(args[1]) + ", \"boot_args\": " + Json.quote("quiet panamax.run=\"" + GUEST_LOOP + "\"")
                + "}"));
        say("machine-config", api.send("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}"));
        say("start", api.send("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"));

        // While the kernel boots: 50 readers at once, each on its own connection.
        List<String> paths = List.of("/", "/metrics", "/vm/config", "/machine-config", "/version");
        ExecutorService readers = Executors.newFixedThreadPool(50);
        List<Callable<Integer>> reads = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            String path = paths.get(i % paths.size());
            reads.add(() -> api.send("GET", path, null).status());
        }
        List<Integer> statuses = new ArrayList<>();
        for (Future<Integer> f : readers.invokeAll(reads)) {
            statuses.add(f.get());
        }
        readers.shutdown();
        System.out.println("api: concurrent-statuses " + statuses);

        awaitConsole(console, "\ntick", Duration.ofSeconds(180)); // a line of the loop, not the command line
        say("pause", api.send("PATCH", "/vm", "{\"state\": \"Paused\"}"));
        say("while-paused", api.send("GET", "/", null));
        say("resume", api.send("PATCH", "/vm", "{\"state\": \"Resumed\"}"));
        say("while-running", api.send("GET", "/", null));
        say("too-late", api.send("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}"));
        say("vm-config", api.send("GET", "/vm/config", null));
        say("metrics", api.send("GET", "/metrics", null));
        say("ctrl-alt-del", api.send("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}"));
        System.out.println("api: serve-exit-status " + serve.get(120, TimeUnit.SECONDS));
        System.out.println("api: socket-left " + Files.exists(socket));
        System.out.println("api: console-has-init-marker " + Files.readString(console).contains(GuestImages.INIT_MARKER));
    }

    private static void awaitConsole(Path console, String text, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (Files.exists(console) && Files.readString(console).contains(text)) {
                return;
            }
            Thread.sleep(100);
        }
        System.out.println("api: console-never-showed " + text);
    }

    private static void say(String step, ApiClient.Response r) {
        System.out.println("api: " + step + " " + r.status() + " " + r.body());
        System.out.flush();
    }

    /** For the test: a step's answer body parsed, from the output of this program. */
    @SuppressWarnings("unchecked") // a JSON object parses to a Map<String, Object>
    static Map<String, Object> body(String output, String step) {
        for (String line : output.split("\n")) {
            String prefix = "api: " + step + " ";
            if (line.startsWith(prefix)) {
                String rest = line.substring(prefix.length()).strip();
                return (Map<String, Object>) Json.parse(rest.substring(rest.indexOf(' ') + 1), step);
            }
        }
        throw new AssertionError("no step " + step + " in the output");
    }
}
