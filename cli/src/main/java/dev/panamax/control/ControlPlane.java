package dev.panamax.control;

import dev.panamax.api.Balloon;
import dev.panamax.api.BalloonStatistics;
import dev.panamax.api.Drive;
import dev.panamax.api.IncomingMigrationOptions;
import dev.panamax.api.MigrationListener;
import dev.panamax.api.MigrationOptions;
import dev.panamax.api.MigrationStatus;
import dev.panamax.api.NetworkInterface;
import dev.panamax.api.RateLimiter;
import dev.panamax.api.RestoreOptions;
import dev.panamax.api.SharedFolder;
import dev.panamax.api.SnapshotOptions;
import dev.panamax.api.VirtualMachine;
import dev.panamax.api.VirtualMachineException;
import dev.panamax.control.VmConfig.BootSource;
import dev.panamax.control.VmConfig.MachineConfig;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.MigrationAddress;
import dev.panamax.vmm.VmRules;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.IntFunction;
import java.util.function.Predicate;

/**
 * The REST API's resources for one VM, after Firecracker's API: the pre-boot resources
 * ({@code /boot-source}, {@code /machine-config}, {@code /drives/{id}}, {@code /network-interfaces/{id}}, {@code /vsock}, {@code /entropy},
 * and Panamax's own {@code /shared-folders}, the whole list at once), the VMM's log ({@code /logger}), the rate limits of drives and
 * network interfaces, before boot and after ({@code PATCH /drives/{id}}, {@code PATCH /network-interfaces/{id}}),
 * the actions ({@code InstanceStart}, {@code SendCtrlAltDel}), the VM's state ({@code PATCH /vm}),
 * snapshots ({@code PUT /snapshot/create} of a paused VM, {@code PUT /snapshot/load} instead of a
 * configuration and {@code InstanceStart}), and what can be read ({@code /}, {@code /version}, {@code /vm/config}, {@code /machine-config},
 * {@code /metrics}). Independent of the transport ({@link ApiServer}); thread-safe.
 *
 * <p>A request it refuses throws an {@link ApiFault}: {@link ApiFault.BadRequest} for a value that
 * breaks a rule ({@link ConfigException}, or a {@link VirtualMachineException} from building the VM),
 * {@link ApiFault.WrongState} for a request the VM's state rules out, decided by looking at the state.
 * Anything else it throws is a bug.
 */
public final class ControlPlane implements AutoCloseable {
    /** Firecracker's id for an instance started without {@code --id}. */
    public static final String INSTANCE_ID = "anonymous-instance";
    public static final String APP_NAME = "Panamax";
    private static final System.Logger LOG = System.getLogger(ControlPlane.class.getName());

    /**
     * The answer to a request done: {@code 200} with a JSON body, or {@code 204} without one. A
     * request not done is an {@link ApiFault} instead.
     *
     * @param status the HTTP status
     * @param body the JSON body, or null for none (204)
     */
    public record Response(int status, Map<String, Object> body) {
        static Response ok(Map<String, Object> body) {
            return new Response(200, Objects.requireNonNull(body, "body"));
        }

        static Response noContent() {
            return new Response(204, null);
        }
    }

    /** A resource by its path pattern, with the methods it accepts. */
    private record Resource(String path, Set<String> methods) {}

    /** In the order the 404 message lists them. */
    private static final List<Resource> RESOURCES = List.of(
            new Resource("/", Set.of("GET")),
            new Resource("/version", Set.of("GET")),
            new Resource("/boot-source", Set.of("PUT")),
            new Resource("/machine-config", Set.of("GET", "PUT")),
            new Resource("/drives/{id}", Set.of("PUT", "PATCH")),
            new Resource("/network-interfaces/{id}", Set.of("PUT", "PATCH")),
            new Resource("/vsock", Set.of("PUT")),
            new Resource("/entropy", Set.of("PUT")),
            new Resource("/shared-folders", Set.of("PUT")),
            new Resource("/logger", Set.of("PUT")),
            new Resource("/balloon", Set.of("GET", "PUT", "PATCH")),
            new Resource("/balloon/statistics", Set.of("GET", "PATCH")),
            new Resource("/actions", Set.of("PUT")),
            new Resource("/vm", Set.of("PATCH")),
            new Resource("/vm/config", Set.of("GET")),
            new Resource("/snapshot/create", Set.of("PUT")),
            new Resource("/snapshot/load", Set.of("PUT")),
            new Resource("/migration", Set.of("GET")),
            new Resource("/migration/send", Set.of("PUT")),
            new Resource("/migration/cancel", Set.of("PUT")),
            new Resource("/migration/receive", Set.of("PUT")),
            new Resource("/metrics", Set.of("GET", "PUT")));

    private final Function<VmConfig, VirtualMachine> factory;
    private final OutputStream console; // for a VM the API brings in without building it: a restore's, a migration's
    private final String version;
    private final String instanceId;
    private final AtomicLong requests = new AtomicLong();
    private final MetricsRegistry metrics = new MetricsRegistry();

    private final Object lock = new Object();
    private BootSource bootSource; // guarded by lock; null until PUT /boot-source
    private MachineConfig machine = MachineConfig.DEFAULT; // guarded by lock
    private final Map<String, Drive> drives = new LinkedHashMap<>(); // guarded by lock
    private final Map<String, NetworkInterface> interfaces = new LinkedHashMap<>(); // guarded by lock
    private VmConfig.Vsock vsock; // guarded by lock; null until PUT /vsock
    private VmConfig.Entropy entropy; // guarded by lock; null until PUT /entropy
    private List<SharedFolder> sharedFolders = List.of(); // guarded by lock
    private Balloon balloon; // guarded by lock; null until PUT /balloon
    private boolean starting; // guarded by lock: InstanceStart is building the VM
    private VmConfig startedConfig; // guarded by lock
    private String incoming; // the address PUT /migration/receive listens at, until a VM arrives or the migration fails; guarded by lock
    private boolean receivedFrom; // the VM came by a migration; guarded by lock
    private final CountDownLatch migrationReported = new CountDownLatch(1); // GET /migration told a client the VM moved away
    private VirtualMachine vm; // guarded by lock; set once
    private long startedNanos; // guarded by lock
    private LogOutput log; // guarded by lock; null until PUT /logger

