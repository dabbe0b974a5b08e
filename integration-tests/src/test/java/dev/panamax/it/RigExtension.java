package dev.panamax.it;

import dev.panamax.demo.KvmAcceleration;
import dev.panamax.rig.HostKvm;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.RigStoppedException;
import dev.panamax.rig.RunResult;
import java.io.InputStream;
import java.io.OutputStream;
import java.time.Duration;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives tests a place where real KVM is. A parameter of type {@link RealKvm} gets this host when
 * its /dev/kvm runs guest code at hardware speed (timed by {@link KvmAcceleration}), else the nested {@link Rig}; one of type {@link Rig} always
 * gets the rig. The rig starts on first use and is shared by the test class, then stopped.
 *
 * <p>QEMU's software CPU under the rig has been seen to hang (both of its CPUs in soft lockup) or
 * crash a JVM. When the rig stops under a command, the {@link RealKvm} tests get starts a fresh rig
 * and runs the command once more, saying so on stderr: the command never finished, so its test has
 * not failed yet. Guests in the rig also triple-fault now and then (seen in boot tests and in
 * snapshot tests, at different places in the guest, with nothing in common but the rig): a command
 * whose output reports a guest's triple fault runs once more too, saying so. Any other failure or
 * timeout in a healthy rig is not retried.
 */
public final class RigExtension implements ParameterResolver {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(RigExtension.class);
    /** How Panamax reports a guest's triple fault; no test here makes one on purpose. */
    private static final String NESTED_TRIPLE_FAULT = "triple fault: KVM_EXIT_SHUTDOWN";

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        Class<?> type = parameter.getParameter().getType();
        return type == Rig.class || type == RealKvm.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        if (parameter.getParameter().getType() == RealKvm.class && KvmAcceleration.detect().hardware()) return new HostKvm();
        SharedRig shared = classContext(context).getStore(NAMESPACE).getOrComputeIfAbsent(SharedRig.class, key -> new SharedRig(), SharedRig.class);
        return parameter.getParameter().getType() == Rig.class ? shared.rig() : shared;
    }

    private static ExtensionContext classContext(ExtensionContext context) {
        ExtensionContext c = context;
        while (c.getTestMethod().isPresent() && c.getParent().isPresent()) c = c.getParent().get();
        return c;
    }

    /** The test class's rig, started on first use, replaced when it stops under a command, stopped with the class. */
    private static final class SharedRig implements RealKvm, ExtensionContext.Store.CloseableResource {
        private Rig rig; // guarded by this

        synchronized Rig rig() {
            if (rig == null) rig = Rig.start();
            return rig;
        }

        private RunResult once(List<String> argv, InputStream input, Function<Rig, RunResult> command) {
            RunResult result = inARig(argv, input, command);
            if (input == null && result.output().contains(NESTED_TRIPLE_FAULT)) {
                System.err.println("panamax tests: a guest triple-faulted in the rig (nested SVM under QEMU's software CPU does"
                        + " this now and then); running " + argv.getFirst() + " once more");
                return inARig(argv, input, command);
            }
            return result;
        }

        private RunResult inARig(List<String> argv, InputStream input, Function<Rig, RunResult> command) {
            try {
                return command.apply(rig());
            } catch (RigStoppedException e) {
                if (input != null) throw e; // its input is spent: it cannot run again as it was
                System.err.println("panamax tests: " + e.getMessage().lines().findFirst().orElse("") + "; running "
                        + argv.getFirst() + " once more in a fresh rig");
                synchronized (this) {
                    rig.close();
                    rig = null;
                }
                return command.apply(rig());
            }
        }

        @Override
        public RunResult run(List<String> argv, Duration timeout, OutputStream echo, InputStream input) {
            return once(argv, input, r -> r.run(argv, timeout, echo, input));
        }

        @Override
        public RunResult runJava(String mainClass, List<String> args, Duration timeout, OutputStream echo, InputStream input) {
            return once(List.of(mainClass), input, r -> r.runJava(mainClass, args, timeout, echo, input));
        }

        @Override
        public List<String> jvmOptions() {
            return rig().jvmOptions();
        }

        @Override
        public synchronized void close() {
            if (rig != null) rig.close();
        }
    }
}
