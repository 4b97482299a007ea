package bo.comteco.otsync;

/**
 * How a sync waits out a link that does not answer (otsync_retry_policy): exponential back-off
 * with jitter from {@code initialDelayMs}, doubling up to {@code maxDelayMs}, retrying for {@code
 * maxElapsedMs} (0: until cancelled); then {@link OtsyncException#NETWORK} or {@link
 * OtsyncException#TIMEOUT}. The library's default: 1 s, 60 s, 5 minutes, 20 %.
 */
public final class RetryPolicy {
    final int initialDelayMs;
    final int maxDelayMs;
    final int maxElapsedMs;
    final int jitterPercent;

    public RetryPolicy(int initialDelayMs, int maxDelayMs, int maxElapsedMs, int jitterPercent) {
        this.initialDelayMs = HttpOptions.nonNegative(initialDelayMs, "initialDelayMs");
        this.maxDelayMs = HttpOptions.nonNegative(maxDelayMs, "maxDelayMs");
        this.maxElapsedMs = HttpOptions.nonNegative(maxElapsedMs, "maxElapsedMs");
        if (jitterPercent < 0 || jitterPercent > 100) {
            throw new IllegalArgumentException("jitterPercent must be 0..100: " + jitterPercent);
        }
        this.jitterPercent = jitterPercent;
    }
}
