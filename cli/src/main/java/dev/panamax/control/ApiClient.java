package dev.panamax.control;

import dev.panamax.vmm.ConfigException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A client of the REST API with nothing but the JDK: HTTP/1.1 over a {@link SocketChannel} on a
 * {@link UnixDomainSocketAddress}, one request per connection. For {@code panamax api} and tests.
 */
public final class ApiClient {
    private final Path socket;

    public ApiClient(Path socket) {
        this.socket = socket;
    }

    /**
     * An answer.
     *
     * @param headers header names in lower case
     */
    public record Response(int status, Map<String, String> headers, String body) {
        /** The body's {@code fault_message}, or the body itself when it has none. */
        public String faultMessage() {
            try {
                if (Json.parse(body, "the response") instanceof Map<?, ?> m && m.get("fault_message") instanceof String message) {
                    return message;
                }
            } catch (ConfigException e) {
                // not JSON: the body says it all
            }
            return body;
        }

        /** The body parsed as JSON. */
        public Object json() {
            return Json.parse(body, "the response");
        }
    }

    /** Sends {@code method path} with a JSON {@code body} (null for none). */
    public Response send(String method, String path, String body) throws IOException {
        byte[] content = body == null ? new byte[0] : body.getBytes(StandardCharsets.UTF_8);
        StringBuilder head = new StringBuilder()
                .append(method).append(' ').append(path).append(" HTTP/1.1\r\n")
                .append("Host: localhost\r\n")
                .append("Accept: application/json\r\n")
                .append("Connection: close\r\n");
        if (body != null) {
            head.append("Content-Type: application/json\r\n");
        }
        head.append("Content-Length: ").append(content.length).append("\r\n\r\n");
        ByteArrayOutputStream request = new ByteArrayOutputStream();
        request.writeBytes(head.toString().getBytes(StandardCharsets.US_ASCII));
        request.writeBytes(content);
        return exchange(request.toByteArray());
    }

    /** Writes {@code request} as it is (for tests of malformed requests) and reads the answer until the server closes. */
    public Response exchange(byte[] request) throws IOException {
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socket));
            ByteBuffer out = ByteBuffer.wrap(request);
            IOException writeFailure = null;
            try {
                while (out.hasRemaining()) {
                    channel.write(out);
                }
            } catch (IOException e) {
                // a server that refuses a request (a body too large) may answer and close before it has read all of it
                writeFailure = e;
            }
            ByteArrayOutputStream in = new ByteArrayOutputStream();
            ByteBuffer buffer = ByteBuffer.allocate(8192);
            try {
                while (channel.read(buffer.clear()) >= 0) {
                    in.write(buffer.array(), 0, buffer.position());
                }
            } catch (IOException e) {
                // a server that refuses a request may reset the connection after its answer
                if (in.size() == 0) throw writeFailure != null ? writeFailure : e;
            }
            if (in.size() == 0 && writeFailure != null) throw writeFailure;
            return parse(in.toByteArray());
        }
    }

    private static Response parse(byte[] raw) throws IOException {
        String text = new String(raw, StandardCharsets.UTF_8);
        int headEnd = text.indexOf("\r\n\r\n");
        if (headEnd < 0) {
            throw new IOException("the server's answer is not HTTP (" + raw.length + " bytes without a header end)");
        }
        String[] lines = text.substring(0, headEnd).split("\r\n");
        String[] statusLine = lines[0].split(" ", 3);
        if (statusLine.length < 2 || !statusLine[0].startsWith("HTTP/1.")) {
            throw new IOException("the server's answer is not HTTP: " + lines[0]);
        }
        Map<String, String> headers = new LinkedHashMap<>();
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon > 0) {
                headers.put(lines[i].substring(0, colon).strip().toLowerCase(Locale.ROOT), lines[i].substring(colon + 1).strip());
            }
        }
        try {
            return new Response(Integer.parseInt(statusLine[1]), headers, text.substring(headEnd + 4));
        } catch (NumberFormatException e) {
            throw new IOException("the server's answer has no status: " + lines[0]);
        }
    }
}
