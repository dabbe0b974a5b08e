package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import java.io.FileOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --console TARGET}: where a guest's serial console goes, for the commands that boot one. */
final class ConsoleOption {
    @Option(names = "--console", paramLabel = "TARGET", defaultValue = "stdio",
            description = "where the serial console goes: stdio, file:PATH (appended), socket:PATH (a listening Unix socket), "
                    + "or none (default: ${DEFAULT-VALUE})")
    String target;

    boolean isStdio() {
        return target.equals("stdio");
    }

    boolean isNone() {
        return target.equals("none");
    }

    /** Opens the target; closing the stream never closes stdout. */
    OutputStream open() throws IOException {
        if (isStdio()) {
            return new FilterOutputStream(System.out) {
                @Override
                public void close() throws IOException {
                    flush(); // never close stdout
                }
            };
        }
        if (isNone()) {
            return OutputStream.nullOutputStream();
        }
        if (target.startsWith("file:") && target.length() > 5) {
            return new FileOutputStream(target.substring(5), true);
        }
        if (target.startsWith("socket:") && target.length() > 7) {
            Path socket = Path.of(target.substring(7));
            try {
                SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
                return new DetachedOutputStream(Channels.newOutputStream(channel), "console-socket");
            } catch (IOException e) {
                throw new UserError("cannot connect the console to the Unix socket " + socket + ": " + e.getMessage());
            }
        }
        throw new UserError("--console must be stdio, file:PATH, socket:PATH or none, not '" + target + "'");
    }
}
