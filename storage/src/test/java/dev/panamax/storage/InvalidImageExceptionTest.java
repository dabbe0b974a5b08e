package dev.panamax.storage;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What a bad image raises is cheap to raise: a hostile table can raise one per entry. */
class InvalidImageExceptionTest {
    @Test
    void aBadImageIsReportedByItsMessageWithoutAStackTraceAndItsCauseKeepsOne() {
        IOException cause = new IOException("read failed");
        List<InvalidImageException> raised = List.of(new InvalidImageException("disk.vhd: block 7 lies past the end"),
                new ImageCorruptException("disk.qcow2: L1 entry 3 is not a valid L2 table offset", cause),
                new DamagedRangeException(4096, 512, "disk.qcow2: L2 table 0 cannot be read", cause));

        for (InvalidImageException e : raised) {
            assertThat(e.getStackTrace()).as(e.getMessage()).isEmpty();
            assertThat(e.getMessage()).startsWith("disk.");
        }
        assertThat(raised.get(1).getCause()).isSameAs(cause);
        assertThat(cause.getStackTrace()).as("a cause from elsewhere keeps its own").isNotEmpty();
    }
}
