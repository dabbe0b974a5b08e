package dev.panamax.cli.image;

import dev.panamax.cli.common.UserError;
import dev.panamax.storage.image.BackingChain;
import dev.panamax.storage.image.BackingSearch;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

@Command(name = "chain", mixinStandardHelpOptions = true,
        description = {"Show an image's backing chain, each link with its state, and find a missing backing file.",
            "A missing backing file is looked for in the --search directories and the overlay's own (only the files"
                + " directly in them): files in the recorded format with a fitting virtual size, the recorded file name"
                + " first. Each is shown with the 'panamax image rebase -u' command that would point the overlay at it.",
            "Nothing is changed without --fix."},
        exitCodeListHeading = "Exit status:%n",
        exitCodeList = {"0:the chain is whole (warnings, such as a backing file smaller than its overlay, may be shown)",
            "2:bad input: the image does not exist, a search directory is not one",
            "4:a link is broken: missing, unreadable, wrong format, unsupported, corrupt, a cycle or too deep"})
final class ChainCommand implements Callable<Integer> {
    /** The exit status of a broken chain. */
    static final int BROKEN = 4;
    /** Candidates shown per missing link in human output (JSON has them all). */
    private static final int SHOWN_CANDIDATES = 10;

    @Spec
    CommandSpec spec;

    @Option(names = "--search", paramLabel = "DIR", description = "a directory to look in for a missing backing file (repeatable)")
    List<Path> search = new ArrayList<>();

    @Option(names = "--fix", description = "point the overlay at the missing backing file's candidate when exactly one has"
            + " its file name (and a fitting format and size); otherwise list them and change nothing")
    boolean fix;

    @Option(names = "--output", paramLabel = "human|json", defaultValue = "human", description = "output format (default: ${DEFAULT-VALUE})")
    String output;

    @Option(names = {"-f", "--format"}, description = ImageCommand.SOURCE_FORMAT)
    String format;

    @Parameters(paramLabel = "IMAGE")
    Path image;

    @Override
    public Integer call() {
        if (!output.equals("human") && !output.equals("json")) {
            throw new UserError("--output must be human or json, not '" + output + "'");
        }
        return ImageCommand.run(() -> {
            BackingChain.Options options = BackingChain.Options.of(ImageCommand.format(format), search);
            BackingChain.Chain chain;
            List<BackingChain.Fix> fixes = List.of();
            String unfixed = null;
            if (fix) {
                BackingChain.Mended m = BackingChain.mend(image, options);
                chain = m.after();
                fixes = m.fixes();
                unfixed = whyNotFixed(chain);
            } else {
                chain = BackingChain.walk(image, options);
                unfixed = fixHint(chain);
            }
            PrintWriter out = spec.commandLine().getOut();
            out.println(output.equals("json") ? toJson(chain, fixes) : toText(chain, fixes, unfixed));
            return chain.whole() ? 0 : BROKEN;
        });
    }

    /** What --fix would do, when it would apply a candidate; else null. */
    private static String fixHint(BackingChain.Chain chain) {
        BackingChain.Link broken = chain.brokenLink();
        if (broken == null || broken.state() != BackingChain.State.MISSING) return null;
        BackingSearch.Candidate only = BackingSearch.onlySameName(broken.candidates());
        return only == null ? null : "With --fix, the chain would be mended with " + printable(only.path().toString())
                + ", the one candidate with the recorded file name.";
    }

    /** Why --fix left a missing link as it is, or null when nothing is missing. */
    private static String whyNotFixed(BackingChain.Chain chain) {
        BackingChain.Link broken = chain.brokenLink();
        if (broken == null) return null;
        if (broken.state() != BackingChain.State.MISSING) return "--fix mends only a missing backing file; this link is "
                + broken.state().label() + ", so nothing more was changed";
        long same = broken.candidates().stream().filter(BackingSearch.Candidate::sameName).count();
        if (same == 0) return "--fix changed nothing: no candidate has the file name " + fileName(broken.name())
                + (broken.candidates().isEmpty() ? "" : "; if one of those listed is the file, run its command");
        return "--fix changed nothing: " + same + " candidates have the file name " + fileName(broken.name())
                + "; pick the right one and run its command";
    }

