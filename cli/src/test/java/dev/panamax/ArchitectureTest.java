package dev.panamax;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.Architectures.layeredArchitecture;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.domain.JavaCodeUnit;
import com.tngtech.archunit.core.domain.JavaField;
import com.tngtech.archunit.core.domain.JavaMember;
import com.tngtech.archunit.core.domain.JavaModifier;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchCondition;
import com.tngtech.archunit.lang.ConditionEvents;
import com.tngtech.archunit.lang.SimpleConditionEvent;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The boundaries of Panamax's code, checked by the build rather than remembered: native calls
 * only in the two native packages, no package cycles, modules that depend only downwards (the
 * table in the README's layout section), and a public API that shows no internal type. It reads
 * the main classes of every module on this module's class path, which is all of them but
 * integration-tests'.
 */
class ArchitectureTest {
    private static final String[] NATIVE = {"dev.panamax.sys..", "dev.panamax.kvm.."};
    private static JavaClasses panamax;

    @BeforeAll
    static void importMainClasses() {
        panamax = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .withImportOption(location -> !location.contains("-tests.jar")) // test-jars, as a reactor build after package sees them
                .importPackages("dev.panamax");
    }

    @Test
    void onlyTheNativePackagesMakeNativeCalls() {
        noClasses().that().resideOutsideOfPackages(NATIVE)
                .should().dependOnClassesThat().belongToAnyOf(Linker.class, SymbolLookup.class, FunctionDescriptor.class)
                .orShould().callMethod(MemorySegment.class, "reinterpret", long.class)
                .orShould().accessClassesThat().haveFullyQualifiedName("dev.panamax.sys.Libc")
                .because("native code stays in dev.panamax.sys (libc) and dev.panamax.kvm (KVM); the rest sees typed Java")
                .check(panamax);
    }

    @Test
    void packagesHaveNoCycles() {
        slices().matching("dev.panamax.(**)").should().beFreeOfCycles().check(panamax);
    }

    @Test
    void modulesDependOnlyDownwards() {
        layeredArchitecture().consideringOnlyDependenciesInLayers()
                .layer("vmm-sys").definedBy("dev.panamax.sys..")
                .layer("vmm-core").definedBy("dev.panamax.kvm..", "dev.panamax.vm..", "dev.panamax.boot..", "dev.panamax.x86..",
                        "dev.panamax.demo..")
                .layer("devices").definedBy("dev.panamax.devices..")
                .layer("storage").definedBy("dev.panamax.storage..")
                .layer("virtio").definedBy("dev.panamax.virtio..")
                .layer("guest-kernels").definedBy("dev.panamax.guest..", "dev.panamax.rig..")
                .layer("vmm").definedBy("dev.panamax.vmm..")
                .layer("api").definedBy("dev.panamax.api..")
                .layer("control").definedBy("dev.panamax.control..")
                .layer("command line").definedBy("dev.panamax.cli..")
                .whereLayer("vmm-sys").mayNotAccessAnyLayer()
                .whereLayer("vmm-core").mayOnlyAccessLayers("vmm-sys")
                .whereLayer("devices").mayOnlyAccessLayers("vmm-core", "vmm-sys")
                .whereLayer("storage").mayOnlyAccessLayers("vmm-sys")
                .whereLayer("virtio").mayOnlyAccessLayers("vmm-core", "vmm-sys", "devices", "storage")
                .whereLayer("guest-kernels").mayNotAccessAnyLayer()
                .whereLayer("vmm").mayOnlyAccessLayers("vmm-core", "vmm-sys", "devices", "storage", "virtio")
                .whereLayer("api").mayOnlyAccessLayers("vmm", "vmm-core", "vmm-sys", "devices", "storage", "virtio")
                .whereLayer("control").mayOnlyAccessLayers("api", "vmm", "vmm-core", "vmm-sys", "devices", "storage", "virtio")
                .check(panamax);
    }

    @Test
    void everyClassBelongsToAModule() {
        classes().should().resideInAnyPackage("dev.panamax.sys..", "dev.panamax.kvm..", "dev.panamax.vm..", "dev.panamax.boot..",
                        "dev.panamax.x86..", "dev.panamax.demo..", "dev.panamax.devices..", "dev.panamax.storage..", "dev.panamax.virtio..",
                        "dev.panamax.guest..", "dev.panamax.rig..", "dev.panamax.vmm..", "dev.panamax.api..", "dev.panamax.control..",
                        "dev.panamax.cli..")
                .because("a new package must take its place in modulesDependOnlyDownwards")
                .check(panamax);
    }

    @Test
    void thePublicApiShowsNoInternalType() {
        classes().that().resideInAPackage("dev.panamax.api").and().arePublic()
                .should(new ArchCondition<JavaClass>("show only its own and the JDK's types in public signatures") {
                    @Override
                    public void check(JavaClass type, ConditionEvents events) {
                        Stream.concat(type.getRawSuperclass().stream(), type.getRawInterfaces().stream())
                                .forEach(t -> report(type, type.getName() + " extends or implements", t, events));
                        for (JavaMember member : type.getMembers()) {
                            if (!member.getModifiers().contains(JavaModifier.PUBLIC) && !member.getModifiers().contains(JavaModifier.PROTECTED)) {
                                continue;
                            }
                            Set<JavaClass> involved = switch (member) {
                                case JavaField field -> field.getType().getAllInvolvedRawTypes();
                                case JavaCodeUnit code -> Stream.concat(Stream.concat(code.getReturnType().getAllInvolvedRawTypes().stream(),
                                                code.getParameterTypes().stream().flatMap(p -> p.getAllInvolvedRawTypes().stream())),
                                        code.getThrowsClause().getTypes().stream())
                                        .collect(java.util.stream.Collectors.toSet());
                                default -> Set.of();
                            };
                            involved.forEach(t -> report(type, member.getFullName(), t, events));
                        }
                    }

                    private void report(JavaClass owner, String where, JavaClass used, ConditionEvents events) {
                        JavaClass base = used.isArray() ? used.getBaseComponentType() : used;
                        boolean allowed = base.isPrimitive() || base.getPackageName().startsWith("java.")
                                || base.getPackageName().equals("dev.panamax.api");
                        if (!allowed) {
                            events.add(SimpleConditionEvent.violated(owner, where + " shows the internal type " + base.getName()));
                        }
                    }
                })
                .check(panamax);
    }
}
