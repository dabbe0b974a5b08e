package dev.panamax.junit;

import dev.panamax.cli.Panamax;
import dev.panamax.demo.KvmAcceleration;
import dev.panamax.guest.GuestImages;
import dev.panamax.rig.HostKvm;
import dev.panamax.rig.RealKvm;
import dev.panamax.rig.Rig;
import dev.panamax.rig.SharedRig;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;
import org.junit.jupiter.api.extension.TestInstancePostProcessor;
import org.junit.platform.commons.support.AnnotationSupport;
import org.junit.platform.commons.support.HierarchyTraversalMode;
import org.junit.platform.commons.support.ReflectionSupport;

/**
 * The extension behind {@link PanamaxTest}: boots the class's guest on first use (a {@link Guest}
 * field or parameter), shares it with every test of the class, stops it after the class, and attaches
 * the console's end and the kernel log to a failed test's report. With {@link Reset#SNAPSHOT}, before
 * each test it brings the guest back to the snapshot taken after the boot when a command ran since.
 *
 * <p>Where it runs: this host when its /dev/kvm is hardware-fast, else the nested KVM rig, started
 * on first use and shared by the classes in turn (the rig runs one command at a time, so classes
 * with guests run one after another there); stopped when no class has used it for a minute. Tests
 * that run commands of their own take a {@link RealKvm} parameter for the same place.
 */
