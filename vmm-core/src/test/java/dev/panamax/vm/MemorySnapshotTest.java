package dev.panamax.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.panamax.rig.UsesKvm;
import dev.panamax.sys.MappedMemory;
import dev.panamax.sys.SparseFile;
import dev.panamax.vm.state.StateReader;
import dev.panamax.vm.state.StateWriter;
import dev.panamax.x86.CpuMode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Guest memory through a snapshot: written to a memory file, mapped back privately into new VMs,
 * and a diff of the pages written since (by the guest, seen through KVM's dirty log, and by the
 * VMM) merged onto its base. The guests are a few real-mode instructions, which run wherever KVM
 * does.
 */
@UsesKvm
class MemorySnapshotTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final long SIZE = 0x80000;
    private static final long CODE = 0x10000;
    /** xor ax, ax ; mov ds, ax ; mov al, [0x3000] ; inc al ; mov [0x4000], al ; hlt: copies a byte, plus one. */
    private static final byte[] COPY_PLUS_ONE = {0x31, (byte) 0xc0, (byte) 0x8e, (byte) 0xd8, (byte) 0xa0, 0x00, 0x30, (byte) 0xfe,
        (byte) 0xc0, (byte) 0xa2, 0x00, 0x40, (byte) 0xf4};

    @TempDir
    Path dir;

    private static List<MemoryMap.RamRange> layout() {
        return List.of(new MemoryMap.RamRange(0, SIZE));
    }

    /** Runs the program at {@link #CODE} on a new vCPU of {@code vm} until it halts. */
    private static void runToHalt(Vm vm) {
        Vcpu vcpu = vm.addVcpu();
        CpuMode.enterRealMode(vcpu.fd(), (int) (CODE >> 4), 0);
        vm.start();
        assertThat(vm.awaitExit(TIMEOUT)).get().extracting(VmExit::reason).isEqualTo(VmExit.Reason.HALTED);
    }

    private static Vm vmWithProgram() {
        Vm vm = Vm.create();
        vm.addMemory(0, SIZE, false);
        vm.memory().write(CODE, COPY_PLUS_ONE);
        return vm;
    }

    private static MemoryMap roundTrip(MemoryMap map, long fileLength) {
        StateWriter out = new StateWriter();
        map.saveState(out);
        return MemoryMap.readState(new StateReader(out.toByteArray(), "the snapshot"), layout(), fileLength);
    }

    @ParameterizedTest(name = "eager={0}")
    @ValueSource(booleans = {false, true})
    void aVmRestoredFromAMemoryFileRunsOnItsContentsAndLeavesTheFileAlone(boolean eager) throws IOException {
        Path file = dir.resolve("memory");
        MemoryMap map;
        try (Vm original = vmWithProgram()) {
            original.memory().writeByte(0x3000, (byte) 41);
            original.memory().writeLong(SIZE - 8, 0x0123456789abcdefL);
            map = MemoryFile.writeFull(original.memory(), file);
        }
        byte[] before = Files.readAllBytes(file);
        assertThat(before).hasSize((int) SIZE);

        try (Vm first = Vm.create(); Vm second = Vm.create()) {
            MemoryMap read = roundTrip(map, Files.size(file));
            read.mapInto(first, file, eager);
            read.mapInto(second, file, !eager);
            second.memory().writeByte(0x3000, (byte) 99); // this clone's own change

            runToHalt(first);
            runToHalt(second);

            assertThat(first.memory().readByte(0x4000)).as("the first clone's guest read the file's byte").isEqualTo((byte) 42);
            assertThat(second.memory().readByte(0x4000)).as("the second clone's guest read its own byte").isEqualTo((byte) 100);
            assertThat(first.memory().readLong(SIZE - 8)).isEqualTo(0x0123456789abcdefL);
            assertThat(first.memory().readByte(0x3000)).as("the first clone after the second wrote").isEqualTo((byte) 41);
        }
        assertThat(Arrays.mismatch(Files.readAllBytes(file), before)).as("first byte of the memory file the guests changed").isEqualTo(-1);
    }

    @Test
    void aRestoredVmCanBeSnapshotOverTheFileItRunsFrom() throws IOException {
        Path file = dir.resolve("memory");
        try (Vm original = vmWithProgram()) {
            original.memory().writeByte(0x3000, (byte) 41);
            MemoryFile.writeFull(original.memory(), file);
        }
        try (Vm restored = Vm.create()) {
            new MemoryMap(List.of(new MemoryMap.Entry(0, SIZE, 0))).mapInto(restored, file, false);
            runToHalt(restored); // writes 42 at 0x4000, in its private copy

            MemoryFile.writeFull(restored.memory(), file);

            assertThat(restored.memory().readByte(0x3000)).as("a page the restored VM never wrote, after the file was replaced")
                    .isEqualTo((byte) 41);
            assertThat(Files.readAllBytes(file)[0x4000]).as("the new file holds the restored guest's write").isEqualTo((byte) 42);
        }
    }

    @Test
    void pagesOfZerosAreHolesInTheMemoryFile() throws IOException {
        Path file = dir.resolve("memory");
        try (Vm vm = Vm.create()) {
            vm.addMemory(0, SIZE, false);
            vm.memory().writeInt(0x20ffc, 7);
            vm.memory().writeInt(0x21000, 0); // a written page that is still all zeros
            MemoryFile.writeFull(vm.memory(), file);
        }
        try (SparseFile sparse = SparseFile.open(file, false)) {
            assertThat(sparse.nextData(0, SIZE)).isEqualTo(0x20000);
            assertThat(sparse.nextHole(0x20000, SIZE)).isEqualTo(0x21000);
            assertThat(sparse.nextData(0x21000, SIZE)).isEqualTo(SIZE);
        }
        assertThat(Files.list(dir)).as("files beside the memory file").containsExactly(file);
    }

    @Test
    void aRunOfDataLongerThanOneWriteIsWrittenWhole() throws IOException {
        long pages = MemoryFile.WRITE_PAGES + 3;
        byte[] expected = new byte[(int) (pages * 4096)];
        for (int page = 0; page < pages; page++) {
            Arrays.fill(expected, page * 4096, (page + 1) * 4096, (byte) (page % 251 + 1)); // no page of zeros
        }
        Path file = dir.resolve("memory");
        try (GuestMemory memory = new GuestMemory()) {
            memory.addRegion(0, MappedMemory.anonymous(pages * 4096));
            memory.write(0, expected);
            MemoryFile.writeFull(memory, file);
        }
        assertThat(Arrays.mismatch(Files.readAllBytes(file), expected)).as("first byte of the file unlike the memory").isEqualTo(-1);
    }

    @Test
    void theGuestsWritesAreSeenThroughKvmsDirtyLogAndTheVmmsThroughItsBitmap() {
        try (Vm vm = vmWithProgram()) {
            vm.memory().writeByte(0x5000, (byte) 1); // before tracking: not reported
            vm.startDirtyTracking();
            vm.memory().writeInt(0x6ffe, 1); // the VMM's write, straddling two pages

            runToHalt(vm);

            DirtyPages pages = vm.takeDirtyPages();
            assertThat(pages.isDirty(0x4000)).as("the page the guest wrote").isTrue();
            assertThat(pages.isDirty(0x6000) && pages.isDirty(0x7000)).as("the pages the VMM wrote").isTrue();
            assertThat(pages.isDirty(0x3000)).as("a page the guest only read").isFalse();
            assertThat(pages.isDirty(0x5000)).as("a page written before tracking").isFalse();
            assertThat(vm.takeDirtyPages().count()).as("pages in the next take").isZero();
        }
    }

    @Test
    void takingDirtyPagesWithoutTrackingIsRefused() {
        try (Vm vm = vmWithProgram()) {
            assertThatThrownBy(vm::takeDirtyPages).isInstanceOf(IllegalStateException.class).hasMessageContaining("not started");
        }
    }

    @Test
    void aDiffMergedOntoItsBaseEqualsAFullSnapshotOfTheSameMoment() throws IOException {
        Path base = dir.resolve("base");
        Path diff = dir.resolve("diff");
        Path full = dir.resolve("full");
        try (Vm vm = vmWithProgram()) {
            vm.memory().writeByte(0x3000, (byte) 9);
            vm.memory().write(0x30000, filled(0x2000, (byte) 0x5a));
            vm.startDirtyTracking();
            MemoryFile.writeFull(vm.memory(), base);
            vm.takeDirtyPages(); // the base is where the next diff starts

            vm.memory().write(0x30000, new byte[0x1000]); // a page of the base zeroed: a hole in the diff
            vm.memory().writeLong(0x50000, -1L);
            runToHalt(vm); // the guest writes 10 at 0x4000

            DirtyPages pages = vm.takeDirtyPages();
            MemoryMap map = MemoryFile.writeDiff(vm.memory(), pages, diff);
            MemoryFile.writeFull(vm.memory(), full);

            StateWriter out = new StateWriter();
            pages.saveState(out);
            DirtyPages saved = DirtyPages.readState(new StateReader(out.toByteArray(), "the snapshot"), map);
            assertThat(saved.count()).isEqualTo(pages.count());
            MemoryFile.merge(diff, saved, roundTrip(map, Files.size(diff)), base);
        }
        assertThat(Files.size(base)).isEqualTo(Files.size(full));
        assertThat(Arrays.mismatch(Files.readAllBytes(base), Files.readAllBytes(full))).as("first byte where base + diff and the full file differ")
                .isEqualTo(-1);
        // Not 0x3000: the guest only reads it, but KVM may map a page it faults in for a read writable, and
        // then logs it as dirty at once (the nested rig's KVM does); a dirty log may hold more than was written.
        assertThat(Files.readAllBytes(diff)[0x31000]).as("a page written before the base and untouched since").isZero();
    }

    @Test
    void aMergeRefusesFilesShorterThanTheMap() throws IOException {
        Path base = Files.write(dir.resolve("base"), new byte[0x1000]);
        Path diff = Files.write(dir.resolve("diff"), new byte[(int) SIZE]);
        MemoryMap map = new MemoryMap(List.of(new MemoryMap.Entry(0, SIZE, 0)));
        DirtyPages none = new DirtyPages(List.of(new DirtyPages.Range(0, SIZE, new long[DirtyPages.words(SIZE)])));
        assertThatThrownBy(() -> MemoryFile.merge(diff, none, map, base)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("base is 4096 bytes; its memory map needs 524288");
    }

    private static byte[] filled(int length, byte value) {
        byte[] bytes = new byte[length];
        Arrays.fill(bytes, value);
        return bytes;
    }
}
