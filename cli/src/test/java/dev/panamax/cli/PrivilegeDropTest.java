package dev.panamax.cli;

import static dev.panamax.cli.CliRun.panamax;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.control.ApiClient;
import dev.panamax.control.TestKernels;
import dev.panamax.rig.Rig;
import dev.panamax.rig.UsesKvm;
import dev.panamax.sys.Credentials;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code run --uid/--gid}: the options, and the drop itself in JVMs of their own (it cannot be undone in this one). */
@UsesKvm
class PrivilegeDropTest {
    @TempDir Path dir;

    private static final long NOBODY = 65534;

    @Test
    void bothOptionsAreNumbersAndRootIsNoDestination() {
        assertThat(PrivilegeDrop.parse(null, null)).isNull();
        PrivilegeDrop drop = PrivilegeDrop.parse("65534", "100");
        assertThat(drop.uid()).isEqualTo(65534);
        assertThat(drop.gid()).isEqualTo(100);
        assertThat(PrivilegeDrop.parse("4294967294", "0").uid()).isEqualTo(4294967294L);
        assertRefused("--uid needs --gid", "run", "--no-rig", "--uid", "65534");
        assertRefused("--gid needs --uid", "run", "--no-rig", "--gid", "65534");
        assertRefused("--uid nobody: not a number from 0 to 4294967294; a name is looked up with id -u USER", "run", "--uid", "nobody",
                "--gid", "1");
        assertRefused("--gid -1: not a number", "run", "--uid", "1", "--gid", "-1");
        assertRefused("--uid 4294967295: not a number", "run", "--uid", "4294967295", "--gid", "1");
        assertRefused("--gid 99999999999: not a number", "run", "--uid", "1", "--gid", "99999999999");
        assertRefused("--uid 0 is root, which gives nothing up", "run", "--uid", "0", "--gid", "0");
    }

    private static void assertRefused(String expected, String... args) {
        CliRun r = panamax(args);
        assertThat(r.status()).as(r.err()).isEqualTo(2);
        assertThat(r.err().strip()).startsWith("panamax: ").contains(expected).doesNotContain("\n");
    }

    @Test
    void aRefusedDropEndsRunWithItsOwnStatus() {
        CommandLine cli = new CommandLine(new Panamax());
        assertThat(new UserErrors().handleExecutionException(new PrivilegeDrop.Refused("no"), cli, null))
                .isEqualTo(PrivilegeDrop.EXIT_NO_PERMISSION).isEqualTo(77);
    }

    @Test
    void everyThreadMustShowTheNewUserGroupAndNoNewPrivs() {
        Credentials.ThreadCredentials good = thread(1, NOBODY, NOBODY, List.of(), true, 0);
        assertThat(PrivilegeDrop.misfits(List.of(good, thread(2, NOBODY, NOBODY, List.of(), true, 0)), NOBODY, NOBODY, true)).isEmpty();
        assertThat(PrivilegeDrop.misfits(List.of(good, thread(2, 0, NOBODY, List.of(), true, 0)), NOBODY, NOBODY, true))
                .singleElement().asString().startsWith("thread 2 (t2): uids [0, 0, 0, 0]");
        assertThat(PrivilegeDrop.misfits(List.of(thread(3, NOBODY, 0, List.of(), true, 0)), NOBODY, NOBODY, true)).hasSize(1);
        assertThat(PrivilegeDrop.misfits(List.of(thread(4, NOBODY, NOBODY, List.of(), false, 0)), NOBODY, NOBODY, true)).hasSize(1);
        assertThat(PrivilegeDrop.misfits(List.of(thread(5, NOBODY, NOBODY, List.of(0L), true, 0)), NOBODY, NOBODY, true)).hasSize(1);
        assertThat(PrivilegeDrop.misfits(List.of(thread(6, NOBODY, NOBODY, List.of(), true, 1L << 21)), NOBODY, NOBODY, true)).hasSize(1);
        assertThat(PrivilegeDrop.misfits(List.of(), NOBODY, NOBODY, true)).containsExactly("/proc/self/task lists no thread");
        assertThat(PrivilegeDrop.misfits(List.of(thread(7, 1000, 1000, List.of(1000L, 27L), true, 0)), 1000, 1000, false))
                .as("a user who stays itself keeps its groups").isEmpty();
    }

    private static Credentials.ThreadCredentials thread(int tid, long uid, long gid, List<Long> groups, boolean nnp, long caps) {
        return new Credentials.ThreadCredentials(tid, "t" + tid, List.of(uid, uid, uid, uid), List.of(gid, gid, gid, gid), groups, nnp,
                caps, caps);
    }

