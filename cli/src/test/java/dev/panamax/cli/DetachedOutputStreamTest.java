package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;

class DetachedOutputStreamTest {

    @Test
    void deliversInOrderAndClosesTheTarget() {
        ByteArrayOutputStream target = new ByteArrayOutputStream();
        DetachedOutputStream out = new DetachedOutputStream(target, "test-writer");
        for (int i = 0; i < 1000; i++) {
            out.write(("line " + i + "\n").getBytes());
        }
        out.close();
        assertThat(target.toString().lines()).hasSize(1000).startsWith("line 0").endsWith("line 999");
        assertThat(out.droppedBytes()).isZero();
    }

    @Test
    void aStuckReaderNeverBlocksTheWriterAndOutputIsDroppedAndCounted() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        OutputStream stuck = new OutputStream() {
            @Override
            public void write(int b) {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        DetachedOutputStream out = new DetachedOutputStream(stuck, "test-writer");
        byte[] line = new byte[100];
        for (int i = 0; i < 10_000; i++) {
            out.write(line); // returns at once although nothing is read
        }
        assertThat(out.droppedBytes()).isPositive();
        release.countDown();
        out.close();
    }
}
