import dev.panamax.api.VirtualMachine;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Soak: boots the tiny guest and lets it end, BOOTS times in this one JVM, through the Java API, and
 * compares this process's open fds and resident memory after the first WARM boots with after all of
 * them (a leak of one fd or one mapping per VM shows as growth). Run by soak-boots.sh where real
 * KVM is; prints "soak: ..." lines and ends with status 1 when either grew more than 5 %.
 *
 * <p>Usage: java -cp CLI-CLASSPATH SoakBoots.java KERNEL INITRD [BOOTS] [WARM] [CPUS]
 */
public final class SoakBoots {
    private static final String READY = "soak-ready";

    public static void main(String[] args) throws Exception {
        Path kernel = Path.of(args[0]);
        Path initrd = Path.of(args[1]);
        int boots = args.length > 2 ? Integer.parseInt(args[2]) : 200;
        int warm = args.length > 3 ? Integer.parseInt(args[3]) : 10;
        int cpus = args.length > 4 ? Integer.parseInt(args[4]) : 1;
        long fdsWarm = 0;
        long rssWarm = 0;
        Map<String, Mapping> mappingsWarm = Map.of();
        long start = System.nanoTime();
        for (int i = 1; i <= boots; i++) {
            bootOnce(kernel, initrd, cpus, i);
            if (i == warm) {
                System.gc();
                long untouched = rssKib();
                fillYoungGeneration();
                System.gc();
                say("after " + i + " boots: " + untouched + " KiB resident, " + rssKib() + " KiB once the young generation"
                        + " was filled once (the baseline below)");
                fdsWarm = openFds();
                rssWarm = rssKib();
                mappingsWarm = mappings();
                say("after " + i + " boots: " + fdsWarm + " fds, " + rssWarm + " KiB resident, " + mappingsWarm.size()
                        + " mappings, " + threads() + " threads");
                nativeMemory("baseline");
            } else if (i % 25 == 0) {
                say("after " + i + " boots: " + openFds() + " fds, " + rssKib() + " KiB resident, "
                        + (System.nanoTime() - start) / 1_000_000_000 + " s");
            }
        }
        System.gc();
        long fds = openFds();
        long rss = rssKib();
        Map<String, Mapping> mappings = mappings();
        say("after " + boots + " boots: " + fds + " fds, " + rss + " KiB resident, " + mappings.size() + " mappings, "
                + threads() + " threads");
        reportGrowth(mappingsWarm, mappings, warm);
        double fdGrowth = percent(fdsWarm, fds);
        double rssGrowth = percent(rssWarm, rss);
        say(String.format("growth from boot %d to boot %d: fds %+.1f %%, resident memory %+.1f %%", warm, boots, fdGrowth, rssGrowth));
        String diff = nativeMemory("summary.diff");
        if (diff != null) {
            diff.lines().filter(l -> l.contains("committed=") && (l.startsWith("Total") || l.strip().startsWith("-")))
                    .forEach(l -> say("nmt since boot " + warm + ": " + l.strip()));
        }
        boolean within = fdGrowth <= 5 && rssGrowth <= 5;
        say(within ? "within 5 %" : "GREW more than 5 %");
        System.exit(within ? 0 : 1);
    }

    /** One boot to the guest's userspace and its end (the guest reboots itself, which ends the VM). */
    private static void bootOnce(Path kernel, Path initrd, int cpus, int n) throws Exception {
        CountDownLatch ready = new CountDownLatch(1);
        try (VirtualMachine vm = VirtualMachine.builder().kernel(kernel).initrd(initrd)
                .commandLine("quiet panamax.run=\"echo " + READY + "\"").cpus(cpus).memoryMib(128)
                .console(OutputStream.nullOutputStream()).build()) {
            vm.addConsoleLineListener(line -> {
                if (line.contains(READY)) ready.countDown();
            });
            vm.start();
            if (!ready.await(180, TimeUnit.SECONDS)) throw new IllegalStateException("boot " + n + ": the guest never printed " + READY);
            VirtualMachine.Exit exit = vm.awaitExit(Duration.ofSeconds(60)).orElseThrow(
                    () -> new IllegalStateException("boot " + n + ": the guest did not end after " + READY));
            if (!exit.clean()) throw new IllegalStateException("boot " + n + ": " + exit);
        }
    }

