package dev.panamax.rig;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A test class that needs {@code /dev/kvm}. On a host that has one (an emulating one included) it
 * runs as any other; on a host without, {@link KvmTestsInRig} runs it inside the nested KVM rig and
 * each of its tests passes or fails here as it did there.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@ExtendWith(KvmTestsInRig.class)
public @interface UsesKvm {}
