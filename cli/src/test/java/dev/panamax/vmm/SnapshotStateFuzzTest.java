package dev.panamax.vmm;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.panamax.sys.TmpfsTempDir;
import dev.panamax.vm.state.StateFile;
import dev.panamax.vm.state.StateFormatException;
import dev.panamax.vm.state.StateWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;

/**
 * A snapshot's state file from a fuzzer's bytes: the container (magic, version, length, CRC-32C),
 * and, inside an intact container, the machine section a restore reads first to rebuild the VM's
 * configuration ({@link VmSnapshot#configuration}). A malformed file may only give {@link
 * StateFormatException}, or {@link ConfigException} for a configuration that breaks a rule here.
 * The sections read later, by KVM's side, are fuzzed in vmm-core (SnapshotSectionsFuzzTest).
 */
class SnapshotStateFuzzTest {
    /** On tmpfs where there is one: StateFile.write forces the file to disk, which takes milliseconds elsewhere. */
    @TempDir(factory = TmpfsTempDir.class)
    static Path dir;

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
        Path state = dir.resolve("vm.state");
        StateFile.write(state, new StateWriter().string("machine").bytes(section).toByteArray());
        try {
            VmSnapshot.configuration(state, Map.of());
        } catch (StateFormatException | ConfigException refused) {
            // the documented answers to a malformed or unacceptable configuration
        }
    }
}
