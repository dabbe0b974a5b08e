package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.control.ApiClient;
import dev.panamax.control.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code panamax snapshot}: a snapshot of a running VM, through its REST API socket. */
@Command(name = "snapshot", mixinStandardHelpOptions = true, description = {
    "Snapshot the VM behind a REST API socket (panamax run --api-sock or panamax serve) into DIR:"
            + " DIR/" + SnapshotCommand.STATE_FILE + " (configuration, vCPUs, devices) and DIR/" + SnapshotCommand.MEMORY_FILE
            + " (guest memory).",
    "Pauses the VM, writes the snapshot, and lets it run on (or stays paused with --leave-paused).",
    "Restore with: panamax run --restore DIR"})
final class SnapshotCommand implements Callable<Integer> {
    static final String STATE_FILE = "vm.state";
    static final String MEMORY_FILE = "vm.mem";

    @Option(names = "--api-sock", paramLabel = "PATH", required = true, description = "the VM's API socket")
    Path apiSocket;

    @Option(names = "--diff", description = "only the memory pages written since the last snapshot (the VM must track dirty pages)")
    boolean diff;

    @Option(names = "--with-disks", description = "also take a qcow2 snapshot of every writable drive (each must be qcow2), which the restore applies")
    boolean withDisks;

    @Option(names = "--leave-paused", description = "leave the VM paused after the snapshot")
    boolean leavePaused;

    @Parameters(index = "0", paramLabel = "DIR", description = "the directory to write the snapshot to (created if missing)")
    Path dir;

    @Override
    public Integer call() {
        Path target = dir.toAbsolutePath();
        try {
            Files.createDirectories(target);
        } catch (IOException e) {
            throw new UserError("cannot create the snapshot directory " + target + ": " + e.getMessage());
        }
        ApiClient api = new ApiClient(apiSocket);
        String state = (String) ((Map<?, ?>) send(api, "GET", "/", null).json()).get("state");
        boolean wasRunning = "Running".equals(state);
        if (!wasRunning && !"Paused".equals(state)) {
            throw new UserError("the VM behind " + apiSocket + " is " + state.toLowerCase() + "; a snapshot is taken of a running or paused VM");
        }
        if (wasRunning) {
            send(api, "PATCH", "/vm", "{\"state\": \"Paused\"}");
        }
        try {
            Map<String, Object> request = new LinkedHashMap<>();
            request.put("snapshot_type", diff ? "Diff" : "Full");
            request.put("snapshot_path", target.resolve(STATE_FILE).toString());
            request.put("mem_file_path", target.resolve(MEMORY_FILE).toString());
            if (withDisks) {
                request.put("with_disks", true);
            }
            send(api, "PUT", "/snapshot/create", Json.write(request));
        } finally {
            if (wasRunning && !leavePaused) {
                send(api, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
            }
        }
        System.err.println("panamax: snapshot written to " + target);
        return 0;
    }

    private ApiClient.Response send(ApiClient api, String method, String path, String body) {
        return send(api, apiSocket, method, path, body);
    }

    /** One request to the API at {@code apiSocket}, whose refusal is the user's to fix (the API's 4xx message) and whose failure is a bug. */
    static ApiClient.Response send(ApiClient api, Path apiSocket, String method, String path, String body) {
        ApiClient.Response r;
        try {
            r = api.send(method, path, body);
        } catch (IOException e) {
            throw new UserError("cannot reach the API at " + apiSocket + " (" + e.getMessage() + "); start the VM with --api-sock there");
        }
        if (r.status() >= 400 && r.status() < 500) {
            throw new UserError(r.faultMessage());
        }
        if (r.status() >= 300) {
            throw new IllegalStateException("the API answered " + method + " " + path + " with " + r.status() + ": " + r.faultMessage());
        }
        return r;
    }
}