public final class PanamaxExtension implements ParameterResolver, TestInstancePostProcessor, BeforeEachCallback, TestExecutionExceptionHandler {
    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(PanamaxExtension.class);
    /** How much slower commands run in the rig's nested guests than on hardware KVM; their default timeout is scaled by it. */
    static final int RIG_SLOWDOWN = 10;
    /** How long a boot may take: the rig's start, a JVM in it, the guest's boot. */
    private static final Duration BOOT_TIMEOUT = Duration.ofMinutes(10);
    /**
     * What the start-up cache of the JVMs tests start in the rig is trained on: Panamax's CLI booting
     * the tiny guest to its end, what most of those JVMs do first (a JVM there spends 10-20 s loading
     * classes before its guest runs).
     */
    private static final Rig.JvmTraining BOOT_TRAINING = new Rig.JvmTraining(Panamax.class.getName(), () -> List.of(
            "run", "--no-rig", "--timeout", "180", "--memory", "128M", "--kernel", GuestImages.defaultVmlinux().toString(),
            "--initrd", GuestImages.defaultInitramfs().toString(), "--cmdline", "quiet panamax.run=\"true\""));
    /**
     * A guest server silent this long is stuck: a JVM starting in the rig and its guest's first console lines take
     * under a minute there, several on a loaded machine. QEMU's software CPU under the rig has been seen to wedge
     * (a quickstart run here heard nothing for 10 minutes): such a guest boots once more in a fresh rig, as does one
     * whose rig stopped under its boot (the rig's own watchdog takes a rig that answers no ping for a minute for wedged).
     */
    private static final Duration SILENT_SERVER = Duration.ofMinutes(4);
    /** Lines of the console attached to a failed test's report. */
    private static final int CONSOLE_LINES_REPORTED = 60;
    /** Lines of the kernel log attached. */
    private static final int KERNEL_LOG_LINES_REPORTED = 200;

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        Class<?> type = parameter.getParameter().getType();
        return type == Guest.class || type == RealKvm.class || type == Rig.class;
    }

    /**
     * A {@link Guest}: the class's guest. A {@link RealKvm}: where this run's guests run, for the
     * test's own commands (a {@code panamax} command line, a Java main that uses the API); one of
     * type {@link Rig}: the rig itself, on any host. Either keeps the rig from stopping as idle
     * until the test (or class, for a constructor's) has ended.
     */
    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        Class<?> type = parameter.getParameter().getType();
        if (type == Guest.class) return guest(context);
        Places places = places(context);
        Object place = type == Rig.class ? places.rig() : places.commandsPlace();
        context.getStore(NAMESPACE).put(new Object(), (ExtensionContext.Store.CloseableResource) places::release);
        return place;
    }

    /** Sets every instance field of type {@link Guest} (static ones are refused: the guest is the class's, per instance). */
    @Override
    public void postProcessTestInstance(Object instance, ExtensionContext context) throws IllegalAccessException {
        List<Field> fields = ReflectionSupport.findFields(instance.getClass(), f -> f.getType() == Guest.class,
                HierarchyTraversalMode.TOP_DOWN);
        for (Field f : fields) {
            if (Modifier.isStatic(f.getModifiers()) || Modifier.isFinal(f.getModifiers())) {
                throw new ExtensionConfigurationException("field " + f.getName() + " of " + instance.getClass().getSimpleName()
                        + ": a Guest field must be neither static nor final (it is set on each test instance)");
            }
            f.setAccessible(true);
            f.set(instance, guest(context));
        }
    }

    /**
     * Restores the class's guest from its snapshot when the tests before this one changed it (ran a
     * command), or boots it again where the rig stopped under it ({@link ClassGuest#prepareForTest}); the
     * guest boots later, at first use, when no test used it yet.
     */
    @Override
    public void beforeEach(ExtensionContext context) {
        BootedClass b = owner(context).getStore(NAMESPACE).get(BootedClass.class, BootedClass.class);
        if (b != null && b.guest != null) b.guest.prepareForTest();
    }

    /** Attaches the console's end and the kernel log to the report of a test that failed, then lets the failure go on. */
    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable failure) throws Throwable {
        Optional<GuestConnection> guest = existingGuest(context);
        if (guest.isPresent()) attachDiagnostics(guest.get(), failure, context::publishReportEntry);
        throw failure;
    }

    /**
     * Publishes the console's end ({@code panamax.console}) and the kernel log's ({@code panamax.kernel-log})
     * as report entries, and adds both to {@code failure} as a suppressed {@link GuestDiagnostics}, so
     * that a report without entries (surefire's text files) shows them too.
     */
    static void attachDiagnostics(GuestConnection guest, Throwable failure, BiConsumer<String, String> publish) {
        String console = reportable(guest.consoleTail(CONSOLE_LINES_REPORTED));
        String kernelLog = reportable(kernelLogTail(guest));
        try {
            publish.accept("panamax.console", console);
            publish.accept("panamax.kernel-log", kernelLog);
        } catch (RuntimeException e) { // the test's own failure is what the report must show
            failure.addSuppressed(e);
        }
        failure.addSuppressed(new GuestDiagnostics("the guest (" + guest.where() + ") at this failure; its console ended with:\n"
                + console + "\n-- its kernel log ended with:\n" + kernelLog));
    }

    /** {@code text}, or a word for none: JUnit refuses a blank report entry. */
    static String reportable(String text) {
        return text.isBlank() ? "(empty)" : text;
    }

    private static String kernelLogTail(GuestConnection g) {
        if (!g.alive()) return "(the guest has ended)";
        try {
            List<String> lines = g.kernelLog().lines().toList();
            return String.join("\n", lines.subList(Math.max(0, lines.size() - KERNEL_LOG_LINES_REPORTED), lines.size()));
        } catch (GuestException e) {
            return "(not read: " + e.getMessage().lines().findFirst().orElse("") + ")";
        }
    }

    /** The guest's state beside a failure (no stack trace: it is not where anything was thrown). */
    static final class GuestDiagnostics extends Exception {
        private static final long serialVersionUID = 1L;

        GuestDiagnostics(String message) {
            super(message, null, false, false);
        }
    }

    /** The context of the class that carries {@link PanamaxTest}, at or above {@code context}. */
    private static ExtensionContext owner(ExtensionContext context) {
        for (ExtensionContext c = context; ; c = c.getParent().orElseThrow()) {
            if (c.getTestMethod().isEmpty() && c.getTestClass().isPresent()
                    && AnnotationSupport.isAnnotated(c.getTestClass().get(), PanamaxTest.class)) {
                return c;
            }
            if (c.getParent().isEmpty()) {
                throw new ExtensionConfigurationException("a Guest is only given to a class annotated @PanamaxTest");
            }
        }
    }

    /** The test run's places. */
    private static Places places(ExtensionContext context) {
        return context.getRoot().getStore(NAMESPACE).getOrComputeIfAbsent(Places.class, k -> new Places(), Places.class);
    }

    private static Optional<GuestConnection> existingGuest(ExtensionContext context) {
        BootedClass b = owner(context).getStore(NAMESPACE).get(BootedClass.class, BootedClass.class);
        return b == null || b.guest == null ? Optional.empty() : Optional.of(b.guest.connection());
    }

    private static Guest guest(ExtensionContext context) {
        ExtensionContext owner = owner(context);
        BootedClass b = owner.getStore(NAMESPACE).getOrComputeIfAbsent(BootedClass.class, k -> boot(owner), BootedClass.class);
        if (b.failure != null) throw new GuestException("the class's guest did not boot: " + b.failure.getMessage(), b.failure);
        return b.guest;
    }

    /** Boots the class's guest; a failure is kept, so that every test of the class reports it without booting again. */
    private static BootedClass boot(ExtensionContext owner) {
        try {
            PanamaxTest a = AnnotationSupport.findAnnotation(owner.getRequiredTestClass(), PanamaxTest.class).orElseThrow();
            GuestSpec spec;
            try {
                spec = GuestSpec.of(a);
            } catch (IllegalArgumentException e) {
                throw new ExtensionConfigurationException("@PanamaxTest on " + owner.getRequiredTestClass().getSimpleName() + ": "
                        + e.getMessage(), e);
            }
            Places places = places(owner);
            RealKvm place = places.placeFor(spec.hostDirectories());
            try {
                ClassGuest guest = new ClassGuest(bootIn(place, places, spec, a), spec.reset(),
                        () -> bootIn(places.freshRig(), places, spec, a));
                return new BootedClass(guest, null, places);
            } catch (RuntimeException e) {
                places.release();
                throw e;
            }
        } catch (RuntimeException e) {
            return new BootedClass(null, e, null);
        }
    }

    private static GuestConnection bootIn(RealKvm place, Places places, GuestSpec spec, PanamaxTest a) {
        boolean inRig = place instanceof Rig;
        Duration execTimeout = Duration.ofSeconds((long) a.execTimeoutSeconds() * (inRig ? RIG_SLOWDOWN : 1));
        String where = inRig ? "the nested KVM rig" : "this host";
        GuestConnection guest;
        try {
            guest = GuestConnection.start(place, where, GuestServer.class.getName(), spec.serverArgs(), execTimeout, BOOT_TIMEOUT, SILENT_SERVER);
        } catch (GuestConnection.StuckPlaceException e) {
            if (!inRig) throw new GuestException(e.getMessage());
            System.err.println("panamax-junit: " + e.getMessage() + "; booting once more in a fresh rig");
            try {
                guest = GuestConnection.start(places.freshRig(), where, GuestServer.class.getName(), spec.serverArgs(), execTimeout,
                        BOOT_TIMEOUT, SILENT_SERVER);
            } catch (GuestConnection.StuckPlaceException again) {
                throw new GuestException(again.getMessage() + ", twice, each time in a fresh rig");
            }
        }
        return guest;
    }

    /** A class's guest (or why it has none), stopped with the class; then its place is free again. */
    private record BootedClass(ClassGuest guest, RuntimeException failure, Places places)
            implements ExtensionContext.Store.CloseableResource {
        @Override
        public void close() {
            try {
                if (guest != null) guest.close();
            } finally {
                if (places != null) places.release();
            }
        }
    }

    /**
     * Where guests and commands run in this test run: this host, or one rig kept for every class
     * (restarted only to see more directories), stopped once idle for {@link #IDLE_RIG}.
     */
    static final class Places implements ExtensionContext.Store.CloseableResource {
        /**
         * A rig no class has used for this long is stopped, and started again when a class needs
         * one: an idle rig's QEMU holds the memory its JVMs and guests touched (from 0.4 GiB after
         * its boot up to its 4 GiB), and classes with guests often come far apart in a run; a start
         * costs 10-15 s.
         */
        static final Duration IDLE_RIG = Duration.ofSeconds(60);
        private static final ScheduledExecutorService IDLE_TIMER = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().daemon().name("panamax-junit-idle-rig").unstarted(r));

        private final Duration idleRig;
        private Boolean hardware; // guarded by this
        private SharedRig rig; // sees every directory a class asked for so far; guarded by this
        private int users; // classes with a guest or tests with commands in the rig; guarded by this
        private ScheduledFuture<?> idleStop; // guarded by this

        Places() {
            this(IDLE_RIG);
        }

        Places(Duration idleRig) {
            this.idleRig = idleRig;
        }

        /** Where the next class's guest runs; {@link #release} says when it has ended. */
        synchronized RealKvm placeFor(List<Path> directories) {
            RealKvm place = hardware() ? new HostKvm() : rigSeeing(directories).rig();
            use();
            return place;
        }

        /**
         * Where a test's own commands run: this host, or the shared rig, which runs a command once
         * more in a fresh rig when the rig stopped under it; {@link #release} says when the test has ended.
         */
        synchronized RealKvm commandsPlace() {
            RealKvm place = hardware() ? new HostKvm() : rigSeeing(List.of());
            use();
            return place;
        }

        /** The rig itself, on any host (for tests of the rig); {@link #release} says when the test has ended. */
        synchronized Rig rig() {
            Rig r = rigSeeing(List.of()).rig();
            use();
            return r;
        }

        private boolean hardware() {
            if (hardware == null) hardware = KvmAcceleration.detect().hardware();
            return hardware;
        }

        private void use() {
            if (idleStop != null) idleStop.cancel(false);
            idleStop = null;
            users++;
        }

        /** The shared rig, replaced by one that also shares {@code directories} if it does not see them all. */
        private SharedRig rigSeeing(List<Path> directories) {
            if (rig != null && directories.stream().allMatch(d -> rig.options().shows(d, true))) return rig;
            Rig.Options options = rig == null ? Rig.Options.defaults().withJvmTraining(BOOT_TRAINING) : rig.options();
            for (Path d : directories) {
                if (!options.shows(d, true)) options = options.withShare(d, false);
            }
            if (rig != null) rig.close();
            rig = new SharedRig(options);
            return rig;
        }

        /** A class's guest or a test's commands have ended; the rig stops when nothing uses it within {@link #idleRig}. */
        synchronized void release() {
            users--;
            if (users == 0 && rig != null) idleStop = IDLE_TIMER.schedule(this::stopIdleRig, idleRig.toMillis(), TimeUnit.MILLISECONDS);
        }

        /** The running rig, if any (for tests). */
        synchronized Optional<Rig> runningRig() {
            return rig == null ? Optional.empty() : rig.running();
        }

        private synchronized void stopIdleRig() {
            if (users > 0 || rig == null) return;
            rig.close(); // its options stay: the next rig sees the same directories
        }

        /** Stops the rig (a stuck one) and starts another with its options. */
        synchronized Rig freshRig() {
            rig.close();
            return rig.rig();
        }

        @Override
        public synchronized void close() {
            if (idleStop != null) idleStop.cancel(false);
            if (rig != null) rig.close();
        }
    }
}
