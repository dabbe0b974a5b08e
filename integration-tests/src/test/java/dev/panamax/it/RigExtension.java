package dev.panamax.it;

import dev.panamax.rig.HostKvm;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.vm.KvmAcceleration;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives tests a place where real KVM is. A parameter of type {@link RealKvm} gets this host when
 * its /dev/kvm runs guest code at hardware speed (timed by {@link KvmAcceleration}), else the nested {@link Rig}; one of type {@link Rig} always
 * gets the rig. The rig starts on first use and is shared by the test class, then stopped.
 */
public final class RigExtension implements ParameterResolver {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(RigExtension.class);

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        Class<?> type = parameter.getParameter().getType();
        return type == Rig.class || type == RealKvm.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        if (parameter.getParameter().getType() == RealKvm.class && KvmAcceleration.detect().hardware()) return new HostKvm();
        return classContext(context).getStore(NAMESPACE)
                .getOrComputeIfAbsent(StartedRig.class, key -> new StartedRig(Rig.start()), StartedRig.class).rig();
    }

    private static ExtensionContext classContext(ExtensionContext context) {
        ExtensionContext c = context;
        while (c.getTestMethod().isPresent() && c.getParent().isPresent()) c = c.getParent().get();
        return c;
    }

    /** Stops the rig when the class context closes. */
    private record StartedRig(Rig rig) implements ExtensionContext.Store.CloseableResource {
        @Override
        public void close() {
            rig.close();
        }
    }
}
