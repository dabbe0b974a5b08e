package dev.panamax.control;

import dev.panamax.api.Drive;
import dev.panamax.api.NetworkInterface;
import dev.panamax.api.VirtualMachine;
import dev.panamax.api.VirtualMachineException;
import dev.panamax.control.VmConfig.BootSource;
import dev.panamax.control.VmConfig.MachineConfig;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.VmRules;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.IntFunction;

/**
 * The REST API's resources for one VM, after Firecracker's API: the pre-boot resources
 * ({@code /boot-source}, {@code /machine-config}, {@code /drives/{id}}, {@code /network-interfaces/{id}}),
 * the actions ({@code InstanceStart}, {@code SendCtrlAltDel}), the VM's state ({@code PATCH /vm}),
 * and what can be read ({@code /}, {@code /version}, {@code /vm/config}, {@code /machine-config},
 * {@code /metrics}). Independent of the transport ({@link ApiServer}); thread-safe.
 */
public final class ControlPlane {
    /** Firecracker's id for an instance started without {@code --id}. */
    public static final String INSTANCE_ID = "anonymous-instance";
    public static final String APP_NAME = "Panamax";

    /**
     * An answer to a request.
     *
     * @param status the HTTP status
     * @param body the JSON body, or null for none (204)
     * @param allow for 405, the methods the resource accepts; else null
     */
    public record Response(int status, Map<String, Object> body, String allow) {
        static Response ok(Map<String, Object> body) {
            return new Response(200, body, null);
        }

        static Response noContent() {
            return new Response(204, null, null);
        }

        /** Firecracker's error body: {@code {"fault_message": "..."}}. */
        public static Response fault(int status, String message) {
            return new Response(status, Map.of("fault_message", message), null);
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
            new Resource("/drives/{id}", Set.of("PUT")),
            new Resource("/network-interfaces/{id}", Set.of("PUT")),
            new Resource("/actions", Set.of("PUT")),
            new Resource("/vm", Set.of("PATCH")),
            new Resource("/vm/config", Set.of("GET")),
            new Resource("/metrics", Set.of("GET")));

    private final Function<VmConfig, VirtualMachine> factory;
    private final String version;
    private final AtomicLong requests = new AtomicLong();

    private final Object lock = new Object();
    private BootSource bootSource; // guarded by lock; null until PUT /boot-source
    private MachineConfig machine = MachineConfig.DEFAULT; // guarded by lock
    private final Map<String, Drive> drives = new LinkedHashMap<>(); // guarded by lock
    private final Map<String, NetworkInterface> interfaces = new LinkedHashMap<>(); // guarded by lock
    private boolean starting; // guarded by lock: InstanceStart is building the VM
    private VmConfig startedConfig; // guarded by lock
    private VirtualMachine vm; // guarded by lock; set once
    private long startedNanos; // guarded by lock

    /**
     * @param factory builds the VM at {@code InstanceStart} (adding what the API does not set: the
     *     console, the boot protocol); it may throw {@link VirtualMachineException},
     *     {@link ConfigException} or {@link UnsupportedOperationException}, which become 400 answers
     * @param version Panamax's version, for {@code GET /} and {@code GET /version}
     */
    public ControlPlane(Function<VmConfig, VirtualMachine> factory, String version) {
        this.factory = Objects.requireNonNull(factory, "factory");
        this.version = Objects.requireNonNull(version, "version");
    }