    /**
     * @param factory builds the VM at {@code InstanceStart} (adding what the API does not set: the
     *     console, the boot protocol); the {@link VirtualMachineException} or {@link ConfigException}
     *     it throws for a VM that cannot be built as configured is the client's fault (400), anything
     *     else it throws a bug (500)
     * @param version Panamax's version, for {@code GET /} and {@code GET /version}
     */
    public ControlPlane(Function<VmConfig, VirtualMachine> factory, String version) {
        this(factory, OutputStream.nullOutputStream(), version);
    }

    /**
     * @param console where the guest's serial output goes for a VM that {@code PUT /snapshot/load} or
     *     {@code PUT /migration/receive} brings in (not closed here)
     */
    public ControlPlane(Function<VmConfig, VirtualMachine> factory, OutputStream console, String version) {
        this(factory, console, version, INSTANCE_ID);
    }

    /**
     * @param instanceId the id {@code GET /} answers and log lines carry (Firecracker's {@code --id}),
     *     checked by {@link #instanceId(String, String)}
     */
    public ControlPlane(Function<VmConfig, VirtualMachine> factory, OutputStream console, String version,
            String instanceId) {
        this.factory = Objects.requireNonNull(factory, "factory");
        this.console = Objects.requireNonNull(console, "console");
        this.version = Objects.requireNonNull(version, "version");
        this.instanceId = instanceId(instanceId, "instance id");
        FIRECRACKER_REQUEST_METRICS.values().forEach(counted -> {
            String group = counted.substring(0, counted.indexOf('.'));
            String name = counted.substring(counted.indexOf('.') + 1);
            metrics.declare(group, name + "_count");
            if (!group.startsWith("get_")) {
                metrics.declare(group, name + "_fails");
            }
        });
    }

    /**
     * Firecracker's rule for an instance id: 1 to 64 letters, digits and hyphens.
     *
     * @throws ConfigException naming {@code where} otherwise
     */
    public static String instanceId(String id, String where) {
        if (id.isEmpty() || id.length() > 64 || !id.chars().allMatch(c -> c < 128 && (Character.isLetterOrDigit(c) || c == '-'))) {
            throw new ConfigException(where, Json.quote(id) + " is not an instance id: use 1 to 64 letters, digits or hyphens");
        }
        return id;
    }

    /** For a VM built already ({@code panamax run --api-sock}), to be started by its owner: only its state can change. */
    public static ControlPlane forVm(VirtualMachine vm, VmConfig config, String version) {
        ControlPlane plane = new ControlPlane(c -> {
            throw new AssertionError("InstanceStart asked to build a second VM"); // instanceStart() refuses before: the VM is there
        }, version);
        synchronized (plane.lock) {
            plane.started(vm, config);
        }
        return plane;
    }

    /** Waits until {@code InstanceStart} has started the VM, and returns it. */
    public VirtualMachine awaitStarted() throws InterruptedException {
        synchronized (lock) {
            while (vm == null) {
                lock.wait();
            }
            return vm;
        }
    }

    /**
     * Answers one request.
     *
     * @param path the request's path, without query
     * @param body the request's body (empty for none)
     * @throws ApiFault when the request is refused (never {@link ApiFault.Internal}: anything else thrown is a bug)
     */
    public Response handle(String method, String path, byte[] body) {
        requests.incrementAndGet();
        LOG.log(System.Logger.Level.DEBUG, "The API server received a {0} request on {1}", method, path);
        String resource = resourceOf(path);
        String counted = FIRECRACKER_REQUEST_METRICS.get(method + " " + resource);
        if (counted != null) {
            metrics.increment(counted.substring(0, counted.indexOf('.')), counted.substring(counted.indexOf('.') + 1) + "_count");
        }
        try {
            return answer(method, path, resource, body);
        } catch (ApiFault fault) {
            if (counted != null && !counted.startsWith("get_")) { // Firecracker counts the failures of changes only
                metrics.increment(counted.substring(0, counted.indexOf('.')), counted.substring(counted.indexOf('.') + 1) + "_fails");
            }
            throw fault;
        }
    }

    /**
     * The requests Firecracker's metrics count, by method and resource: {@code GROUP.NAME}, counted as
     * {@code NAME_count} and, when refused, {@code NAME_fails}.
     */
    private static final Map<String, String> FIRECRACKER_REQUEST_METRICS = Map.ofEntries(
            Map.entry("GET /", "get_api_requests.instance_info"),
            Map.entry("GET /machine-config", "get_api_requests.machine_cfg"),
            Map.entry("GET /version", "get_api_requests.vmm_version"),
            Map.entry("PUT /actions", "put_api_requests.actions"),
            Map.entry("PUT /boot-source", "put_api_requests.boot_source"),
            Map.entry("PUT /drives/{id}", "put_api_requests.drive"),
            Map.entry("PUT /logger", "put_api_requests.logger"),
            Map.entry("PUT /machine-config", "put_api_requests.machine_cfg"),
            Map.entry("PUT /metrics", "put_api_requests.metrics"),
            Map.entry("PUT /network-interfaces/{id}", "put_api_requests.network"),
            Map.entry("PUT /vsock", "put_api_requests.vsock"),
            Map.entry("PATCH /drives/{id}", "patch_api_requests.drive"),
            Map.entry("PATCH /network-interfaces/{id}", "patch_api_requests.network"));

