package dev.panamax.control;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerDomainSocketChannel;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * The REST API served as HTTP/1.1 with JSON bodies on a Unix domain socket, through Netty's NIO
 * transport (no native library). Requests go to a {@link ControlPlane}. The socket file is
 * created with owner-only permissions and removed when the server closes or the JVM exits.
 *
 * <p>A refused request is answered by its {@link ApiFault}'s status (one switch, in {@code Answer.of(ApiFault)})
 * with Firecracker's body, {@code {"fault_message": "..."}}. Anything else a request's handling
 * throws is a bug: the client gets {@code 500} with {@link ApiFault.Internal}'s generic message, the
 * log gets the exception, and the server goes on.
 */
public final class ApiServer implements AutoCloseable {
    /** The largest request body accepted: Firecracker's default payload limit. */
    public static final int MAX_BODY_BYTES = 51_200;
    private static final int MAX_REQUEST_LINE = 4096;
    private static final int MAX_HEADERS = 8192;
    /** The longest socket path Linux accepts (sun_path less the terminating NUL). */
    private static final int MAX_SOCKET_PATH = 107;
    /** How long closing waits for requests in progress (the answer to an InstanceStart whose guest ended at once). */
    private static final Duration CLOSE_GRACE = Duration.ofSeconds(5);
    private static final System.Logger LOG = System.getLogger(ApiServer.class.getName());

    private final Path socket;
    private final EventLoopGroup loop;
    private final ExecutorService workers;
    private final Channel channel;
    private final ControlPlane plane;
    private final Thread removeOnExit;

    private ApiServer(Path socket, EventLoopGroup loop, ExecutorService workers, Channel channel, ControlPlane plane) {
        this.socket = socket;
        this.loop = loop;
        this.workers = workers;
        this.channel = channel;
        this.plane = plane;
        this.removeOnExit = new Thread(this::close, "api-socket-removal");
        Runtime.getRuntime().addShutdownHook(removeOnExit);
    }

