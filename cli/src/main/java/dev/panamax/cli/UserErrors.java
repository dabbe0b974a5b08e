package dev.panamax.cli;

import dev.panamax.cli.common.UserError;
import picocli.CommandLine.IExecutionExceptionHandler;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine;

/**
 * Prints a {@link UserError} as one line and exits with status 2 ({@link PrivilegeDrop#EXIT_NO_PERMISSION} for a
 * {@link PrivilegeDrop.Refused}); anything else is a bug and keeps its trace.
 */
final class UserErrors implements IExecutionExceptionHandler {
    @Override
    public int handleExecutionException(Exception e, CommandLine cmd, ParseResult parsed) {
        if (e instanceof UserError) {
            cmd.getErr().println("panamax: " + e.getMessage());
            return e instanceof PrivilegeDrop.Refused ? PrivilegeDrop.EXIT_NO_PERMISSION : Panamax.EXIT_USAGE;
        }
        cmd.getErr().println("panamax: internal error: " + e);
        e.printStackTrace(cmd.getErr());
        return 70; // EX_SOFTWARE
    }
}
