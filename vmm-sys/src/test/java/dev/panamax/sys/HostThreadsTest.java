package dev.panamax.sys;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

/** Pinning seen the way a user checks it: the thread's {@code Cpus_allowed_list} in {@code /proc/self/task/TID/status}. */
class HostThreadsTest {

    /** Runs {@code action} on a new platform thread, which stays alive until the check is done; returns the check's result. */
    private static <T> T onNewThread(Runnable action, ThrowingFunction<T> check) throws Exception {
        CompletableFuture<Integer> tid = new CompletableFuture<>();
        CountDownLatch done = new CountDownLatch(1);
        Thread t = Thread.ofPlatform().start(() -> {
            try {
                action.run();
                tid.complete(HostThreads.currentThreadId());
                done.await();
            } catch (Throwable e) {
                tid.completeExceptionally(e);
            }
        });
        try {
            return check.apply(tid.get());
        } finally {
            done.countDown();
            t.join();
        }
    }

    interface ThrowingFunction<T> {
        T apply(int tid) throws Exception;
    }

    @Test
    void aPinnedThreadIsAllowedOnlyItsCpusAndOthersKeepTheirs() throws Exception {
        CpuSet online = CpuSet.online();
        int last = online.stream().max().orElseThrow();
        String before = ProcSelf.cpusAllowedList(HostThreads.currentThreadId());

        String pinned = onNewThread(() -> HostThreads.pinCurrentThread(CpuSet.of(last)), ProcSelf::cpusAllowedList);

        assertThat(pinned).isEqualTo(String.valueOf(last));
        assertThat(ProcSelf.cpusAllowedList(HostThreads.currentThreadId())).as("the calling thread, unchanged").isEqualTo(before);
    }

    @Test
    void aMaskLargerThanCpuSetTIsAcceptedAndCpusTheHostLacksAreDropped() throws Exception {
        int first = CpuSet.online().stream().min().orElseThrow();

        String pinned = onNewThread(() -> HostThreads.pinCurrentThread(CpuSet.of(first, 5000)), ProcSelf::cpusAllowedList);

        assertThat(pinned).isEqualTo(String.valueOf(first));
    }

    @Test
    void currentAffinityReadsWhatPinningSet() throws Exception {
        int last = CpuSet.online().stream().max().orElseThrow();
        CompletableFuture<CpuSet> seen = new CompletableFuture<>();
        Thread.ofPlatform().start(() -> {
            HostThreads.pinCurrentThread(CpuSet.of(last));
            seen.complete(CpuSet.ofCurrentThread());
        }).join();
        assertThat(seen.get()).isEqualTo(CpuSet.of(last));
    }

    @Test
    void onlyCpusTheHostLacksIsRefusedByTheKernel() throws Exception {
        CompletableFuture<Throwable> failure = new CompletableFuture<>();
        Thread.ofPlatform().start(() -> {
            try {
                HostThreads.pinCurrentThread(CpuSet.of(CpuSet.MAX_CPUS - 1));
                failure.complete(null);
            } catch (Throwable e) {
                failure.complete(e);
            }
        }).join();
        assertThat(failure.get()).isInstanceOf(NativeCallException.class).hasMessageContaining("sched_setaffinity");
        assertThatThrownBy(() -> HostThreads.pinCurrentThread(CpuSet.parse("0").minus(CpuSet.parse("0"))))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