    private Response answer(String method, String path, String resource, byte[] body) {
        Resource found = RESOURCES.stream().filter(r -> r.path().equals(resource)).findFirst().orElse(null);
        if (found == null) {
            throw new ApiFault.NotFound("there is no resource " + path + "; the API has "
                    + String.join(", ", RESOURCES.stream().map(Resource::path).toList()));
        }
        if (!found.methods().contains(method)) {
            String methods = String.join(", ", found.methods().stream().sorted().toList());
            throw new ApiFault.MethodNotAllowed(path + " accepts " + methods + ", not " + method, methods);
        }
        String id = resource.endsWith("{id}") ? path.substring(path.lastIndexOf('/') + 1) : null;
        try {
            return switch (method + " " + resource) {
                case "GET /" -> Response.ok(instanceInfo());
                case "GET /version" -> Response.ok(Map.of("firecracker_version", version));
                case "GET /machine-config" -> {
                    synchronized (lock) {
                        yield Response.ok(VmConfig.toJson(startedConfig != null ? startedConfig.machineConfig() : machine));
                    }
                }
                case "GET /vm/config" -> {
                    synchronized (lock) {
                        yield Response.ok(startedConfig != null ? startedConfig.toJson() : VmConfig.toJson(bootSource, machine,
                                List.copyOf(drives.values()), List.copyOf(interfaces.values()), vsock, sharedFolders, entropy, balloon));
                    }
                }
                case "GET /metrics" -> Response.ok(metricsJson());
                case "PUT /metrics" -> putMetrics(body);
                case "PUT /boot-source" -> putResource("boot-source", body, VmConfig::bootSource, parsed -> bootSource = parsed);
                case "PUT /machine-config" -> putResource("machine-config", body, VmConfig::machineConfig, parsed -> machine = parsed);
                case "PUT /drives/{id}" -> putById("drives", "drive_id", id, body, VmConfig::drive, Drive::id, drives, VmConfig::checkDrives);
                case "PUT /network-interfaces/{id}" -> putById("network-interfaces", "iface_id", id, body, VmConfig::networkInterface,
                        NetworkInterface::id, interfaces, VmConfig::checkNetworkInterfaces);
                case "PATCH /drives/{id}" -> patchDrive(id, body);
                case "PATCH /network-interfaces/{id}" -> patchNetworkInterface(id, body);
                case "PUT /vsock" -> putResource("vsock", body, VmConfig::vsock, parsed -> vsock = parsed);
                case "PUT /entropy" -> putResource("entropy", body, VmConfig::entropy, parsed -> entropy = parsed);
                case "PUT /shared-folders" -> putResource("shared-folders", body, VmConfig::sharedFolders, parsed -> sharedFolders = parsed);
                case "PUT /logger" -> putLogger(LoggerConfig.parse(json(body), "logger"));
                case "PUT /balloon" -> putResource("balloon", body, VmConfig::balloon, parsed -> balloon = parsed);
                case "PATCH /balloon" -> patchBalloon(body);
                case "GET /balloon" -> getBalloon();
                case "GET /balloon/statistics" -> balloonStatistics();
                case "PATCH /balloon/statistics" -> patchBalloonStatistics(body);
                case "PUT /actions" -> action(body);
                case "PATCH /vm" -> patchVm(body);
                case "PUT /snapshot/create" -> createSnapshot(body);
                case "PUT /snapshot/load" -> loadSnapshot(body);
                case "GET /migration" -> migrationStatus();
                case "PUT /migration/send" -> sendMigration(body);
                case "PUT /migration/cancel" -> cancelMigration();
                case "PUT /migration/receive" -> receiveMigration(body);
                default -> throw new AssertionError("RESOURCES lists " + method + " " + resource + ", which has no handler");
            };
        } catch (ConfigException | VirtualMachineException e) { // a value breaks a rule, or the VM cannot be built as configured
            throw new ApiFault.BadRequest(e.getMessage());
        }
    }

    /**
     * Firecracker's {@code Logger}, before {@code InstanceStart}: the VMM's log goes where it says
     * from now on (a later {@code PUT} replaces it). A path that cannot be opened is the client's fault.
     */
    private Response putLogger(LoggerConfig config) {
        synchronized (lock) {
            requirePreBoot("logger");
            LogOutput opened;
            try {
                opened = LogOutput.open(config, instanceId);
            } catch (IOException e) {
                throw new ConfigException("logger.log_path", e.getMessage());
            }
            if (log != null) {
                log.close(); // before the new one takes the root logger: closing puts back what it replaced
            }
            opened.install();
            log = opened;
        }
        LOG.log(System.Logger.Level.INFO, "Running " + APP_NAME + " v" + version);
        return Response.noContent();
    }

    /** The log {@code PUT /logger} installed, or null; {@link #close} closes it. */
    public LogOutput logOutput() {
        synchronized (lock) {
            return log;
        }
    }

    /**
     * Takes a whole configuration at once, as a config file gives it (Firecracker's {@code --config-file}),
     * in place of the pre-boot {@code PUT}s; {@code InstanceStart} then boots it.
     *
     * @throws ApiFault.WrongState after {@code InstanceStart}
     */
    public void configure(VmConfig config) {
        synchronized (lock) {
            requirePreBoot("the configuration");
            bootSource = config.bootSource();
            machine = config.machineConfig();
            drives.clear();
            config.drives().forEach(d -> drives.put(d.id(), d));
            interfaces.clear();
            config.networkInterfaces().forEach(n -> interfaces.put(n.id(), n));
            vsock = config.vsock();
            sharedFolders = config.sharedFolders();
        }
    }

    private static String resourceOf(String path) {
        for (String collection : List.of("/drives/", "/network-interfaces/")) {
            if (path.startsWith(collection) && path.length() > collection.length() && path.indexOf('/', collection.length()) < 0) {
                return collection + "{id}";
            }
        }
        return path;
    }

    /** {@code PUT} of a single pre-boot resource: parsed and checked, then {@code apply}'d unless the VM started meanwhile. */
    private <T> Response putResource(String name, byte[] body, BiFunction<Object, String, T> parse, Consumer<T> apply) {
        requirePreBoot(name);
        T parsed = parse.apply(json(body), name);
        synchronized (lock) {
            requirePreBoot(name);
            apply.accept(parsed);
        }
        return Response.noContent();
    }

