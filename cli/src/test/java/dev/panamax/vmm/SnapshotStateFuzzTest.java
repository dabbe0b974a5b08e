package dev.panamax.vmm;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.vm.state.StateFile;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A snapshot's state file from a fuzzer's bytes: the container (magic, version, length, CRC-32C),
 * and, inside an intact container, the machine section a restore reads first to rebuild the VM's
 * configuration ({@link VmSnapshot#configuration}). A malformed file may only give {@link
 * StateFormatException}, or {@link ConfigException} for a configuration that breaks a rule here.
 * The sections read later, by KVM's side, are fuzzed in vmm-core (SnapshotSectionsFuzzTest).
 */
class SnapshotStateFuzzTest {
    private static final Path STATE = temporaryStateFile();

    /** On tmpfs where there is one: StateFile.write forces the file to disk, which takes milliseconds elsewhere. */
    private static Path temporaryStateFile() {
        try {
            Path shm = Path.of("/dev/shm");
            Path dir = Files.isDirectory(shm) ? Files.createTempDirectory(shm, "snapshot-fuzz") : Files.createTempDirectory("snapshot-fuzz");
            dir.toFile().deleteOnExit();
            Path state = dir.resolve("vm.state");
            state.toFile().deleteOnExit();
            return state;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @FuzzTest
    void stateFile(byte[] file) {
        try {
            StateFile.parse(file, "fuzz").section("machine");
        } catch (StateFormatException refused) {
            // the documented answer to a damaged file
        }
    }

    /** The input is the machine section's contents; the container and the section's header around it are made right. */
    @FuzzTest
    void machineSection(byte[] section) throws IOException {
        StateFile.write(STATE, new StateWriter().string("machine").bytes(section).toByteArray());
        try {
            VmSnapshot.configuration(STATE, Map.of());
        } catch (StateFormatException | ConfigException refused) {
            // the documented answers to a malformed or unacceptable configuration
        }
    }
}