    static String toText(BackingChain.Chain chain, List<BackingChain.Fix> fixes, String unfixed) {
        StringBuilder s = new StringBuilder();
        for (BackingChain.Fix f : fixes) {
            s.append("fixed: ").append(printable(f.overlay().toString())).append(" now has backing file ").append(printable(f.candidate().backingName()))
                    .append(" (").append(f.candidate().format().id()).append(")\n");
        }
        for (BackingChain.Link l : chain.links()) {
            s.append('[').append(l.depth()).append("] ").append(printable(l.path().toString()));
            if (l.name() != null) {
                s.append(" (recorded as \"").append(printable(l.name())).append('"');
                s.append(l.recordedFormat() == null ? ", no format recorded" : ", format " + printable(l.recordedFormat()));
                s.append(')');
            }
            s.append(": ");
            if (l.format() != null) s.append(l.format().id()).append(", ");
            if (l.virtualSize() >= 0) s.append(Sizes.human(l.virtualSize())).append(" (").append(l.virtualSize()).append(" bytes), ");
            s.append(l.state().label()).append('\n');
            if (l.message() != null) s.append("    ").append(printable(l.message())).append('\n');
            for (String n : l.notes()) s.append("    note: ").append(printable(n)).append('\n');
            if (l.state() == BackingChain.State.MISSING) {
                if (l.candidates().isEmpty()) {
                    s.append("    no candidate found (searched the overlay's directory")
                            .append(" and the --search directories given)\n");
                } else {
                    s.append("    candidates, best first:\n");
                    int shown = 0;
                    for (BackingSearch.Candidate c : l.candidates()) {
                        if (shown++ == SHOWN_CANDIDATES) {
                            s.append("      ... and ").append(l.candidates().size() - SHOWN_CANDIDATES).append(" more (--output json lists them all)\n");
                            break;
                        }
                        s.append("      ").append(printable(c.path().toString())).append(": ").append(c.format().id()).append(", ")
                                .append(Sizes.human(c.virtualSize())).append('\n');
                        s.append("        ").append(printable(String.join("; ", c.reasons()))).append('\n');
                        s.append("        ").append(printable(c.rebaseCommand())).append('\n');
                    }
                }
            }
        }
        BackingChain.Link broken = chain.brokenLink();
        if (broken == null) {
            s.append("The chain is whole: ").append(chain.links().size()).append(chain.links().size() == 1 ? " image." : " images.");
        } else {
            s.append("The chain is broken at link ").append(broken.depth()).append(" (").append(broken.state().label()).append(").");
        }
        if (unfixed != null) s.append('\n').append(unfixed);
        return s.toString();
    }

    static String toJson(BackingChain.Chain chain, List<BackingChain.Fix> fixes) {
        List<String> links = new ArrayList<>();
        for (BackingChain.Link l : chain.links()) {
            Json j = new Json().field("depth", l.depth()).field("filename", l.path().toString());
            if (l.name() != null) j.field("backing-filename", l.name());
            if (l.recordedFormat() != null) j.field("backing-filename-format", l.recordedFormat());
            if (l.format() != null) j.field("format", l.format().id());
            if (l.virtualSize() >= 0) j.field("virtual-size", l.virtualSize());
            j.field("state", l.state().label()).field("broken", l.state().broken());
            if (l.message() != null) j.field("message", l.message());
            j.raw("notes", strings(l.notes()));
            if (l.state() == BackingChain.State.MISSING) {
                List<String> candidates = new ArrayList<>();
                for (BackingSearch.Candidate c : l.candidates()) {
                    candidates.add(new Json().field("filename", c.path().toString()).field("backing-filename", c.backingName())
                            .field("format", c.format().id()).field("virtual-size", c.virtualSize())
                            .field("same-name", c.sameName()).field("sampled-clusters", c.sampledClusters())
                            .field("shared-clusters", c.sharedClusters()).raw("reasons", strings(c.reasons()))
                            .field("command", c.rebaseCommand()).toString());
                }
                j.raw("candidates", "[" + String.join(", ", candidates) + "]");
            }
            links.add(j.toString());
        }
        List<String> fixed = new ArrayList<>();
        for (BackingChain.Fix f : fixes) {
            fixed.add(new Json().field("overlay", f.overlay().toString()).field("backing-filename", f.candidate().backingName())
                    .field("backing-filename-format", f.candidate().format().id()).toString());
        }
        return new Json().field("whole", chain.whole()).raw("fixes", "[" + String.join(", ", fixed) + "]")
                .raw("links", "[\n  " + String.join(",\n  ", links) + "\n]").toString();
    }

    private static String strings(List<String> values) {
        return "[" + String.join(", ", values.stream().map(Json::quote).toList()) + "]";
    }

    private static String fileName(String name) {
        Path p = Path.of(name).getFileName();
        return p == null ? printable(name) : printable(p.toString());
    }

    private static String printable(String s) {
        return BackingChain.printable(s);
    }
}
