package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import dev.panamax.cli.common.UserError;
import dev.panamax.control.ApiFault;
import dev.panamax.control.ApiServer;
import dev.panamax.control.ControlPlane;
import dev.panamax.control.Json;
import dev.panamax.control.LoggerConfig;
import dev.panamax.control.VmConfig;
import dev.panamax.demo.KvmAcceleration;
import dev.panamax.vmm.ConfigException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.BiConsumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code panamax firecracker ARGS}, also what {@code panamax} runs when started under the name
 * {@code firecracker}: Firecracker's process arguments with their meaning, so that a tool that
 * starts Firecracker's binary starts Panamax. The flags Panamax has no equivalent for are refused
 * with a sentence (status 2, as every usage error), never ignored.
 */
@Command(name = "firecracker", sortOptions = false, description = {
    "Firecracker's command line: serves Firecracker's API on --api-sock (default " + FirecrackerCommand.DEFAULT_API_SOCK + ")"
            + " and boots the VM its client configures at InstanceStart, or at once the VM --config-file describes;"
            + " with --no-api, only the config file's VM. Ends with the VM: 0 for a reboot or power-off, 1 for a failure.",
    "Also run when Panamax is started under the name firecracker (a symlink firecracker -> panamax)."})
final class FirecrackerCommand implements Callable<Integer> {
    /** Firecracker's default socket. */
    static final String DEFAULT_API_SOCK = "/run/firecracker.socket";
    /** Firecracker's default request body limit, the one Panamax's API has. */
    static final long DEFAULT_MAX_PAYLOAD = ApiServer.MAX_BODY_BYTES;
    private static final System.Logger LOG = System.getLogger(FirecrackerCommand.class.getName());

    @Option(names = "--api-sock", paramLabel = "PATH", defaultValue = DEFAULT_API_SOCK,
            description = "the Unix socket of the API, which must not exist yet (default: ${DEFAULT-VALUE})")
    Path apiSocket;

    @Option(names = "--config-file", paramLabel = "FILE",
            description = "the VM in Firecracker's JSON (boot-source, machine-config, drives, network-interfaces, vsock, logger);"
                    + " it boots at once")
    Path configFile;

    @Option(names = "--no-api", description = "no API socket: the VM comes from --config-file only")
    boolean noApi;

    @Option(names = "--id", paramLabel = "ID", defaultValue = ControlPlane.INSTANCE_ID,
            description = "the instance's id, in GET / and in log lines: 1 to 64 letters, digits or hyphens (default: ${DEFAULT-VALUE})")
    String id;

    @Option(names = "--level", paramLabel = "LEVEL", description = "the log's level: Off, Error, Warning, Info, Debug or Trace (default Info)")
    String level;

    @Option(names = "--log-path", paramLabel = "PATH", description = "a file (appended to) or named pipe for the log (default: standard error)")
    String logPath;

    @Option(names = "--module", paramLabel = "PREFIX", description = "log only from loggers whose name starts with PREFIX (Java class names)")
    String module;

    @Option(names = "--show-level", description = "log lines name their level")
    boolean showLevel;

    @Option(names = "--show-log-origin", description = "log lines name the class and method that logged them")
    boolean showLogOrigin;

    @Option(names = "--metrics-path", paramLabel = "PATH", description = "a file or named pipe for Firecracker's metrics (PUT /metrics)")
    String metricsPath;

    @Option(names = "--boot-timer", description = "log the time the guest took to reach user space (Panamax's boot timer, port 0x440)")
    boolean bootTimer;

    @Option(names = "--version", description = "print Panamax's version (Panamax vX.Y.Z, then an empty line) and end")
    boolean version;

    @Option(names = "--http-api-max-payload-size", paramLabel = "BYTES", defaultValue = "" + DEFAULT_MAX_PAYLOAD,
            description = "the largest request body: only ${DEFAULT-VALUE}, the limit Panamax's API has")
    long maxPayload;

    @Option(names = "--enable-pci", description = "virtio devices on PCI: accepted, Panamax's are on PCI already")
    boolean enablePci;