    @Test
    void writableDirectoriesAreJudgedByTheUsersClass() throws IOException {
        PrivilegeDrop nobody = PrivilegeDrop.parse("65534", "65534");
        Path d = Files.createDirectory(dir.resolve("d"));
        Files.setPosixFilePermissions(d, PosixFilePermissions.fromString("rwxr-xr-x"));
        assertThat(nobody.mayWriteIn(d)).isFalse();
        Files.setPosixFilePermissions(d, PosixFilePermissions.fromString("rwxrwxrwx"));
        assertThat(nobody.mayWriteIn(d)).isTrue();
        assumeTrue(Credentials.effectiveUserId() == 0, "chown needs root");
        Files.setPosixFilePermissions(d, PosixFilePermissions.fromString("rwx------"));
        Files.setAttribute(d, "unix:uid", (int) NOBODY);
        assertThat(nobody.mayWriteIn(d)).isTrue();
        assertThat(PrivilegeDrop.parse("1000", "65534").mayWriteIn(d)).isFalse();
    }

    /** Runs {@code main} with {@code args} in a new JVM on this class path; its exit status and output. */
    private CliRun fork(Class<?> main, String... args) throws IOException, InterruptedException {
        Process p = start(main, args);
        if (!p.waitFor(300, TimeUnit.SECONDS)) { // a guard against a hang, not a speed expectation
            p.destroyForcibly();
        }
        return new CliRun(p.waitFor(), Files.readString(dir.resolve("fork.out"), StandardCharsets.UTF_8),
                Files.readString(dir.resolve("fork.err"), StandardCharsets.UTF_8));
    }

