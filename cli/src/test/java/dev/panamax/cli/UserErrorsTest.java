package dev.panamax.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.common.UserError;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.concurrent.Callable;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The one place a command's exception becomes an exit status: bad input is 2 in one line, a bug is 70 with its trace. */
class UserErrorsTest {
    @Command(name = "fails")
    private record Failing(RuntimeException thrown) implements Callable<Integer> {
        @Override
        public Integer call() {
            throw thrown;
        }
    }

    private record Outcome(int status, String err) {}

    private static Outcome run(RuntimeException thrown) {
        StringWriter err = new StringWriter();
        CommandLine cli = new CommandLine(new Failing(thrown));
        cli.setErr(new PrintWriter(err, true));
        cli.setExecutionExceptionHandler(new UserErrors());
        return new Outcome(cli.execute(), err.toString());
    }

    @Test
    void aUserErrorIsOneLineAndStatus2() {
        Outcome o = run(new UserError("--cpus: 0 vCPUs is out of range: a guest has 1 to 254"));
        assertThat(o.status()).isEqualTo(Panamax.EXIT_USAGE);
        assertThat(o.err()).isEqualTo("panamax: --cpus: 0 vCPUs is out of range: a guest has 1 to 254" + System.lineSeparator());
    }

    @Test
    void anythingElseIsAnInternalErrorWithItsTraceNotBadInput() {
        for (RuntimeException bug : new RuntimeException[] {new IllegalStateException("cannot start a VM that is running"),
                new UnsupportedOperationException("not written yet")}) {
            Outcome o = run(bug);
            assertThat(o.status()).isEqualTo(70);
            assertThat(o.err()).startsWith("panamax: internal error: " + bug + System.lineSeparator())
                    .contains("\tat " + UserErrorsTest.class.getName() + ".");
        }
    }
}