    /**
     * {@code PUT /COLLECTION/{id}}: adds the item, or replaces the one with its id, if the
     * collection still follows its rules with it.
     */
    private <T> Response putById(String collection, String idField, String id, byte[] body, BiFunction<Object, String, T> parse,
            Function<T, String> idOf, Map<String, T> items, BiConsumer<List<T>, IntFunction<String>> rules) {
        String where = collection + "/" + id;
        VmRules.id(id, where);
        requirePreBoot(where);
        T item = parse.apply(json(body), where);
        if (!idOf.apply(item).equals(id)) {
            throw new ConfigException(where + "." + idField, "'" + idOf.apply(item) + "' differs from the id in the path, '" + id + "'");
        }
        synchronized (lock) {
            requirePreBoot(where);
            List<T> after = new ArrayList<>(items.values());
            after.removeIf(other -> idOf.apply(other).equals(id));
            after.add(item);
            rules.accept(after, i -> collection + "/" + idOf.apply(after.get(i)));
            items.put(id, item);
        }
        return Response.noContent();
    }

    /**
     * Firecracker's {@code PartialDrive}: {@code drive_id}, and an optional {@code path_on_host} and
     * {@code rate_limiter}. Before {@code InstanceStart} it changes the configured drive; afterwards
     * it changes the running drive's rate limit (a bucket left out stays as it is) and refuses a new
     * image, which Panamax cannot swap under a running guest.
     */
    private Response patchDrive(String id, byte[] body) {
        String where = "drives/" + id;
        VmRules.id(id, where);
        JsonObject o = JsonObject.of(json(body), where).allowOnly(Set.of("drive_id", "path_on_host", "rate_limiter"));
        requireSameId(o, "drive_id", id);
        RateLimiter change = VmConfig.rateLimiter(o.get("rate_limiter"), o.path("rate_limiter"));
        String newPath = o.optionalString("path_on_host");
        synchronized (lock) {
            if (starting) {
                throw new ApiFault.WrongState(where, "the VM is starting; try again in a moment");
            }
            if (vm == null) {
                Drive d = drives.get(id);
                if (d == null) {
                    throw new ApiFault.BadRequest(where + ": there is no drive " + id + " to change; PUT /drives/" + id + " first");
                }
                Path image = newPath == null ? d.path()
                        : VmRules.diskImage(newPath, VmConfig.imageFormat(d.format()), d.readOnly(), o.path("path_on_host"));
                drives.put(id, new Drive(d.id(), image, d.readOnly(), d.root(), d.transport(), updated(d.rateLimiter(), change), d.format()));
                return Response.noContent();
            }
            Drive d = startedConfig.drives().stream().filter(x -> x.id().equals(id)).findFirst()
                    .orElseThrow(() -> new ApiFault.BadRequest(where + ": the VM has no drive " + id));
            if (newPath != null && !Path.of(newPath).equals(d.path())) {
                throw new ApiFault.BadRequest(o.path("path_on_host") + ": Panamax cannot change the image of a drive while the VM runs"
                        + " (it is " + d.path() + "); leave path_on_host out, or give the same path");
            }
            if (change != null) {
                requireLive(where);
                Drive after = d.withRateLimiter(updated(d.rateLimiter(), change));
                vm.updateDrive(id, after.rateLimiter());
                startedConfig = startedConfig.withDrive(after);
            }
        }
        return Response.noContent();
    }

    /**
     * Firecracker's {@code PartialNetworkInterface}: {@code iface_id}, and an optional {@code
     * rx_rate_limiter} and {@code tx_rate_limiter}, applied as {@link #patchDrive} applies a drive's.
     */
    private Response patchNetworkInterface(String id, byte[] body) {
        String where = "network-interfaces/" + id;
        VmRules.id(id, where);
        JsonObject o = JsonObject.of(json(body), where).allowOnly(Set.of("iface_id", "rx_rate_limiter", "tx_rate_limiter"));
        requireSameId(o, "iface_id", id);
        RateLimiter rx = VmConfig.rateLimiter(o.get("rx_rate_limiter"), o.path("rx_rate_limiter"));
        RateLimiter tx = VmConfig.rateLimiter(o.get("tx_rate_limiter"), o.path("tx_rate_limiter"));
        synchronized (lock) {
            if (starting) {
                throw new ApiFault.WrongState(where, "the VM is starting; try again in a moment");
            }
            if (vm == null) {
                NetworkInterface n = interfaces.get(id);
                if (n == null) {
                    throw new ApiFault.BadRequest(where + ": there is no network interface " + id + " to change; PUT /network-interfaces/"
                            + id + " first");
                }
                interfaces.put(id, n.withRateLimiters(updated(n.rxRateLimiter(), rx), updated(n.txRateLimiter(), tx)));
                return Response.noContent();
            }
            NetworkInterface n = startedConfig.networkInterfaces().stream().filter(x -> x.id().equals(id)).findFirst()
                    .orElseThrow(() -> new ApiFault.BadRequest(where + ": the VM has no network interface " + id));
            if (rx != null || tx != null) {
                requireLive(where);
                NetworkInterface after = n.withRateLimiters(updated(n.rxRateLimiter(), rx), updated(n.txRateLimiter(), tx));
                vm.updateNetworkInterface(id, after.rxRateLimiter(), after.txRateLimiter());
                startedConfig = startedConfig.withNetworkInterface(after);
            }
        }
        return Response.noContent();
    }

    /** {@code current} changed by a PATCH's {@code change}: the buckets it gives replace those of {@code current}; null changes nothing. */
    private static RateLimiter updated(RateLimiter current, RateLimiter change) {
        if (change == null) {
            return current;
        }
        return (current == null ? RateLimiter.NONE : current).updatedBy(change);
    }

    private static void requireSameId(JsonObject o, String idField, String id) {
        String given = o.string(idField);
        if (!given.equals(id)) {
            throw new ConfigException(o.path(idField), "'" + given + "' differs from the id in the path, '" + id + "'");
        }
    }

    /** Caller holds lock; the VM is there: refuses a change to a VM that ended. */
    private void requireLive(String what) {
        VirtualMachine.State state = vm.state();
        if (state == VirtualMachine.State.EXITED || state == VirtualMachine.State.CLOSED) {
            throw new ApiFault.WrongState(what, "the VM has exited");
        }
    }