    @Option(names = "--no-seccomp", description = "no seccomp filters on the vCPU and device I/O threads (on by default)")
    boolean noSeccomp;

    // Firecracker's flags without an equivalent here, parsed so as to refuse them by name (REFUSED says why).
    @Option(names = "--seccomp-filter", paramLabel = "FILE", description = "refused") String seccompFilter;
    @Option(names = "--start-time-us", paramLabel = "US", description = "refused") String startTimeUs;
    @Option(names = "--start-time-cpu-us", paramLabel = "US", description = "refused") String startTimeCpuUs;
    @Option(names = "--parent-cpu-time-us", paramLabel = "US", description = "refused") String parentCpuTimeUs;
    @Option(names = "--metadata", paramLabel = "FILE", description = "refused") String metadata;
    @Option(names = "--mmds-size-limit", paramLabel = "BYTES", description = "refused") String mmdsSizeLimit;
    @Option(names = "--snapshot-version", description = "refused") boolean snapshotVersion;
    @Option(names = "--describe-snapshot", paramLabel = "FILE", description = "refused") String describeSnapshot;

    @Mixin
    ConsoleOption console;

    @Option(names = {"-h", "--help"}, usageHelp = true, description = "print this help and end")
    boolean help;

    @Spec
    CommandSpec spec;

    /** Each Firecracker flag Panamax refuses, with the reason its refusal gives. */
    static final Map<String, String> REFUSED = refused();

