package dev.panamax.it;

import dev.panamax.junit.PanamaxTest;
import java.util.Comparator;
import org.junit.jupiter.api.ClassDescriptor;
import org.junit.jupiter.api.ClassOrderer;
import org.junit.jupiter.api.ClassOrdererContext;

/**
 * The order of this module's test classes (junit-platform.properties): those that start rigs of their own (the
 * command line's, the warm one) first, then the {@link PanamaxTest} classes, which share the run's one rig, back to
 * back. Interleaved, the shared rig stood idle through the others' rig starts, using CPU beside them, or was stopped
 * after a minute unused and booted again for the next class: three to four boots more a run.
 */
public final class PrivateRigsFirst implements ClassOrderer {
    @Override
    public void orderClasses(ClassOrdererContext context) {
        context.getClassDescriptors().sort(Comparator.comparing((ClassDescriptor c) -> c.isAnnotated(PanamaxTest.class))
                .thenComparing(c -> c.getTestClass().getName()));
    }
}