    /**
     * Starts {@code main} with {@code args} in a new JVM on this class path, its output in fork.out and fork.err.
     * Panamax itself gets the options of the rig's JVMs (C1 only, the serial collector), as the rig starts it (on a host
     * without /dev/kvm these forks run there, where C2 compiling on the software CPU costs a short-lived JVM more than
     * it gains). The probe keeps the defaults, so that it sees every kind of thread the JVM has (GC and C2 workers).
     */
    private Process start(Class<?> main, String... args) throws IOException {
        List<String> argv = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        if (main == Panamax.class) argv.addAll(Rig.JVM_OPTIONS);
        argv.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), main.getName()));
        argv.addAll(List.of(args));
        return new ProcessBuilder(argv).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectOutput(dir.resolve("fork.out").toFile()).redirectError(dir.resolve("fork.err").toFile()).start();
    }

    @Test
    void rootBecomesTheUserOnEveryThreadWithNoNewPrivsAndTheProcessesItSpawnsToo() throws Exception {
        assumeTrue(Credentials.effectiveUserId() == 0, "only root can switch users; this host runs its tests as root");
        CliRun r = fork(PrivilegeDropProbe.class, "65534", "65534");
        assertThat(r.status()).as(r.out() + r.err()).isZero();
        assertThat(r.err()).contains("panamax: running as uid 65534, gid 65534 from here on");
        List<String> threads = r.out().lines().filter(l -> l.startsWith("THREAD ")).toList();
        assertThat(threads).as("the JVM's own threads (GC, compilers, ...) and the probe's").hasSizeGreaterThan(10)
                .anyMatch(l -> l.startsWith("THREAD before-1 ")).anyMatch(l -> l.startsWith("THREAD after "));
        assertThat(threads).allSatisfy(l -> assertThat(l).endsWith(
                " uids=[65534, 65534, 65534, 65534] gids=[65534, 65534, 65534, 65534] groups=[] nnp=true capeff=0 capprm=0"));
        String child = r.out().lines().filter(l -> l.startsWith("CHILD ")).findFirst().orElseThrow();
        assertThat(child.replaceAll("\\s+", " ")).as("a process spawned by a thread that existed before the drop")
                .contains("Uid: 65534 65534 65534 65534", "Gid: 65534 65534 65534 65534", "CapEff: 0000000000000000", "NoNewPrivs: 1");
        assertThat(r.out()).contains("OTHER-USER refused: --uid 1000 --gid 1000: only root may become another user or group, and this"
                + " process runs as uid 65534, gid 65534", "SAME-USER again");
    }

    /** A tiny guest booted by {@code run --uid --gid}: its kernel, disk and API socket in a directory only root may enter. */
    @Test
    void runOpensTheVmAsRootAndRunsTheGuestAsTheUser() throws Exception {
        assumeTrue(Credentials.effectiveUserId() == 0, "only root can switch users; this host runs its tests as root");
        Path root = Files.createDirectory(dir.resolve("root-only"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path kernel = TestKernels.resetting(root);
        Path disk = Files.write(root.resolve("disk.raw"), new byte[1 << 20]);
        CliRun r = fork(Panamax.class, "run", "--no-rig", "--timeout", "60", "--console", "none", "--uid", "65534", "--gid", "65534",
                "--kernel", kernel.toString(), "--disk", disk.toString(), "--api-sock", root.resolve("api.sock").toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.err()).contains("panamax: serving the API on", "panamax: running as uid 65534, gid 65534 from here on")
                .doesNotContain("Exception", "internal error");
    }

    /** A snapshot taken before the guest's first instruction, restored with {@code --uid}: it resumes only as the user, and resets. */
    @Test
    void aRestoredVmResumesAsTheUser() throws Exception {
        assumeTrue(Credentials.effectiveUserId() == 0, "only root can switch users; this host runs its tests as root");
        Path root = Files.createDirectory(dir.resolve("root-only"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path snap = Files.createDirectory(root.resolve("snap"));
        TestKernels.snapshotBeforeFirstInstruction(TestKernels.resetting(root), snap);
        CliRun r = fork(Panamax.class, "run", "--no-rig", "--timeout", "60", "--console", "none", "--uid", "65534", "--gid", "65534",
                "--restore", snap.toString());
        assertThat(r.status()).as(r.out() + r.err()).isZero(); // 134 (glibc's abort) when a filtered thread could not switch users
        assertThat(r.err()).contains("panamax: running as uid 65534, gid 65534 from here on").doesNotContain("Exception", "internal error");
    }

    /**
     * The API after the drop: pausing works, and a snapshot is written as the user, so into a directory the user may
     * write; elsewhere it is refused with a sentence that says which user.
     */
    @Test
    void theApiServesAfterTheDropAndSnapshotsGoWhereTheUserMayWrite() throws Exception {
        assumeTrue(Credentials.effectiveUserId() == 0, "only root can switch users; this host runs its tests as root");
        Path root = Files.createDirectory(dir.resolve("root-only"), PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path socket = root.resolve("api.sock");
        Process p = start(Panamax.class, "run", "--no-rig", "--timeout", "300", "--console", "none", "--uid", "65534", "--gid", "65534",
                "--kernel", TestKernels.spinning(root).toString(), "--api-sock", socket.toString());
        try {
            ApiClient api = new ApiClient(socket);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120); // a guard against a hang, not a speed expectation
            while (!Files.readString(dir.resolve("fork.err")).contains("panamax: running as uid 65534")) {
                assertThat(p.isAlive()).as(Files.readString(dir.resolve("fork.err"))).isTrue();
                assertThat(System.nanoTime()).as("run dropped its privileges").isLessThan(deadline);
                Thread.sleep(50);
            }
            assertThat(api.send("PATCH", "/vm", "{\"state\": \"Paused\"}").status()).isEqualTo(204);

            Path rootsDir = Files.createDirectory(root.resolve("snap-root"));
            ApiClient.Response refused = api.send("PUT", "/snapshot/create", "{\"snapshot_path\": \"" + rootsDir.resolve("vm.state")
                    + "\", \"mem_file_path\": \"" + rootsDir.resolve("vm.mem") + "\"}");
            assertThat(refused.status()).as(refused.body()).isEqualTo(400);
            assertThat(refused.faultMessage()).contains("snapshot/create: cannot write the snapshot: ",
                    "ermission denied); this VMM runs as uid 65534, gid 65534 (panamax run --uid/--gid), which must be able to create files there");

            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx--x--x")); // the user may pass, not read
            Path usersDir = Files.createDirectory(dir.resolve("snap-user"));
            Files.setAttribute(usersDir, "unix:uid", (int) NOBODY);
            ApiClient.Response written = api.send("PUT", "/snapshot/create", "{\"snapshot_path\": \"" + usersDir.resolve("vm.state")
                    + "\", \"mem_file_path\": \"" + usersDir.resolve("vm.mem") + "\"}");
            assertThat(written.status()).as(written.body()).isEqualTo(204);
            assertThat(Files.getAttribute(usersDir.resolve("vm.mem"), "unix:uid")).as("made by the user").isEqualTo((int) NOBODY);
            assertThat(api.send("PATCH", "/vm", "{\"state\": \"Resumed\"}").status()).isEqualTo(204);
        } finally {
            p.destroyForcibly();
            p.waitFor();
        }
    }
}