    /** For a VM built already ({@code panamax run --api-sock}), to be started by its owner: only its state can change. */
    public static ControlPlane forVm(VirtualMachine vm, VmConfig config, String version) {
        ControlPlane plane = new ControlPlane(c -> {
            throw new IllegalStateException("the VM is started already");
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
     */
    public Response handle(String method, String path, byte[] body) {
        requests.incrementAndGet();
        String resource = resourceOf(path);
        Resource found = RESOURCES.stream().filter(r -> r.path().equals(resource)).findFirst().orElse(null);
        if (found == null) {
            return Response.fault(404, "there is no resource " + path + "; the API has "
                    + String.join(", ", RESOURCES.stream().map(Resource::path).toList()));
        }
        if (!found.methods().contains(method)) {
            String methods = String.join(", ", found.methods().stream().sorted().toList());
            return new Response(405, Response.fault(405, path + " accepts " + methods + ", not " + method).body(), methods);
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
                                List.copyOf(drives.values()), List.copyOf(interfaces.values())));
                    }
                }
                case "GET /metrics" -> Response.ok(metrics());
                case "PUT /boot-source" -> putResource("boot-source", body, VmConfig::bootSource, parsed -> bootSource = parsed);
                case "PUT /machine-config" -> putResource("machine-config", body, VmConfig::machineConfig, parsed -> machine = parsed);
                case "PUT /drives/{id}" -> putById("drives", "drive_id", id, body, VmConfig::drive, Drive::id, drives, VmConfig::checkDrives);
                case "PUT /network-interfaces/{id}" -> putById("network-interfaces", "iface_id", id, body, VmConfig::networkInterface,
                        NetworkInterface::id, interfaces, VmConfig::checkNetworkInterfaces);
                case "PUT /actions" -> action(body);
                case "PATCH /vm" -> patchVm(body);
                default -> Response.fault(500, "internal error: no handler for " + method + " " + resource);
            };
        } catch (ConfigException | VirtualMachineException | UnsupportedOperationException
                 | IllegalStateException e) { // the last: the VM is not in a state for this (exited, closed)
            return Response.fault(400, e.getMessage());
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

    private Response action(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "actions").allowOnly(Set.of("action_type"));
        String type = o.string("action_type");
        return switch (type) {
            case "InstanceStart" -> instanceStart();
            case "SendCtrlAltDel" -> {
                if (!requireStarted("SendCtrlAltDel").shutdown()) {
                    yield Response.fault(400, "SendCtrlAltDel: the guest's keyboard buffer is full; try again in a moment");
                }
                yield Response.noContent();
            }
            case "FlushMetrics" -> Response.fault(400, "actions.action_type: FlushMetrics writes Firecracker's metrics file,"
                    + " which Panamax does not have; read GET /metrics instead");
            default -> Response.fault(400, "actions.action_type: " + Json.quote(type)
                    + " is not an action; the actions are InstanceStart and SendCtrlAltDel");
        };
    }

    private Response instanceStart() {
        VmConfig config;
        synchronized (lock) {
            if (vm != null || starting) {
                return Response.fault(400, "InstanceStart: the VM is started already");
            }
            if (bootSource == null) {
                return Response.fault(400, "boot-source: is required before InstanceStart; PUT /boot-source first");
            }
            config = new VmConfig(bootSource, machine, List.copyOf(drives.values()), List.copyOf(interfaces.values()));
            starting = true; // building takes a while (the kernel is loaded): reads go on meanwhile, changes wait
        }
        VirtualMachine built = null;
        try {
            built = factory.apply(config);
            built.start();
        } catch (RuntimeException e) {
            if (built != null) {
                built.close();
            }
            synchronized (lock) {
                starting = false;
            }
            throw e;
        }
        synchronized (lock) {
            started(built, config);
        }
        return Response.noContent();
    }

    /** Caller holds lock. */
    private void started(VirtualMachine started, VmConfig config) {
        vm = started;
        startedConfig = config;
        startedNanos = System.nanoTime();
        starting = false;
        lock.notifyAll();
    }

    private Response patchVm(byte[] body) {
        JsonObject o = JsonObject.of(json(body), "vm").allowOnly(Set.of("state"));
        String state = o.string("state");
        switch (state) {
            case "Paused" -> requireStarted("vm").pause();
            case "Resumed" -> requireStarted("vm").resume();
            default -> throw new ConfigException("vm.state", Json.quote(state) + " is not a state to ask for; use Paused or Resumed");
        }
        return Response.noContent();
    }

    private Map<String, Object> instanceInfo() {
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("id", INSTANCE_ID);
        info.put("state", stateName());
        info.put("vmm_version", version);
        info.put("app_name", APP_NAME);
        return info;
    }

    /** Only numbers measured in this process: requests answered, and once the VM runs, its time, exits and console bytes. */
    private Map<String, Object> metrics() {
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
                throw new ConfigException(what, "can only be set before InstanceStart, and the VM has started");
            }
        }
    }

    private VirtualMachine requireStarted(String what) {
        synchronized (lock) {
            if (vm == null) {
                throw new ConfigException(what, "the VM has not started; send the InstanceStart action first");
            }
            return vm;
        }
    }

    private static Object json(byte[] body) {
        return Json.parse(VmConfig.utf8(body, "the request body"), "the request body");
    }
}