    private static Map<String, String> refused() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("--seccomp-filter", "Panamax builds its filters in Java, one per kind of thread, and takes no compiled BPF file:"
                + " a Firecracker filter names Firecracker's threads and the system calls of a Rust VMM, not those of a JVM's");
        m.put("--start-time-us", "Panamax reports no process start-up time from its parent (Firecracker's jailer);"
                + " it measures its own (panamax run --boot-time)");
        m.put("--start-time-cpu-us", "Panamax reports no process start-up CPU time from its parent (Firecracker's jailer)");
        m.put("--parent-cpu-time-us", "Panamax reports no CPU time of its parent (Firecracker's jailer)");
        m.put("--metadata", "Panamax has no MMDS (Firecracker's metadata service)");
        m.put("--mmds-size-limit", "Panamax has no MMDS (Firecracker's metadata service)");
        m.put("--snapshot-version", "Panamax's snapshots are its own format, not Firecracker's; panamax run --restore reads them");
        m.put("--describe-snapshot", "Panamax's snapshots are its own format, not Firecracker's; panamax run --restore reads them");
        return Map.copyOf(m);
    }

    @Override
    public Integer call() throws IOException, InterruptedException {
        for (String flag : spec.options().stream().map(o -> o.longestName()).toList()) {
            if (REFUSED.containsKey(flag) && spec.commandLine().getParseResult().hasMatchedOption(flag)) {
                throw new UserError(flag + " is a Firecracker flag Panamax refuses: " + REFUSED.get(flag) + "; leave it out");
            }
        }
        if (version) {
            spec.commandLine().getOut().println("Panamax v" + Panamax.version());
            spec.commandLine().getOut().println();
            spec.commandLine().getOut().flush();
            return 0;
        }
        if (noApi && configFile == null) {
            throw new UserError("--no-api needs --config-file: without the API, the VM can only come from a config file");
        }
        if (maxPayload != DEFAULT_MAX_PAYLOAD) {
            throw new UserError("--http-api-max-payload-size " + maxPayload + ": Panamax's API takes request bodies of up to "
                    + DEFAULT_MAX_PAYLOAD + " bytes (Firecracker's default) and has no other limit; leave it out or give "
                    + DEFAULT_MAX_PAYLOAD);
        }
        if (metricsPath != null && metricsPath.isEmpty()) {
            throw new UserError("--metrics-path must not be empty");
        }
        VmConfig.ConfigFile file = null;
        try {
            ControlPlane.instanceId(id, "--id");
            if (configFile != null) {
                file = VmConfig.readFile(configFile);
            }
        } catch (ConfigException e) {
            throw new UserError(e.getMessage());
        }
        if (!KvmAcceleration.detect().hardware()) { // detect() has said why
            System.err.println("panamax: warning: Linux guests cannot boot on this host's KVM; run firecracker where KVM is real,"
                    + " for example inside the nested rig (panamax rig -- COMMAND)");
        }
        try (OutputStream out = console.open()) {
            ControlPlane plane = new ControlPlane(config -> {
                VirtualMachine vm = (noSeccomp ? config.withoutSeccomp() : config).toBuilder().console(out).build();
                if (bootTimer) {
                    vm.onUserSpace(t -> LOG.log(System.Logger.Level.INFO, "Guest-boot-time = {0} us {1} ms (from process start)",
                            t.toNanos() / 1000, t.toMillis()));
                }
                return vm;
            }, out, Panamax.version(), id);
            try (plane) {
                return run(plane, file);
            }
        }
    }

    /** The flags' pre-boot requests, then the config file's VM, through the API's own handling; then the VM's life. */
    private int run(ControlPlane plane, VmConfig.ConfigFile file) throws InterruptedException {
        Map<String, Object> logger = new LinkedHashMap<>();
        List<String> loggerFlags = new ArrayList<>();
        BiConsumer<String, Object> given = (flag, value) -> {
            loggerFlags.add(flag);
            logger.put(flag.substring(2).replace('-', '_'), value);
        };
        if (logPath != null) {
            given.accept("--log-path", logPath);
        }
        if (level != null) {
            given.accept("--level", level);
        }
        if (module != null) {
            given.accept("--module", module);
        }
        if (showLevel) {
            given.accept("--show-level", true);
        }
        if (showLogOrigin) {
            given.accept("--show-log-origin", true);
        }
        if (!loggerFlags.isEmpty()) {
            request(plane, "PUT", "/logger", logger, String.join(", ", loggerFlags));
        }
        if (metricsPath != null) {
            request(plane, "PUT", "/metrics", Map.of("metrics_path", metricsPath), "--metrics-path");
        }
        if (file != null) {
            if (file.logger() != null) {
                request(plane, "PUT", "/logger", file.logger().toJson(), configFile + ": logger");
            }
            if (file.vm().metricsPath() != null) {
                request(plane, "PUT", "/metrics", Map.of("metrics_path", file.vm().metricsPath().toString()), configFile + ": metrics");
            }
            plane.configure(file.vm());
        }
        if (noApi) {
            return boot(plane);
        }
        try (ApiServer server = ServeCommand.startApi(apiSocket, plane)) {
            System.err.println("panamax: serving the API on " + server.socket());
            return file != null ? boot(plane) : awaitVm(plane);
        }
    }

    /** {@code InstanceStart} now, then the VM's life. */
    private int boot(ControlPlane plane) throws InterruptedException {
        request(plane, "PUT", "/actions", Map.of("action_type", "InstanceStart"), configFile.toString());
        return awaitVm(plane);
    }

    private static int awaitVm(ControlPlane plane) throws InterruptedException {
        try (VirtualMachine vm = plane.awaitStarted()) {
            return RunCommand.exitStatus(vm.awaitExit(null).orElseThrow());
        }
    }

    /** One request through the control plane; its refusal is the user's error, named by {@code what} (the flags that asked). */
    private static void request(ControlPlane plane, String method, String path, Map<String, ?> body, String what) {
        try {
            plane.handle(method, path, Json.write(body).getBytes(StandardCharsets.UTF_8));
        } catch (ApiFault e) {
            throw new UserError(what + ": " + e.getMessage());
        }
    }

    /** The flags Panamax takes with Firecracker's meaning or an equivalent one, for the README's table and its test. */
    static List<String> acceptedFlags() {
        return List.of("--api-sock", "--config-file", "--no-api", "--id", "--level", "--log-path", "--module", "--show-level",
                "--show-log-origin", "--metrics-path", "--boot-timer", "--version", "--http-api-max-payload-size", "--enable-pci",
                "--no-seccomp");
    }
}