    /**
     * Firecracker's {@code BalloonUpdate}: before {@code InstanceStart} it changes the configured
     * balloon's size; afterwards the running balloon's target, which the guest then works towards.
     */
    private Response patchBalloon(byte[] body) {
        long amount = VmConfig.balloonUpdate(json(body), "balloon");
        synchronized (lock) {
            if (starting) {
                throw new ApiFault.WrongState("balloon", "the VM is starting; try again in a moment");
            }
            if (vm == null) {
                if (balloon == null) {
                    throw new ApiFault.BadRequest("balloon: there is no balloon to change; PUT /balloon first");
                }
                balloon = new Balloon(amount, balloon.deflateOnOom(), balloon.statsPollingIntervalSeconds());
                return Response.noContent();
            }
            Balloon running = requireBalloon();
            requireLive("balloon");
            vm.setBalloonTarget(amount); // a size beyond guest memory is a ConfigException: 400
            startedConfig = startedConfig.withBalloon(new Balloon(amount, running.deflateOnOom(), vm.balloon().statsPollingIntervalSeconds()));
        }
        return Response.noContent();
    }

    /** Firecracker's {@code BalloonStatsUpdate}: the statistics interval, which cannot turn statistics on or off after boot. */
    private Response patchBalloonStatistics(byte[] body) {
        int seconds = VmConfig.balloonStatsUpdate(json(body), "balloon/statistics");
        synchronized (lock) {
            if (starting) {
                throw new ApiFault.WrongState("balloon/statistics", "the VM is starting; try again in a moment");
            }
            if (vm == null) {
                if (balloon == null) {
                    throw new ApiFault.BadRequest("balloon/statistics: there is no balloon to change; PUT /balloon first");
                }
                balloon = new Balloon(balloon.amountMib(), balloon.deflateOnOom(), seconds);
                return Response.noContent();
            }
            Balloon running = requireBalloon();
            requireLive("balloon/statistics");
            try {
                vm.setBalloonStatisticsInterval(seconds);
            } catch (IllegalStateException e) { // statistics off at boot, or an interval of 0 for statistics on
                throw new ApiFault.BadRequest("balloon/statistics.stats_polling_interval_s: " + e.getMessage());
            }
            startedConfig = startedConfig.withBalloon(new Balloon(vm.balloon().amountMib(), running.deflateOnOom(), seconds));
        }
        return Response.noContent();
    }

    /** Caller holds lock; the VM is there: its balloon, or a 400 when it has none. */
    private Balloon requireBalloon() {
        if (startedConfig.balloon() == null) {
            throw new ApiFault.BadRequest("balloon: the VM has no balloon (one is added before InstanceStart, with PUT /balloon)");
        }
        return startedConfig.balloon();
    }

    /** Firecracker's {@code GET /balloon}: the balloon as configured, or as it runs (its target now). */
    private Response getBalloon() {
        synchronized (lock) {
            if (vm == null || starting) {
                if (balloon == null) {
                    throw new ApiFault.BadRequest("balloon: no balloon is configured; PUT /balloon first");
                }
                return Response.ok(VmConfig.toJson(balloon));
            }
            requireBalloon();
            return Response.ok(VmConfig.toJson(vm.balloon()));
        }
    }

    /** Firecracker's {@code GET /balloon/statistics}: the sizes and the guest's last report, once the VM runs with statistics on. */
    private Response balloonStatistics() {
        BalloonStatistics stats;
        synchronized (lock) {
            if (vm == null || starting) {
                throw new ApiFault.BadRequest("balloon/statistics: the balloon's statistics come from the guest; start the VM first");
            }
            requireBalloon();
            try {
                stats = vm.balloonStatistics();
            } catch (IllegalStateException e) {
                throw new ApiFault.BadRequest("balloon/statistics: " + e.getMessage() + "; PUT /balloon with a"
                        + " stats_polling_interval_s above 0 before InstanceStart to have them");
            }
        }
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("target_pages", stats.targetPages());
        json.put("actual_pages", stats.actualPages());
        json.put("target_mib", stats.targetMib());
        json.put("actual_mib", stats.actualMib());
        json.putAll(stats.values());
        return Response.ok(json);
    }

