package dev.panamax.junit;

import dev.panamax.cli.ExecSession;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The connections of the guest's agents, each ready for one command. The guest runs {@code
 * panamax-agent} in a loop ({@link GuestServer#AGENT_LOOP}): each agent connects, serves one command
 * ({@code panamax exec}'s protocol, through {@link ExecSession}) and ends when the host closes the
 * connection, and the next one connects. A command that outlives its timeout has its connection
 * closed, on which the agent kills it and everything it started.
 */
final class AgentPool implements AutoCloseable {
    /** How one command ended: its status, or why there is none. */
    record Outcome(OptionalInt status, boolean timedOut, String failure) {}

    private final ServerSocketChannel listener;
    private final Runnable onFirstAgent;
    private final LinkedBlockingQueue<SocketChannel> idle = new LinkedBlockingQueue<>();
    private final CountDownLatch firstAgentOrStop = new CountDownLatch(1);
    private volatile boolean sawAgent;
    private volatile boolean closed;

    /** {@code listener} is bound where the agents connect; {@code onFirstAgent} runs once, when the guest is up. */
    AgentPool(ServerSocketChannel listener, Runnable onFirstAgent) {
        this.listener = listener;
        this.onFirstAgent = onFirstAgent;
    }

    /** Accepts agents from now on, on a thread of its own, until {@link #close}. */
    void start() {
        Thread.ofPlatform().daemon().name("guest-agents").start(() -> {
            boolean first = true;
            try {
                for (;;) {
                    SocketChannel agent = listener.accept();
                    idle.add(agent);
                    if (closed) stop(); // (stopped while this one was accepted)
                    if (first) {
                        first = false;
                        sawAgent = true;
                        firstAgentOrStop.countDown();
                        onFirstAgent.run();
                    }
                }
            } catch (IOException e) {
                // the listener was closed: no more agents
            }
        });
    }

    /**
     * Waits until the first agent connected (true), the pool was stopped or {@code timeout} passed (false).
     * A null timeout waits for as long as it takes.
     */
    boolean awaitFirstAgent(Duration timeout) throws InterruptedException {
        if (timeout == null) firstAgentOrStop.await();
        else firstAgentOrStop.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
        return sawAgent;
    }

    /**
     * Runs {@code argv} on the next agent, with no input, its stdout and stderr to the streams given;
     * {@code timeout} counts from now and covers the wait for an agent too.
     */
    Outcome exec(List<String> argv, Duration timeout, OutputStream stdout, OutputStream stderr) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        SocketChannel agent = idle.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
        if (agent == null) {
            return new Outcome(OptionalInt.empty(), true, closed ? "the guest server is stopping"
                    : "no guest agent was ready within " + timeout.toMillis() + " ms");
        }
        CompletableFuture<ExecSession.Result> session = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("guest-exec").start(() -> {
            try {
                session.complete(new ExecSession(agent, stdout, stderr).run(argv, null));
            } catch (RuntimeException e) { // a command the agent would refuse (a NUL, too long): the session closed the agent
                session.complete(new ExecSession.Result(OptionalInt.empty(), e.getMessage()));
            }
        });
        boolean timedOut = false;
        ExecSession.Result result;
        try {
            result = session.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            timedOut = true;
            closeQuietly(agent); // the agent kills the command's process group; the session ends at once
            result = join(session);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
        return new Outcome(timedOut ? OptionalInt.empty() : result.status(), timedOut, result.failure());
    }

    private static ExecSession.Result join(CompletableFuture<ExecSession.Result> session) throws InterruptedException {
        try {
            return session.get();
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    @Override
    public void close() {
        stop();
    }

    /** Stops taking agents and closes the waiting ones (each ends, and the guest's loop starts another that finds nobody). */
    void stop() {
        closed = true;
        firstAgentOrStop.countDown();
        closeQuietly(listener);
        for (SocketChannel c; (c = idle.poll()) != null; ) closeQuietly(c);
    }

    private static void closeQuietly(java.nio.channels.Channel c) {
        try {
            c.close();
        } catch (IOException e) {
            // closing was all we wanted
        }
    }
}
