package dev.panamax.api;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a balloon holds and what the guest last reported, as Firecracker's {@code GET
 * /balloon/statistics}: the target (the host's) and actual (the guest driver's word) sizes, and the
 * guest's memory statistics by Firecracker's names ({@code free_memory}, {@code total_memory},
 * {@code available_memory}, ... in bytes; {@code major_faults}, ... as counts), only those it reported.
 */
public record BalloonStatistics(long targetPages, long actualPages, long targetMib, long actualMib, Map<String, Long> values) {
    public BalloonStatistics {
        values = Collections.unmodifiableMap(new LinkedHashMap<>(values)); // in the tags' order
    }
}
