package dev.panamax.virtio;

import java.time.Duration;

/** Counts the interrupts a device raises, and lets a test wait for them. */
public final class CountingInterrupts implements VirtioInterrupts {
    private final int[] queue;
    private int config;

    public CountingInterrupts(int queueCount) {
        queue = new int[queueCount];
    }

    @Override
    public synchronized void queue(int queueIndex) {
        queue[queueIndex]++;
        notifyAll();
    }

    @Override
    public synchronized void config() {
        config++;
        notifyAll();
    }

    public synchronized int queueCount(int queueIndex) {
        return queue[queueIndex];
    }

    public synchronized int configCount() {
        return config;
    }

    /** Waits until queue {@code queueIndex} has had at least {@code count} interrupts. */
    public synchronized void awaitQueue(int queueIndex, int count, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (queue[queueIndex] < count) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new AssertionError("queue " + queueIndex + " had " + queue[queueIndex] + " interrupts, expected " + count);
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }
}
