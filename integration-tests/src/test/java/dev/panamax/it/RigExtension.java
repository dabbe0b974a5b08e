package dev.panamax.it;

import dev.panamax.demo.KvmAcceleration;
import dev.panamax.rig.HostKvm;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.SharedRig;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives tests a place where real KVM is. A parameter of type {@link RealKvm} gets this host when
 * its /dev/kvm runs guest code at hardware speed (timed by {@link KvmAcceleration}), else the run's
 * {@link SharedRig} (which retries a command the rig died under); one of type {@link Rig} always
 * gets the rig itself.
 */
public final class RigExtension implements ParameterResolver {

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        Class<?> type = parameter.getParameter().getType();
        return type == Rig.class || type == RealKvm.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        if (parameter.getParameter().getType() == RealKvm.class && KvmAcceleration.detect().hardware()) return new HostKvm();
        SharedRig shared = SharedRig.of(context);
        return parameter.getParameter().getType() == Rig.class ? shared.rig() : shared;
    }
}
