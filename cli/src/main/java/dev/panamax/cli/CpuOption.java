package dev.panamax.cli;

import dev.panamax.api.CpuAffinity;
import dev.panamax.cli.common.UserError;
import dev.panamax.control.VmConfig;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.CpuPinning;
import dev.panamax.vmm.VmRules;
import java.util.List;

/**
 * {@code --cpus N[,affinity=VCPU@[CPUS],...,io@[CPUS]]}: the vCPU count, and optionally the host
 * CPUs each vCPU's thread and the device I/O threads are pinned to, as Linux CPU lists in brackets:
 * {@code 2,affinity=0@[2],1@[3],io@[0-1]}. The entries after {@code affinity=} are separated by the
 * same commas as the rest; commas inside brackets belong to the CPU list ({@code 0@[2,4]}).
 */
final class CpuOption {
    private CpuOption() {}

    static final String SYNTAX = "N[,affinity=VCPU@[CPUS],...,io@[CPUS]]";

    /** The count and the affinity ({@link CpuAffinity#NONE} when not given). */
    record Parsed(int count, CpuAffinity affinity) {}

    /**
     * @throws UserError naming the option when it is malformed, a vCPU index does not exist or a CPU list is not one
     */
    static Parsed parse(String spec) {
        try {
            return parseChecked(spec);
        } catch (ConfigException e) {
            throw new UserError(e.getMessage());
        }
    }

    private static Parsed parseChecked(String spec) {
        List<String> parts = VmRules.splitOutsideBrackets(spec);
        int count;
        try {
            count = Integer.parseInt(parts.getFirst().strip());
        } catch (NumberFormatException e) {
            throw new UserError("--cpus " + spec + ": '" + parts.getFirst() + "' is not a vCPU count (" + SYNTAX + ")");
        }
        count = VmRules.vcpuCount(count, "--cpus");
        if (parts.size() == 1) {
            return new Parsed(count, CpuAffinity.NONE);
        }
        if (!parts.get(1).startsWith("affinity=")) {
            throw new UserError("--cpus " + spec + ": after the count comes affinity=..., not '" + parts.get(1) + "' (" + SYNTAX + ")");
        }
        String entries = spec.substring(spec.indexOf("affinity=") + "affinity=".length());
        CpuPinning pinning = VmRules.cpuPinning(VmRules.cpuPinning(entries, "--cpus " + spec), count, "--cpus " + spec);
        return new Parsed(count, VmConfig.toApi(pinning));
    }
}
