package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import dev.panamax.control.ApiClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code panamax api}: one request to a REST API socket (Panamax's or Firecracker's), as curl would send it. */
@Command(name = "api", mixinStandardHelpOptions = true, description = {
    "Send one request to the REST API on a Unix socket and print the answer's JSON.",
    "Example: panamax api --api-sock /tmp/vm.sock PUT /actions '{\"action_type\": \"InstanceStart\"}'",
    "Exits with 0 for a 2xx answer, 2 (and the fault message) for 4xx, 1 for anything else."})
final class ApiCommand implements Callable<Integer> {

    @Option(names = "--api-sock", paramLabel = "PATH", required = true, description = "the API's Unix socket")
    Path apiSocket;

    @Parameters(index = "0", paramLabel = "METHOD", description = "GET, PUT or PATCH")
    String method;

    @Parameters(index = "1", paramLabel = "PATH", description = "the resource, e.g. / or /vm/config")
    String path;

    @Parameters(index = "2", arity = "0..1", paramLabel = "JSON", description = "the request body")
    String body;

    @Option(names = "--file", paramLabel = "FILE", description = "send this file as the request body")
    Path file;

    @Override
    public Integer call() {
        if (!path.startsWith("/")) {
            throw new UserError("the resource path must start with '/', like /vm/config, not '" + path + "'");
        }
        String json = body;
        if (file != null) {
            if (body != null) {
                throw new UserError("give the request body as JSON or with --file, not both");
            }
            try {
                json = Files.readString(file);
            } catch (IOException e) {
                throw new UserError("cannot read the request body from " + file + ": " + e.getMessage());
            }
        }
        ApiClient.Response r;
        try {
            r = new ApiClient(apiSocket).send(method.toUpperCase(Locale.ROOT), path, json);
        } catch (IOException e) {
            throw new UserError("cannot reach the API at " + apiSocket + " (" + e.getMessage() + "); is panamax serve running there?");
        }
        if (r.status() >= 200 && r.status() < 300) {
            if (!r.body().isEmpty()) {
                System.out.println(r.body());
            }
            return 0;
        }
        if (r.status() >= 400 && r.status() < 500) {
            throw new UserError(r.status() + ": " + r.faultMessage());
        }
        System.err.println("panamax: the API answered " + r.status() + ": " + r.faultMessage());
        return 1;
    }
}
