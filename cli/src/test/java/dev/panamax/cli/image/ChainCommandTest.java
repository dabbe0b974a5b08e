package dev.panamax.cli.image;

import static org.assertj.core.api.Assertions.assertThat;

import dev.panamax.cli.CliRun;
import dev.panamax.storage.QemuImg;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax image chain}: its output, human and JSON, its exit statuses, and --fix. */
class ChainCommandTest {
    @TempDir
    Path dir;

    private static CliRun panamax(String... args) {
        return CliRun.panamax(args);
    }

    private String p(String name) {
        return dir.resolve(name).toString();
    }

    /** base.raw (random), mid.qcow2 over it (relative name), top.qcow2 over mid (made by Panamax). */
    private void chainOfThree() throws Exception {
        byte[] data = new byte[2 << 20];
        new Random(3).nextBytes(data);
        Files.write(dir.resolve("base.raw"), data);
        QemuImg.img("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p("mid.qcow2")).expectSuccess("create mid");
        CliRun r = panamax("image", "create", "-f", "qcow2", "-b", "mid.qcow2", p("top.qcow2"));
        assertThat(r.status()).as(r.err()).isZero();
    }

    @Test
    void aWholeChainIsOneLinePerLinkAndStatusZero() throws Exception {
        chainOfThree();
        CliRun r = panamax("image", "chain", p("top.qcow2"));
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains(
                "[0] " + p("top.qcow2") + ": qcow2, 2 MiB (2097152 bytes), ok\n",
                "[1] " + p("mid.qcow2") + " (recorded as \"mid.qcow2\", format qcow2): qcow2, 2 MiB (2097152 bytes), ok\n",
                "[2] " + p("base.raw") + " (recorded as \"base.raw\", format raw): raw, 2 MiB (2097152 bytes), ok\n",
                "The chain is whole: 3 images.");

        r = panamax("image", "chain", "--output", "json", p("top.qcow2"));
        assertThat(r.status()).isZero();
        assertThat(r.out()).startsWith("{\"whole\": true, \"fixes\": [], \"links\": [\n").contains(
                "{\"depth\": 2, \"filename\": \"" + p("base.raw") + "\", \"backing-filename\": \"base.raw\","
                        + " \"backing-filename-format\": \"raw\", \"format\": \"raw\", \"virtual-size\": 2097152,"
                        + " \"state\": \"ok\", \"broken\": false, \"notes\": []}");
    }

    @Test
    void aMovedBaseIsListedWithItsRebaseCommandWhichMendsTheChain() throws Exception {
        chainOfThree();
        Path store = Files.createDirectory(dir.resolve("store"));
        Files.move(dir.resolve("base.raw"), store.resolve("base.raw"));
        byte[] before = Files.readAllBytes(dir.resolve("mid.qcow2"));

        CliRun r = panamax("image", "chain", "--search", store.toString(), p("top.qcow2"));
        assertThat(r.status()).as(r.err()).isEqualTo(ChainCommand.BROKEN);
        String command = "panamax image rebase -u -b store/base.raw -F raw " + p("mid.qcow2");
        assertThat(r.out()).contains("[2] " + p("base.raw") + " (recorded as \"base.raw\", format raw): missing\n",
                "does not exist", "candidates, best first:\n      " + store.resolve("base.raw") + ": raw, 2 MiB\n",
                "same file name as recorded; raw, as recorded; same virtual size", "        " + command + "\n",
                "The chain is broken at link 2 (missing).\nWith --fix, the chain would be mended with " + store.resolve("base.raw")
                        + ", the one candidate with the recorded file name.");
        assertThat(Files.readAllBytes(dir.resolve("mid.qcow2"))).as("nothing changes without --fix").isEqualTo(before);

        r = panamax("image", "chain", "--output", "json", "--search", store.toString(), p("top.qcow2"));
        assertThat(r.status()).isEqualTo(ChainCommand.BROKEN);
        assertThat(r.out()).contains("\"whole\": false", "\"state\": \"missing\", \"broken\": true",
                "\"candidates\": [{\"filename\": \"" + store.resolve("base.raw") + "\", \"backing-filename\": \"store/base.raw\"",
                "\"same-name\": true", "\"command\": \"" + command + "\"");

        String[] args = command.substring("panamax ".length()).split(" ");
        r = panamax(args);
        assertThat(r.status()).as(r.err()).isZero();
        r = panamax("image", "chain", p("top.qcow2"));
        assertThat(r.status()).as(r.out()).isZero();
        assertThat(r.out()).contains("[2] " + store.resolve("base.raw") + " (recorded as \"store/base.raw\", format raw)");
    }

    @Test
    void fixAppliesTheOneCandidateWithTheName() throws Exception {
        chainOfThree();
        Path store = Files.createDirectory(dir.resolve("store"));
        Files.move(dir.resolve("base.raw"), store.resolve("base.raw"));
        CliRun r = panamax("image", "chain", "--fix", "--search", store.toString(), p("top.qcow2"));
        assertThat(r.status()).as(r.out() + r.err()).isZero();
        assertThat(r.out()).startsWith("fixed: " + p("mid.qcow2") + " now has backing file store/base.raw (raw)\n")
                .contains("The chain is whole: 3 images.");
        String qemu = QemuImg.img("info", "--backing-chain", p("top.qcow2")).expectSuccess("info").out();
        assertThat(qemu).contains("image: " + store.resolve("base.raw"));
        assertThat(panamax("image", "check", p("top.qcow2")).status()).isZero();
    }

    @Test
    void fixWithTwoCandidatesChangesNothing() throws Exception {
        chainOfThree();
        Path a = Files.createDirectory(dir.resolve("a")), b = Files.createDirectory(dir.resolve("b"));
        Files.copy(dir.resolve("base.raw"), a.resolve("base.raw"));
        Files.move(dir.resolve("base.raw"), b.resolve("base.raw"));
        byte[] before = Files.readAllBytes(dir.resolve("mid.qcow2"));
        CliRun r = panamax("image", "chain", "--fix", "--search", a.toString(), "--search", b.toString(), p("top.qcow2"));
        assertThat(r.status()).isEqualTo(ChainCommand.BROKEN);
        assertThat(r.out()).doesNotContain("fixed:").contains(a.resolve("base.raw") + ": raw", b.resolve("base.raw") + ": raw",
                "--fix changed nothing: 2 candidates have the file name base.raw; pick the right one and run its command");
        assertThat(Files.readAllBytes(dir.resolve("mid.qcow2"))).isEqualTo(before);
    }

    @Test
    void brokenLinksAreExplainedWithStatusFour() throws Exception {
        QemuImg.img("create", "-f", "qcow2", p("loop.qcow2"), "1M").expectSuccess("create");
        QemuImg.img("rebase", "-u", "-b", "loop.qcow2", "-F", "qcow2", p("loop.qcow2")).expectSuccess("rebase");
        CliRun r = panamax("image", "chain", p("loop.qcow2"));
        assertThat(r.status()).isEqualTo(ChainCommand.BROKEN);
        assertThat(r.out()).contains("qcow2, 1 MiB (1048576 bytes), cycle\n", "is the image itself", "The chain is broken at link 1 (cycle).");

        QemuImg.img("create", "-f", "qcow2", p("q.qcow2"), "1M").expectSuccess("create");
        QemuImg.img("create", "-f", "qcow2", "-b", "q.qcow2", "-F", "raw", p("wrong.qcow2"), "1M").expectSuccess("create");
        r = panamax("image", "chain", "--fix", p("wrong.qcow2"));
        assertThat(r.status()).isEqualTo(ChainCommand.BROKEN);
        assertThat(r.out()).contains("(recorded as \"q.qcow2\", format raw): qcow2, ", "wrong format\n", "metadata",
                "--fix mends only a missing backing file; this link is wrong format, so nothing more was changed");
    }

    @Test
    void badInputIsStatusTwo() throws Exception {
        CliRun r = panamax("image", "chain", p("none.qcow2"));
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("none.qcow2: image file does not exist").doesNotContain("Exception");
        QemuImg.img("create", "-f", "qcow2", p("t.qcow2"), "1M").expectSuccess("create");
        r = panamax("image", "chain", "--search", p("nodir"), p("t.qcow2"));
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("search directory " + p("nodir") + " does not exist");
        r = panamax("image", "chain", "--output", "yaml", p("t.qcow2"));
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.err()).contains("--output must be human or json, not 'yaml'");
    }
}
