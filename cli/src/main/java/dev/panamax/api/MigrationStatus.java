package dev.panamax.api;

/**
 * How far a live migration is, or how it ended.
 *
 * @param phase connecting, configuring, copying memory, stopped copying (the guest is paused),
 *     handing over, and then completed, failed, cancelled or commit unconfirmed (the guest may run
 *     at the destination and stays paused here)
 * @param round the round of memory being sent: 0 is the first copy of all of it
 * @param bytesSent everything sent so far
 * @param lastRoundPages the pages the last finished round sent
 * @param dirtyPagesPerSecond how fast the guest dirtied memory during the last round
 * @param bandwidthBytesPerSecond how fast the last round went
 * @param expectedDowntimeMillis what stopping the guest now would cost at that bandwidth
 * @param downtimeMillis how long the guest stood still, once completed; else 0
 * @param totalMillis from the start until now, or until the end
 * @param error why it failed or was cancelled, and where the guest is; else null
 */
public record MigrationStatus(Phase phase, int round, long bytesSent, long lastRoundPages, long dirtyPagesPerSecond,
        long bandwidthBytesPerSecond, long expectedDowntimeMillis, long downtimeMillis, long totalMillis, String error) {

    public enum Phase {
        CONNECTING, CONFIGURING, COPYING_MEMORY, STOPPED_COPYING, HANDING_OVER, COMPLETED, FAILED, CANCELLED, COMMIT_UNCONFIRMED;

        /** Whether the migration is over (completed, failed, cancelled, or left unconfirmed). */
        public boolean over() {
            return this == COMPLETED || this == FAILED || this == CANCELLED || this == COMMIT_UNCONFIRMED;
        }
    }
}
