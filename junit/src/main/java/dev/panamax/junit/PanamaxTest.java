package dev.panamax.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A test class with a booted tiny Linux guest: a field or parameter of type {@link Guest} gets it.
 * The guest boots on first use and serves every test of the class; it stops after the class. By
 * default each test starts from a snapshot of the freshly booted guest ({@link Reset#SNAPSHOT}).
 *
 * <p>A test that runs commands of its own where KVM is real (a {@code panamax} command line, a Java
 * main using the API) takes a parameter of type {@link dev.panamax.rig.RealKvm}: this host where its
 * KVM is hardware-fast, else the test run's rig, the one its guests run in.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Documented
@Inherited
@ExtendWith(PanamaxExtension.class)
public @interface PanamaxTest {
    /** The kernel (a vmlinux or bzImage with virtio-vsock); empty: Panamax's built-in tiny kernel. */
    String kernel() default "";

    /** The initramfs (one with Panamax's /init and /bin/panamax-agent); empty: the built-in one. */
    String initramfs() default "";

    /**
     * Host directories the guest mounts, each {@code DIR[,tag=T][,readonly]} (relative to the working
     * directory), at {@code /mnt/T}; T is the directory's name unless given.
     */
    String[] shares() default {};

    /** vCPUs. */
    int cpus() default 1;

    /** Guest RAM in MiB. */
    int memoryMib() default 256;

    /** How long {@link Guest#exec(String, String...)} lets a command run on hardware KVM; ten times that in the rig. */
    int execTimeoutSeconds() default 60;

    /**
     * Whether each test starts from a snapshot of the booted guest ({@link Reset#SNAPSHOT}, the default) or
     * finds the guest as the test before left it ({@link Reset#NONE}). The {@link #shares} are not reset:
     * they are the host's directories.
     */
    Reset reset() default Reset.SNAPSHOT;
}
