package dev.panamax.control;

import java.util.Objects;

/**
 * Why the REST API did not do what a request asked: each kind is answered with one HTTP status,
 * and {@link ApiServer} maps the kinds to statuses in one switch. The message is the answer's
 * {@code fault_message}, a sentence for the client. {@link ControlPlane} throws the client's faults;
 * {@link ApiServer} makes {@link Internal} of anything else a request's handling throws.
 *
 * <p>A fault is an answer, not a failure of Panamax: it carries no stack trace.
 */
public abstract sealed class ApiFault extends RuntimeException
        permits ApiFault.BadRequest, ApiFault.WrongState, ApiFault.NotFound, ApiFault.MethodNotAllowed,
                ApiFault.PayloadTooLarge, ApiFault.Internal {

    private ApiFault(String message) {
        super(Objects.requireNonNull(message, "message"), null, false, false);
    }

    /** The request is malformed, or a value in it breaks a rule; the message names the value as the request wrote it. */
    public static final class BadRequest extends ApiFault {
        public BadRequest(String message) {
            super(message);
        }
    }

    /**
     * A well-formed request that the VM cannot take in its current state: a pre-boot resource or a
     * second {@code InstanceStart} after {@code InstanceStart}, a pause or Ctrl-Alt-Del before the VM
     * runs or after it ended. Decided by the {@link ControlPlane}'s own look at the state.
     */
    public static final class WrongState extends ApiFault {
        /**
         * @param what the resource or action, as the request named it
         * @param problem a sentence about the state
         */
        public WrongState(String what, String problem) {
            super(what + ": " + problem);
        }
    }

    /** No resource has the request's path. */
    public static final class NotFound extends ApiFault {
        public NotFound(String message) {
            super(message);
        }
    }

    /** The resource exists but does not accept the request's method. */
    public static final class MethodNotAllowed extends ApiFault {
        private final String allow;

        /** @param allow the methods the resource accepts, for the {@code Allow} header (e.g. {@code "GET, PUT"}) */
        public MethodNotAllowed(String message, String allow) {
            super(message);
            this.allow = Objects.requireNonNull(allow, "allow");
        }

        public String allow() {
            return allow;
        }
    }

    /** The request (its body, request line or headers) is larger than the server accepts. */
    public static final class PayloadTooLarge extends ApiFault {
        public PayloadTooLarge(String message) {
            super(message);
        }
    }

    /**
     * Not the client's fault: handling the request threw something no rule anticipated, a bug in
     * Panamax. The client gets only {@link #MESSAGE}; the server logs the exception.
     */
    public static final class Internal extends ApiFault {
        public static final String MESSAGE = "internal error: Panamax failed to answer this request;"
                + " the log of the process serving the API has the details";

        public Internal() {
            super(MESSAGE);
        }
    }
}