    private Response action(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "actions").allowOnly(Set.of("action_type"));
        String type = o.string("action_type");
        return switch (type) {
            case "InstanceStart" -> instanceStart();
            case "SendCtrlAltDel" -> {
                if (!onLiveVm("SendCtrlAltDel", VirtualMachine::shutdown)) {
                    throw new ApiFault.WrongState("SendCtrlAltDel", "the guest's keyboard buffer is full; try again in a moment");
                }
                yield Response.noContent();
            }
            case "FlushMetrics" -> {
                flushMetrics();
                yield Response.noContent();
            }
            default -> throw new ApiFault.BadRequest("actions.action_type: " + Json.quote(type)
                    + " is not an action; the actions are InstanceStart, SendCtrlAltDel and FlushMetrics");
        };
    }

    /**
     * Firecracker's {@code PUT /metrics}: {@code metrics_path}, a named pipe or a file, where the
     * metrics go from now on; once, and before {@code InstanceStart}, as in Firecracker.
     */
    private Response putMetrics(byte[] body) {
        Path destination = VmConfig.metrics(json(body), "metrics");
        requirePreBoot("metrics");
        configureMetrics(destination, "metrics.metrics_path");
        return Response.noContent();
    }

    /**
     * Sends the metrics to {@code destination} from now on (the config file's {@code metrics}, and
     * {@code PUT /metrics}).
     *
     * @param where the JSON path that gave it, for the error message
     */
    public void configureMetrics(Path destination, String where) {
        try {
            metrics.configure(destination);
        } catch (IllegalStateException e) {
            throw new ApiFault.BadRequest(where + ": " + e.getMessage());
        } catch (IOException | UnsupportedOperationException e) {
            throw new ApiFault.BadRequest(where + ": cannot open " + destination + " for the metrics: " + e.getMessage()
                    + "; give a writable file or a named pipe (mkfifo)");
        }
    }

    /** Waits this long for a flushed line to be written; beyond it, the line is written (or dropped) later. */
    private static final long FLUSH_WAIT_MILLIS = 1000;

    /** {@code FlushMetrics}: a line now, as Firecracker writes it (nothing when no destination was given). */
    private void flushMetrics() {
        try {
            metrics.flush().get(FLUSH_WAIT_MILLIS, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            // a pipe nobody reads: the writer has the line, the API does not wait for it
        } catch (ExecutionException e) {
            throw new IllegalStateException("the metrics writer failed", e.getCause()); // it catches what a write throws
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Writes a last metrics line, if they go somewhere, and closes their file; then writes out and
     * closes the log a {@code PUT /logger} installed (its lines are written by a thread of their own),
     * giving the logging back to what it was. The VM is its owner's to close.
     */
    @Override
    public void close() {
        metrics.close();
        LogOutput installed;
        synchronized (lock) {
            installed = log;
            log = null;
        }
        if (installed != null) {
            installed.close();
        }
    }

    /** This VMM's metrics registry: the API's counts, and the VM's once it started. */
    public MetricsRegistry metrics() {
        return metrics;
    }

    /**
     * {@code GET /metrics} in the Prometheus or OpenMetrics text format ({@link MetricsRegistry#PROMETHEUS_TEXT},
     * {@link MetricsRegistry#OPENMETRICS_TEXT}), for {@link ApiServer} when the client asks for it.
     */
    public String metricsText(String contentType) {
        requests.incrementAndGet();
        return metrics.prometheus(contentType);
    }

    private Response instanceStart() {
        VmConfig config;
        synchronized (lock) {
            if (vm != null || starting) {
                throw new ApiFault.WrongState("InstanceStart", "the VM is started already");
            }
            if (bootSource == null) {
                throw new ApiFault.WrongState("boot-source", "is required before InstanceStart; PUT /boot-source first");
            }
            config = new VmConfig(bootSource, machine, List.copyOf(drives.values()), List.copyOf(interfaces.values()), vsock, sharedFolders,
                    entropy, balloon, null);
            config.checkBalloon(); // rules for the devices and the machine together, known only now
            config.checkPciDevices(VmConfig.DEVICES);
            starting = true; // building takes a while (the kernel is loaded): reads go on meanwhile, changes wait
        }
        VirtualMachine built = null;
        boolean running = false;
        try {
            built = factory.apply(config);
            built.start(); // a VM just built is CREATED, the one state start() accepts
            running = true;
        } finally {
            if (!running) { // whatever failed, the VM is still to be configured and started
                if (built != null) {
                    built.close();
                }
                synchronized (lock) {
                    starting = false;
                }
            }
        }
        synchronized (lock) {
            started(built, config);
        }
        return Response.noContent();
    }

    /** Caller holds lock. */
    private void started(VirtualMachine started, VmConfig config) {
        vm = started;
        metrics.attach(started::metrics);
        startedConfig = config;
        startedNanos = System.nanoTime();
        starting = false;
        lock.notifyAll();
    }

    private Response patchVm(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "vm").allowOnly(Set.of("state"));
        String state = o.string("state");
        switch (state) {
            case "Paused" -> onLiveVm("vm", v -> {
                long start = System.nanoTime();
                v.pause(); // a paused VM stays paused
                metrics.latency("pause_vm", (System.nanoTime() - start) / 1000);
                return true;
            });
            case "Resumed" -> onLiveVm("vm", v -> {
                long start = System.nanoTime();
                v.resume(); // a running VM runs on
                metrics.latency("resume_vm", (System.nanoTime() - start) / 1000);
                return true;
            });
            default -> throw new ConfigException("vm.state", Json.quote(state) + " is not a state to ask for; use Paused or Resumed");
        }
        return Response.noContent();
    }

    /** The file path at {@code key}. */
    private static Path path(JsonObject o, String key) {
        String value = o.string(key);
        try {
            return Path.of(value);
        } catch (InvalidPathException e) {
            throw new ConfigException(o.path(key), Json.quote(value) + " is not a file path: " + e.getReason());
        }
    }

    /** Firecracker's {@code SnapshotCreateParams}: only while the VM is paused. */
    private Response createSnapshot(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "snapshot/create").allowOnly(Set.of("snapshot_type", "snapshot_path", "mem_file_path",
                "with_disks"));
        String type = o.has("snapshot_type") ? o.string("snapshot_type") : "Full";
        if (!type.equals("Full") && !type.equals("Diff")) {
            throw new ConfigException(o.path("snapshot_type"), Json.quote(type) + " is not a snapshot type; use Full or Diff");
        }
        Path state = path(o, "snapshot_path");
        Path memory = path(o, "mem_file_path");
        SnapshotOptions options = type.equals("Diff") ? SnapshotOptions.diff(state, memory) : SnapshotOptions.full(state, memory);
        if (o.optionalBool("with_disks", false)) {
            options = options.withDisks();
        }
        VirtualMachine v;
        synchronized (lock) {
            v = vm;
        }
        if (v == null || v.state() != VirtualMachine.State.PAUSED) {
            throw new ApiFault.WrongState("snapshot/create", "a snapshot is taken of a paused VM; PATCH /vm {\"state\": \"Paused\"} first");
        }
        try {
            long start = System.nanoTime();
            v.snapshot(options);
            metrics.latency(type.equals("Diff") ? "diff_create_snapshot" : "full_create_snapshot", (System.nanoTime() - start) / 1000);
        } catch (IOException e) {
            throw new ApiFault.BadRequest("snapshot/create: cannot write the snapshot: " + e.getMessage() + permissionHint(e));
        } catch (IllegalStateException e) {
            if (v.state() != VirtualMachine.State.PAUSED) { // resumed or ended meanwhile
                throw new ApiFault.WrongState("snapshot/create", "the VM is no longer paused");
            }
            throw new ApiFault.WrongState("snapshot/create", e.getMessage());
        }
        return Response.noContent();
    }

    /**
     * For a file this VMM was denied: which user it runs as, since a VMM started as root may have given root up
     * ({@code panamax run --uid}) and then creates files as that user. Empty for other failures and for root.
     */
    static String permissionHint(IOException e) {
        boolean deniedByName = e instanceof java.nio.file.AccessDeniedException; // its message is only the path
        boolean denied = deniedByName || String.valueOf(e.getMessage()).endsWith("(Permission denied)"); // java.io's form
        long uid = dev.panamax.sys.Credentials.effectiveUserId();
        if (!denied || uid == 0) {
            return "";
        }
        return (deniedByName ? " (permission denied)" : "") + "; this VMM runs as uid " + uid + ", gid "
                + dev.panamax.sys.Credentials.effectiveGroupId() + " (panamax run --uid/--gid), which must be able to create files there";
    }

    /** Firecracker's {@code SnapshotLoadParams}: only before a VM was configured to start or loaded. */
    private Response loadSnapshot(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "snapshot/load").allowOnly(Set.of("snapshot_path", "mem_backend", "mem_file_path",
                "resume_vm", "network_overrides", "track_dirty_pages", "enable_diff_snapshots", "eager_memory"));
        Path state = path(o, "snapshot_path");
        Path memory;
        if (o.has("mem_backend")) {
            if (o.has("mem_file_path")) {
                throw new ConfigException(o.path("mem_file_path"), "give mem_backend or mem_file_path, not both");
            }
            JsonObject backend = JsonObject.of(o.get("mem_backend"), o.path("mem_backend")).allowOnly(Set.of("backend_type", "backend_path"));
            String kind = backend.string("backend_type");
            if (!kind.equals("File")) {
                throw new ConfigException(backend.path("backend_type"), Json.quote(kind)
                        + " is not a memory backend Panamax has; use File (Panamax maps the file copy-on-write, with no page-fault handler)");
            }
            memory = path(backend, "backend_path");
        } else {
            memory = path(o, "mem_file_path");
        }
        RestoreOptions options = RestoreOptions.of(state, memory).resume(o.optionalBool("resume_vm", false))
                .eagerMemory(o.optionalBool("eager_memory", false))
                .trackDirtyPages(o.optionalBool("track_dirty_pages", false) || o.optionalBool("enable_diff_snapshots", false));
        List<Object> overrides = o.optionalArray("network_overrides");
        for (int i = 0; i < overrides.size(); i++) {
            JsonObject override = JsonObject.of(overrides.get(i), o.path("network_overrides") + "[" + i + "]")
                    .allowOnly(Set.of("iface_id", "host_dev_name"));
            String id = VmRules.id(override.string("iface_id"), override.path("iface_id"));
            String tap = VmRules.hostDeviceName(override.string("host_dev_name"), override.path("host_dev_name"));
            options = options.networkOverride(id, tap);
        }
        synchronized (lock) {
            if (vm != null || starting) {
                throw new ApiFault.WrongState("snapshot/load", "a snapshot is loaded into a VMM with no VM yet, and this one has one");
            }
            starting = true;
        }
        VirtualMachine restored = null;
        VmConfig config;
        try {
            long start = System.nanoTime();
            config = VmConfig.ofSnapshot(options);
            restored = VirtualMachine.restore(options.console(console));
            metrics.latency("load_snapshot", (System.nanoTime() - start) / 1000);
        } catch (IOException e) {
            throw new ApiFault.BadRequest("snapshot/load: cannot read the snapshot: " + e.getMessage());
        } finally {
            if (restored == null) {
                synchronized (lock) {
                    starting = false;
                }
            }
        }
        synchronized (lock) {
            started(restored, config);
        }
        return Response.noContent();
    }

    /**
     * Panamax's {@code PUT /migration/send}: moves the running or paused VM to a destination
     * waiting with {@code PUT /migration/receive} or {@code panamax run --incoming}. Answers at once;
     * the migration goes on in the background, and {@code GET /migration} tells how far it is.
     */
    private Response sendMigration(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "migration/send").allowOnly(Set.of("destination", "downtime_ms", "max_rounds",
                "refuse_longer_downtime", "timeout_s"));
        String destination = o.string("destination");
        try {
            MigrationAddress.parse(destination);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(o.path("destination"), e.getMessage());
        }
        MigrationOptions options = MigrationOptions.to(destination)
                .downtimeTarget(Duration.ofMillis(o.optionalLong("downtime_ms", 300, 1, 600_000)))
                .maxRounds((int) o.optionalLong("max_rounds", 30, 0, 10_000))
                .refuseLongerDowntime(o.optionalBool("refuse_longer_downtime", false))
                .timeout(Duration.ofSeconds(o.optionalLong("timeout_s", 30, 1, 3600)));
        onLiveVm("migration/send", v -> {
            if (v.migrationStatus().map(status -> !status.phase().over()).orElse(false)) {
                throw new ApiFault.WrongState("migration/send", "a migration of this VM is under way; GET /migration tells how far");
            }
            Thread.ofPlatform().name("migration").start(() -> {
                try {
                    v.migrate(options);
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.WARNING, "migration to " + options.destination() + " failed: " + e.getMessage());
                }
            });
            return true;
        });
        return Response.noContent();
    }

    /** Panamax's {@code GET /migration}: the running or last migration, sent or received. */
    private Response migrationStatus() {
        VirtualMachine v;
        String receiving;
        synchronized (lock) {
            v = vm;
            receiving = incoming;
        }
        if (v == null) {
            if (receiving == null) {
                throw new ApiFault.BadRequest("migration: there is no VM and none is awaited; PUT /migration/receive to wait for one");
            }
            return Response.ok(Map.of("role", "destination", "phase", "receiving", "address", receiving));
        }
        Optional<MigrationStatus> status = v.migrationStatus();
        if (status.isEmpty()) {
            return Response.ok(Map.of("role", receivedFrom ? "destination" : "none", "phase", receivedFrom ? "completed" : "none"));
        }
        MigrationStatus s = status.get();
        if (s.phase() == MigrationStatus.Phase.COMPLETED) {
            migrationReported.countDown();
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", "source");
        m.put("phase", s.phase().name().toLowerCase());
        m.put("round", s.round());
        m.put("bytes_sent", s.bytesSent());
        m.put("last_round_pages", s.lastRoundPages());
        m.put("dirty_pages_per_second", s.dirtyPagesPerSecond());
        m.put("bandwidth_bytes_per_second", s.bandwidthBytesPerSecond());
        m.put("expected_downtime_ms", s.expectedDowntimeMillis());
        m.put("downtime_ms", s.downtimeMillis());
        m.put("total_ms", s.totalMillis());
        if (s.error() != null) {
            m.put("error", s.error());
        }
        return Response.ok(m);
    }

    /**
     * Once a migration moved the VM away, waits at most {@code grace} for a client to read its end
     * with {@code GET /migration}: the process ends with its VM, and {@code panamax migrate}, which
     * asks every 200 ms, must not find the API gone instead. Returns at once otherwise.
     */
    public void awaitMigrationReported(Duration grace) {
        VirtualMachine v;
        synchronized (lock) {
            v = vm;
        }
        if (v == null || v.migrationStatus().map(s -> s.phase() != MigrationStatus.Phase.COMPLETED).orElse(true)) {
            return;
        }
        try {
            migrationReported.await(grace.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Panamax's {@code PUT /migration/cancel}: a migration before its commit stops, and the guest runs on here. */
    private Response cancelMigration() {
        onLiveVm("migration/cancel", v -> {
            if (v.migrationStatus().map(status -> status.phase().over()).orElse(true)) {
                throw new ApiFault.WrongState("migration/cancel", "no migration of this VM is under way");
            }
            v.cancelMigration();
            return true;
        });
        return Response.noContent();
    }

    /**
     * Panamax's {@code PUT /migration/receive}: a VMM with no VM yet listens for one; answers once it
     * listens, and the VM arrives in the background (then the API serves it as its own).
     */
    private Response receiveMigration(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "migration/receive").allowOnly(Set.of("address", "network_overrides", "stay_paused"));
        String address = o.string("address");
        try {
            MigrationAddress.parse(address);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(o.path("address"), e.getMessage());
        }
        IncomingMigrationOptions options = IncomingMigrationOptions.at(address).console(console)
                .stayPaused(o.optionalBool("stay_paused", false));
        List<Object> overrides = o.optionalArray("network_overrides");
        for (int i = 0; i < overrides.size(); i++) {
            JsonObject override = JsonObject.of(overrides.get(i), o.path("network_overrides") + "[" + i + "]")
                    .allowOnly(Set.of("iface_id", "host_dev_name"));
            options = options.networkOverride(VmRules.id(override.string("iface_id"), override.path("iface_id")),
                    VmRules.hostDeviceName(override.string("host_dev_name"), override.path("host_dev_name")));
        }
        synchronized (lock) {
            if (vm != null || starting) {
                throw new ApiFault.WrongState("migration/receive", "a VM is received by a VMM with no VM yet, and this one has one");
            }
            starting = true;
        }
        MigrationListener listener;
        try {
            listener = VirtualMachine.listenForMigration(options, line -> LOG.log(System.Logger.Level.INFO, "migration: " + line));
        } catch (IOException | VirtualMachineException e) {
            synchronized (lock) {
                starting = false;
            }
            throw new ApiFault.BadRequest("migration/receive: " + e.getMessage());
        }
        synchronized (lock) {
            incoming = options.address();
        }
        Thread.ofPlatform().name("migration-receive").start(() -> {
            VirtualMachine received = null;
            try (listener) {
                received = listener.accept();
            } catch (IOException | RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "migration: receiving a VM failed: " + e.getMessage());
            }
            synchronized (lock) {
                incoming = null;
                if (received == null) {
                    starting = false;
                } else {
                    receivedFrom = true;
                    started(received, VmConfig.of(received.configuration(), false));
                }
            }
        });
        return Response.noContent();
    }

    private Map<String, Object> instanceInfo() {
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("id", instanceId);
        info.put("state", stateName());
        info.put("vmm_version", version);
        info.put("app_name", APP_NAME);
        return info;
    }

    /** Only numbers measured in this process: requests answered, and once the VM runs, its time, exits and console bytes. */
    private Map<String, Object> metricsJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("state", stateName());
        m.put("api_requests", requests.get());
        VirtualMachine v;
        long since;
        synchronized (lock) {
            v = vm;
            since = startedNanos;
        }
        if (v != null) {
            m.put("vm_uptime_ms", (System.nanoTime() - since) / 1_000_000);
            m.put("vcpu_exits", v.vcpuExits());
            m.put("console_output_bytes", v.consoleOutputBytes());
        }
        return m;
    }

    /** Firecracker's names for the states, plus "Exited" for the moment between the guest's end and the process's. */
    private String stateName() {
        VirtualMachine v;
        synchronized (lock) {
            v = vm;
        }
        if (v == null) {
            return "Not started";
        }
        return switch (v.state()) {
            case CREATED -> "Not started";
            case RUNNING -> "Running";
            case PAUSED -> "Paused";
            case EXITED, CLOSED -> "Exited";
        };
    }

    private void requirePreBoot(String what) {
        synchronized (lock) {
            if (vm != null || starting) {
                throw new ApiFault.WrongState(what, "can only be set before InstanceStart, and the VM has started");
            }
        }
    }

    /**
     * Applies {@code action} to the VM if it is running or paused, the states in which the VM takes
     * pause, resume and Ctrl-Alt-Del; otherwise, or when the guest ends while the action is under
     * way, the request is {@link ApiFault.WrongState}.
     *
     * @param what the resource or action, as the request named it
     */
    private boolean onLiveVm(String what, Predicate<VirtualMachine> action) {
        VirtualMachine v;
        synchronized (lock) {
            v = vm;
        }
        if (v == null) {
            throw new ApiFault.WrongState(what, "the VM has not started; send the InstanceStart action first");
        }
        switch (v.state()) {
            case CREATED -> throw new ApiFault.WrongState(what, "the VM has not started yet; try again in a moment"); // run --api-sock's, until its owner starts it
            case EXITED, CLOSED -> throw new ApiFault.WrongState(what, "the VM has exited");
            case RUNNING, PAUSED -> { }
        }
        try {
            return action.test(v);
        } catch (IllegalStateException e) {
            // The VM was running or paused a moment ago, and its guest can end at any moment. That
            // explains a refusal; if the VM is still there, the refusal is a bug.
            if (v.state() == VirtualMachine.State.EXITED || v.state() == VirtualMachine.State.CLOSED) {
                throw new ApiFault.WrongState(what, "the VM has exited");
            }
            throw e;
        }
    }

    private static Object json(byte[] body) {
        return Json.parse(VmConfig.utf8(body, "the request body"), "the request body");
    }
}
