package dev.panamax.picocli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The point of this module: the JVM's ahead-of-time cache holds picocli's classes, which it skips in picocli's own jar. */
class StartupCacheTest {
    @TempDir Path dir;

    @Test
    void anAotCacheTrainedOnPicocliHoldsItsClasses() throws Exception {
        Path jar = picocliJar();
        Path cache = dir.resolve("picocli.aot");
        // picocli's own command (it writes completion scripts) parses its arguments and prints its usage.
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-XX:AOTCacheOutput=" + cache, "-Xlog:aot=warning", "-cp", jar.toString(), "picocli.AutoComplete", "--help")
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);

        assertThat(p.waitFor()).as(output).isZero();
        assertThat(output).contains("Usage:").doesNotContain("Skipping picocli");
        assertThat(cache).isNotEmptyFile();
    }

    /**
     * picocli's classes, as this module compiled them into its classes directory (its jar comes after its tests), in a
     * jar: the JVM caches classes from jars only.
     */
    private Path picocliJar() throws IOException, URISyntaxException {
        Path classes = Path.of(CommandLine.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path jar = dir.resolve("picocli.jar");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar)); Stream<Path> files = Files.walk(classes)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                out.putNextEntry(new JarEntry(classes.relativize(f).toString()));
                Files.copy(f, out);
                out.closeEntry();
            }
        }
        return jar;
    }
}
