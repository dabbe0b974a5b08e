package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** Filters installed for real, on threads of this JVM: the kernel runs the programs {@link SeccompFilter} builds. */
class SeccompTest {
    private final BlockingQueue<Seccomp.Violation> violations = new LinkedBlockingQueue<>();

    /** Runs {@code work} on a new thread named {@code name} confined to {@code profile} with no ioctl request; returns what it returned. */
    private <T> T confined(String name, SyscallProfile profile, Function<Void, T> work) throws Exception {
        return confined(name, profile, Set.of(), work);
    }

    /** {@link #confined(String, SyscallProfile, Function)} with {@code ioctlRequests} allowed. */
    private <T> T confined(String name, SyscallProfile profile, Set<Long> ioctlRequests, Function<Void, T> work) throws Exception {
        CompletableFuture<T> result = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().name(name).start(() -> {
            try {
                Seccomp.confineCurrentThread(profile, ioctlRequests, violations::add);
                result.complete(work.apply(null));
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        T value = result.get(30, TimeUnit.SECONDS);
        t.join();
        return value;
    }

    @Test
    void aForbiddenCallFailsWithEpermAndIsReportedWithTheThreadAndSyscallNames() throws Exception {
        long result = confined("test-rng-thread", SyscallProfile.RNG, v -> Seccomp.probe("getppid"));

        assertThat(result).isEqualTo(-Libc.EPERM);
        Seccomp.Violation v = violations.poll(30, TimeUnit.SECONDS);
        assertThat(v).isNotNull();
        assertThat(v.threadName()).isEqualTo("test-rng-thread");
        assertThat(v.syscall()).isEqualTo("getppid");
        assertThat(v.profile()).isEqualTo(SyscallProfile.RNG);
        assertThat(v.message()).isEqualTo("thread test-rng-thread called the forbidden system call getppid");
        // The rest of the JVM is unaffected: this thread may still call it.
        assertThat(Seccomp.probe("getppid")).isPositive();
    }

    @Test
    void allowedCallsPassAndTheThreadEndsNormally() throws Exception {
        long[] results = confined("test-block-thread", SyscallProfile.BLOCK,
                v -> new long[] {Seccomp.probe("getpid"), Seccomp.probe("getrandom") == -Libc.EPERM ? 1 : 0});

        assertThat(results[0]).isEqualTo(ProcessHandle.current().pid());
        assertThat(results[1]).as("getrandom is not BLOCK's").isEqualTo(1);
        assertThat(violations.poll(30, TimeUnit.SECONDS).syscall()).isEqualTo("getrandom");
    }

    @Test
    void anX32NumberOfAnAllowedCallIsForbidden() throws Exception {
        long result = confined("test-x32", SyscallProfile.RNG, v -> Seccomp.probe(SeccompAbi.__X32_SYSCALL_BIT | Syscalls.number("getpid")));

        assertThat(result).isEqualTo(-Libc.EPERM);
        Seccomp.Violation v = violations.poll(30, TimeUnit.SECONDS);
        assertThat(v.syscall()).isEqualTo("x32 getpid");
        assertThat(v.x86_64()).isFalse();
    }

    @Test
    void aFilteredThreadStartsThreadsThatAreNotFiltered() throws Exception {
        CompletableFuture<Long> childResult = new CompletableFuture<>();
        long[] parent = confined("test-parent", SyscallProfile.VCPU, v -> {
            Thread child = Thread.ofPlatform().name("test-child").unstarted(() -> childResult.complete(Seccomp.probe("getppid")));
            Seccomp.start(child);
            return new long[] {Seccomp.probe("getppid")};
        });

        assertThat(parent[0]).isEqualTo(-Libc.EPERM);
        assertThat(childResult.get(30, TimeUnit.SECONDS)).isPositive();
        assertThat(violations.poll(30, TimeUnit.SECONDS).threadName()).isEqualTo("test-parent");
        assertThat(violations).isEmpty();
    }

    @Test
    void ioctlIsAllowedOnlyWithTheRequestsGivenAndARefusalNamesTheRequest() throws Exception {
        long fionread = 0x541b;
        long tiocsti = 0x5412; // pushes bytes into a terminal's input: what a filter keeps a VMM thread from
        int ioctl = Syscalls.number("ioctl");
        long[] results = confined("test-ioctl", SyscallProfile.RNG, Set.of(fionread), v -> new long[] {
                Libc.syscall(ioctl, -1, fionread, 0, 0, 0, 0), // allowed: the kernel answers, EBADF
                Libc.syscall(ioctl, -1, tiocsti, 0, 0, 0, 0),
                Libc.syscall(ioctl, -1, fionread | 1L << 32, 0, 0, 0, 0)}); // the kernel takes the request as 32 bits

        assertThat(results).containsExactly(-Libc.EBADF, -Libc.EPERM, -Libc.EBADF);
        Seccomp.Violation v = violations.poll(30, TimeUnit.SECONDS);
        assertThat(v).isNotNull();
        assertThat(v.message()).isEqualTo("thread test-ioctl called the forbidden system call ioctl (request 0x5412)");
        assertThat(violations.poll(1, TimeUnit.SECONDS)).isNull();
    }

    @Test
    void aRequestWiderThanTheKernels32BitsIsRefusedWhenTheFilterIsMade() {
        assertThatThrownBy(() -> SyscallProfile.VCPU.filter(Set.of(1L << 32 | 0x541b)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0x10000541b");
    }

    @Test
    void aThreadIsConfinedOnlyOnce() throws Exception {
        String failure = confined("test-twice", SyscallProfile.RNG, v -> {
            try {
                Seccomp.confineCurrentThread(SyscallProfile.FS, Set.of(), violations::add);
                return "installed twice";
            } catch (IllegalStateException e) {
                return e.getMessage();
            }
        });
        assertThat(failure).contains("already has a seccomp filter (RNG)");
    }

    @Test
    void aConfinedThreadCanBeSampledByJavaFlightRecorder() throws Exception {
        // JFR's sampler suspends a thread running Java code with a signal; the thread waits in rt_sigsuspend
        // until it is resumed. Forbidden, that wait failed (and the VMM under a profiler hung).
        try (jdk.jfr.Recording recording = new jdk.jfr.Recording()) {
            recording.enable("jdk.ExecutionSample").withPeriod(java.time.Duration.ofMillis(1));
            recording.start();
            long sum = confined("test-sampled", SyscallProfile.VCPU, v -> {
                long deadline = System.nanoTime() + 1_000_000_000L;
                long s = 0;
                while (System.nanoTime() < deadline) {
                    s += Long.numberOfTrailingZeros(s + System.nanoTime());
                }
                return s;
            });
            recording.stop();
            assertThat(sum).isPositive();
        }
        assertThat(violations).isEmpty();
    }

    @Test
    void everyProfileNamesOnlyRealSystemCalls() {
        for (SyscallProfile p : SyscallProfile.values()) {
            assertThat(p.filter(Set.of()).program()).as(p.name()).isNotEmpty(); // Syscalls.number throws for an unknown name
            assertThat(p.syscalls()).containsAll(SyscallProfile.JVM);
        }
        assertThat(SyscallProfile.VCPU.syscalls()).contains("ioctl").doesNotContain("socket", "openat", "execve", "clone");
        assertThat(List.of(SyscallProfile.values())).allSatisfy(p -> assertThat(p.syscalls()).doesNotContain("execve", "clone", "clone3", "ptrace"));
    }
}