    /**
     * Allocates garbage until the young generation has been collected twice, so that every page of it has
     * been touched. Without this the baseline counts only the part of the young generation the first boots
     * reached (each System.gc() starts it over from its bottom), and the pages touched later for the first
     * time, committed long before, look like growth (5-7 MiB of it in the rig: the young generation's
     * mapping, its size unchanged, resident 1.3 MiB after 10 boots and 7 MiB after 200).
     */
    private static void fillYoungGeneration() {
        var young = java.lang.management.ManagementFactory.getGarbageCollectorMXBeans().stream()
                .filter(gc -> gc.getName().equals("Copy") || gc.getName().contains("Young")).findFirst().orElse(null);
        if (young == null) {
            return;
        }
        long start = young.getCollectionCount();
        Object[] keep = new Object[1];
        for (long allocated = 0; young.getCollectionCount() < start + 2 && allocated < (1L << 30); allocated += 64 * 1024) {
            keep[0] = new byte[64 * 1024];
        }
    }

    /**
     * The JVM's Native Memory Tracking command {@code VM.native_memory SUBCOMMAND} (as jcmd runs it), its
     * output; null when the JVM tracks nothing (run with NMT=1, which gives it -XX:NativeMemoryTracking=summary).
     */
    private static String nativeMemory(String subcommand) throws Exception {
        var server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
        var name = new javax.management.ObjectName("com.sun.management:type=DiagnosticCommand");
        String out = (String) server.invoke(name, "vmNativeMemory", new Object[] {new String[] {subcommand}},
                new String[] {String[].class.getName()});
        return out == null || out.contains("not enabled") ? null : out;
    }

    private static long openFds() throws IOException {
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        }
    }

    private static long rssKib() throws IOException {
        return fromStatus("VmRSS:");
    }

    private static long threads() throws IOException {
        return fromStatus("Threads:");
    }

    /** The number on a line of /proc/self/status. */
    private static long fromStatus(String field) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(field)) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        throw new IllegalStateException("no " + field + " in /proc/self/status");
    }

    /** A mapping's size and resident memory, in KiB. */
    private record Mapping(long sizeKib, long residentKib) {}

    /**
     * Each mapping of this process, from /proc/self/smaps, keyed by where it starts and what it maps (a
     * file, [heap], [stack], or nothing for anonymous memory), so that one that grew stays the same key:
     * where resident memory grew, a mapping left behind per VM and first touches of memory mapped long
     * before (the Java heap) look different.
     */
    private static Map<String, Mapping> mappings() throws IOException {
        Map<String, Mapping> mappings = new HashMap<>();
        String key = null;
        long size = 0;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            String[] words = line.trim().split("\\s+");
            if (words.length >= 5 && words[0].matches("[0-9a-f]+-[0-9a-f]+")) {
                String[] range = words[0].split("-");
                size = (Long.parseUnsignedLong(range[1], 16) - Long.parseUnsignedLong(range[0], 16)) / 1024;
                key = range[0] + " " + (words.length > 5 ? words[5] : "anonymous");
            } else if (key != null && words[0].equals("Rss:")) {
                mappings.put(key, new Mapping(size, Long.parseLong(words[1])));
            }
        }
        return mappings;
    }

    /** The mappings whose resident memory changed most since the warm boots: new ones, grown ones, gone ones. */
    private static void reportGrowth(Map<String, Mapping> before, Map<String, Mapping> after, int warm) {
        Map<String, Long> change = new HashMap<>();
        after.forEach((key, m) -> change.put(key, m.residentKib() - (before.containsKey(key) ? before.get(key).residentKib() : 0)));
        before.forEach((key, m) -> change.putIfAbsent(key, -m.residentKib()));
        long added = after.keySet().stream().filter(k -> !before.containsKey(k)).count();
        long removed = before.keySet().stream().filter(k -> !after.containsKey(k)).count();
        say("mappings since boot " + warm + ": " + added + " new, " + removed + " gone; largest changes of resident memory"
                + " (start, what is mapped, size then and now):");
        change.entrySet().stream().filter(e -> e.getValue() != 0)
                .sorted((a, b) -> Long.compare(Math.abs(b.getValue()), Math.abs(a.getValue()))).limit(12)
                .forEach(e -> say(String.format("  %+7d KiB resident  %s  %s -> %s KiB", e.getValue(), e.getKey(),
                        before.containsKey(e.getKey()) ? before.get(e.getKey()).sizeKib() : "none",
                        after.containsKey(e.getKey()) ? after.get(e.getKey()).sizeKib() : "none")));
    }

    private static double percent(long before, long after) {
        return before == 0 ? 0 : 100.0 * (after - before) / before;
    }

    private static void say(String line) {
        System.out.println("soak: " + line);
        System.out.flush();
    }
}
