package dev.panamax.guest;

/** One place where long-running builds and downloads say what they are doing (on stderr, so stdout stays data). */
public final class Progress {
    private Progress() {}

    public static void say(String message) {
        System.err.println("panamax: " + message);
        System.err.flush();
    }

    /** Formats a duration in seconds as "4m05s" or "12s". */
    public static String seconds(long seconds) {
        return seconds >= 60 ? "%dm%02ds".formatted(seconds / 60, seconds % 60) : seconds + "s";
    }
}
