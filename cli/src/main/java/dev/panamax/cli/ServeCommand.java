package dev.panamax.cli;

import dev.panamax.api.VirtualMachine;
import dev.panamax.cli.common.UserError;
import dev.panamax.control.ApiServer;
import dev.panamax.control.ControlPlane;
import dev.panamax.demo.KvmAcceleration;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code panamax serve}: the REST API on a Unix socket, and the VM its clients configure and start. */
@Command(name = "serve", mixinStandardHelpOptions = true, description = {
    "Serve the REST API (Firecracker's, for the parts Panamax has) on a Unix socket: clients set the boot source,"
            + " machine config, drives and network interfaces, then start the VM with the InstanceStart action;"
            + " or they load a snapshot (PUT /snapshot/load).",
    "Ends when the VM ends, with run's exit statuses (0 for a reboot or power-off, 1 for a failure), and removes the socket.",
    "Runs the VM in this process: where this host's KVM only emulates, serve inside the nested KVM rig."})
final class ServeCommand implements Callable<Integer> {

    @Option(names = "--api-sock", paramLabel = "PATH", required = true, description = "the Unix socket to create and listen on")
    Path apiSocket;

    @Mixin
    ConsoleOption console;

    @Option(names = "--boot-protocol", paramLabel = "P", defaultValue = "AUTO",
            description = "AUTO (PVH for a vmlinux with the note, else 64-bit), PVH or LINUX64")
    VirtualMachine.BootProtocol protocol;

    @Override
    public Integer call() throws IOException, InterruptedException {
        if (!KvmAcceleration.detect().hardware()) { // detect() has said why
            System.err.println("panamax: warning: Linux guests cannot boot on this host's KVM; serve where KVM is real,"
                    + " for example inside the nested rig (panamax rig -- COMMAND)");
        }
        try (OutputStream out = console.open()) {
            try (ControlPlane plane = new ControlPlane(config -> config.toBuilder().console(out).bootProtocol(protocol).build(),
                    out, Panamax.version());
                 ApiServer server = startApi(apiSocket, plane)) {
                System.err.println("panamax: serving the API on " + server.socket());
                try (VirtualMachine vm = plane.awaitStarted()) {
                    return RunCommand.exitStatus(vm.awaitExit(null).orElseThrow());
                }
            }
        }
    }

    /** Listens on {@code socket}, or explains in one line why it cannot. */
    static ApiServer startApi(Path socket, ControlPlane plane) {
        try {
            return ApiServer.start(socket, plane);
        } catch (IOException e) {
            throw new UserError("cannot serve the API on " + socket + ": " + e.getMessage());
        }
    }
}