    /**
     * Listens on a new socket at {@code socket}.
     *
     * @throws IOException with a sentence for the user when the socket cannot be made there (the
     *     path exists, its directory does not, the path is too long)
     */
    public static ApiServer start(Path socket, ControlPlane plane) throws IOException {
        Path target = socket.toAbsolutePath().normalize();
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(socket + " exists already; remove it if no VMM listens there, or choose another path");
        }
        Path dir = target.getParent();
        if (!Files.isDirectory(dir)) {
            throw new IOException("the directory " + dir + " does not exist");
        }
        // Bound in a directory only the owner may enter, made owner-only, then moved into place:
        // no other user can connect in between, whatever the umask.
        Path privateDir = dir.resolve(".panamax-" + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt()));
        Path bound = privateDir.resolve("s");
        if (bound.toString().getBytes(StandardCharsets.UTF_8).length > MAX_SOCKET_PATH) {
            throw new IOException("the path " + target + " is too long for a Unix socket: Linux allows " + MAX_SOCKET_PATH
                    + " bytes, and Panamax needs " + (bound.toString().length() - target.toString().length())
                    + " more than the path while it sets the socket up; choose a shorter one");
        }
        Files.createDirectory(privateDir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        EventLoopGroup loop = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        // Requests run off the event loop: a slow one (InstanceStart loads the kernel) must not hold up the others.
        ExecutorService workers = Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("api-request-", 0).factory());
        try {
            Channel channel = new ServerBootstrap()
                    .group(loop)
                    .channel(NioServerDomainSocketChannel.class)
                    .childHandler(new ChannelInitializer<>() {
                        @Override
                        protected void initChannel(Channel ch) {
                            ch.pipeline()
                                    .addLast(new HttpServerCodec(new HttpDecoderConfig()
                                            .setMaxInitialLineLength(MAX_REQUEST_LINE).setMaxHeaderSize(MAX_HEADERS)))
                                    .addLast(new BodyLimit())
                                    .addLast(new RequestHandler(plane, workers));
                        }
                    })
                    .bind(UnixDomainSocketAddress.of(bound)).sync().channel();
            Files.setPosixFilePermissions(bound, PosixFilePermissions.fromString("rw-------"));
            Files.move(bound, target);
            return new ApiServer(target, loop, workers, channel, plane);
        } catch (IOException | RuntimeException e) {
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            workers.shutdownNow();
            throw e instanceof IOException io ? io : new IOException(e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while opening the API socket", e);
        } finally {
            Files.deleteIfExists(bound);
            Files.deleteIfExists(privateDir);
        }
    }

    public Path socket() {
        return socket;
    }

    /** How long a VMM whose VM moved away waits for a client to read how the migration ended (GET /migration). */
    static final Duration MIGRATION_REPORT_GRACE = Duration.ofSeconds(5);

    /**
     * Stops listening (once a client has read the end of a migration that moved the VM away, or
     * after {@link #MIGRATION_REPORT_GRACE}), answers the requests received (for a few seconds at most), ends the
     * connections, and removes the socket file. Idempotent.
     */
    @Override
    public void close() {
        plane.awaitMigrationReported(MIGRATION_REPORT_GRACE);
        channel.close().awaitUninterruptibly();
        workers.shutdown();
        try {
            workers.awaitTermination(CLOSE_GRACE.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        workers.shutdownNow();
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly();
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            // nothing more to do about a socket file that cannot be removed
        }
        if (Thread.currentThread() != removeOnExit) {
            try {
                Runtime.getRuntime().removeShutdownHook(removeOnExit);
            } catch (IllegalStateException e) {
                // the JVM is exiting: the hook runs close() again, which finds nothing left to do
            }
        }
    }

    /** Collects a request with its body; a larger body is refused with 413 and the connection closed. */
    private static final class BodyLimit extends HttpObjectAggregator {
        BodyLimit() {
            super(MAX_BODY_BYTES);
        }

        @Override
        protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
            respond(ctx, Answer.of(new ApiFault.PayloadTooLarge("the request body is larger than " + MAX_BODY_BYTES + " bytes")), false);
        }
    }

    /**
     * Answers a connection's requests on worker threads, one after another (HTTP/1.1 answers
     * pipelined requests in order); one instance per connection.
     */
    private static final class RequestHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
        private final ControlPlane plane;
        private final ExecutorService workers;
        private CompletableFuture<Void> previous = CompletableFuture.completedFuture(null); // only on the event loop

        RequestHandler(ControlPlane plane, ExecutorService workers) {
            this.plane = plane;
            this.workers = workers;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
            ApiFault refusal = null;
            if (request.decoderResult().isFailure()) {
                Throwable cause = request.decoderResult().cause();
                String message = "malformed HTTP request: " + cause.getMessage();
                refusal = cause instanceof TooLongFrameException ? new ApiFault.PayloadTooLarge(message) : new ApiFault.BadRequest(message);
            }
            Answer refused = refusal == null ? null : Answer.of(refusal);
            String method = request.method().name();
            String uri = request.uri();
            String accept = request.headers().get(HttpHeaderNames.ACCEPT);
            byte[] body = ByteBufUtil.getBytes(request.content()); // the request is released when this returns
            boolean keepAlive = refused == null && HttpUtil.isKeepAlive(request);
            try {
                // The worker waits until the answer is written, so that close() can wait for it.
                previous = previous.thenRunAsync(() -> respond(ctx, refused != null ? refused : answer(method, uri, accept, body), keepAlive)
                        .awaitUninterruptibly(CLOSE_GRACE.toMillis()), workers);
            } catch (RejectedExecutionException e) {
                ctx.close(); // the server is closing
            }
        }

        /** The answer to a request; never throws, so that the requests after it on the connection are answered too. */
        private Answer answer(String method, String uri, String accept, byte[] body) {
            try {
                QueryStringDecoder decoded = decode(uri);
                String textFormat = method.equals("GET") && decoded.path().equals("/metrics") ? metricsTextFormat(decoded, accept) : null;
                if (textFormat != null) {
                    return new Answer(HttpResponseStatus.OK, plane.metricsText(textFormat).getBytes(StandardCharsets.UTF_8), null,
                            textFormat);
                }
                return Answer.of(plane.handle(method, decoded.path(), body));
            } catch (ApiFault fault) {
                return Answer.of(fault);
            } catch (RuntimeException | Error e) { // a bug: the client learns only that, the log what it was
                LOG.log(System.Logger.Level.ERROR, () -> "internal error answering " + method + " " + Json.quote(uri), e);
                plane.metrics().increment("api_server", "sync_response_fails");
                return Answer.of(new ApiFault.Internal());
            }
        }

        private static QueryStringDecoder decode(String uri) {
            try {
                QueryStringDecoder decoded = new QueryStringDecoder(uri);
                decoded.path(); // decoded lazily: a malformed %-escape shows here
                decoded.parameters();
                return decoded;
            } catch (IllegalArgumentException e) { // the decoder's refusal of a malformed %-escape
                throw new ApiFault.BadRequest("malformed request path: " + e.getMessage());
            }
        }

        /**
         * The text format {@code GET /metrics} is to answer in, or null for its JSON: {@code ?format=prometheus}
         * or {@code openmetrics} ({@code json} for the JSON), else the {@code Accept} header, as Prometheus
         * sends it: OpenMetrics when it names {@code application/openmetrics-text}, Prometheus' text when
         * it names {@code text/plain}.
         */
        static String metricsTextFormat(QueryStringDecoder uri, String accept) {
            List<String> formats = uri.parameters().getOrDefault("format", List.of());
            if (formats.size() > 1) {
                throw new ApiFault.BadRequest("metrics: give format once, not " + formats.size() + " times");
            }
            if (formats.size() == 1) {
                return switch (formats.getFirst()) {
                    case "prometheus" -> MetricsRegistry.PROMETHEUS_TEXT;
                    case "openmetrics" -> MetricsRegistry.OPENMETRICS_TEXT;
                    case "json" -> null;
                    default -> throw new ApiFault.BadRequest("metrics: format " + Json.quote(formats.getFirst())
                            + " is not one Panamax writes; use json (the default), prometheus or openmetrics");
                };
            }
            if (accept == null) {
                return null;
            }
            String wanted = accept.toLowerCase(Locale.ROOT);
            if (wanted.contains("application/openmetrics-text")) {
                return MetricsRegistry.OPENMETRICS_TEXT;
            }
            return wanted.contains("text/plain") ? MetricsRegistry.PROMETHEUS_TEXT : null;
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // a broken connection concerns its client only
        }
    }

    /**
     * An answer ready to be written.
     *
     * @param body JSON (or the metrics' text), or empty for none
     * @param allow the {@code Allow} header, or null for none
     * @param contentType the body's type, when there is a body
     */
    record Answer(HttpResponseStatus status, byte[] body, String allow, String contentType) {
        Answer(HttpResponseStatus status, byte[] body, String allow) {
            this(status, body, allow, HttpHeaderValues.APPLICATION_JSON.toString());
        }

        static Answer of(ControlPlane.Response response) {
            byte[] body = response.body() == null ? new byte[0] : Json.write(response.body()).getBytes(StandardCharsets.UTF_8);
            return new Answer(HttpResponseStatus.valueOf(response.status()), body, null);
        }

        /** The HTTP answer to each kind of fault, all in this one switch. */
        static Answer of(ApiFault fault) {
            byte[] body = Json.write(Map.of("fault_message", fault.getMessage())).getBytes(StandardCharsets.UTF_8);
            return switch (fault) {
                case ApiFault.BadRequest _, ApiFault.WrongState _ -> new Answer(HttpResponseStatus.BAD_REQUEST, body, null);
                case ApiFault.NotFound _ -> new Answer(HttpResponseStatus.NOT_FOUND, body, null);
                case ApiFault.MethodNotAllowed m -> new Answer(HttpResponseStatus.METHOD_NOT_ALLOWED, body, m.allow());
                case ApiFault.PayloadTooLarge _ -> new Answer(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, body, null);
                case ApiFault.Internal _ -> new Answer(HttpResponseStatus.INTERNAL_SERVER_ERROR, body, null);
            };
        }
    }

    private static ChannelFuture respond(ChannelHandlerContext ctx, Answer answer, boolean keepAlive) {
        byte[] body = answer.body();
        FullHttpResponse http = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, answer.status(), Unpooled.wrappedBuffer(body));
        if (body.length > 0) {
            http.headers().set(HttpHeaderNames.CONTENT_TYPE, answer.contentType());
        }
        http.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
        if (answer.allow() != null) {
            http.headers().set(HttpHeaderNames.ALLOW, answer.allow());
        }
        if (!keepAlive) {
            http.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        }
        ChannelFuture written = ctx.writeAndFlush(http);
        if (!keepAlive) {
            written.addListener(ChannelFutureListener.CLOSE);
        }
        return written;
    }
}
