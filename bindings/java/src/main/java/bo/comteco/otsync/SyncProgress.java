package bo.comteco.otsync;

/** What a sync reports as it goes (otsync_sync_progress). */
public final class SyncProgress {
    /** Ops the server acknowledged so far. */
    public final long sent;
    /** Ops still to send. */
    public final long pending;
    /** Ops pulled so far. */
    public final long received;
    /** The server's estimate of ops still to pull. */
    public final long remaining;
    public final long bytesUp;
    public final long bytesDown;
    /** Failed tries in a row; 0 while the link answers. */
    public final int attempt;
    /** Greater than 0: the library waits this long, then tries again. */
    public final long retryInMs;
    /** Why it waits ({@link OtsyncException#NETWORK}, {@link OtsyncException#TIMEOUT}...), or 0. */
    public final int lastError;
    /** The line for logs that goes with {@link #lastError}, or "". */
    public final String lastErrorMessage;

    SyncProgress(long sent, long pending, long received, long remaining, long bytesUp,
            long bytesDown, int attempt, long retryInMs, int lastError, byte[] lastErrorMessage) {
        this.sent = sent;
        this.pending = pending;
        this.received = received;
        this.remaining = remaining;
        this.bytesUp = bytesUp;
        this.bytesDown = bytesDown;
        this.attempt = attempt;
        this.retryInMs = retryInMs;
        this.lastError = lastError;
        this.lastErrorMessage = lastErrorMessage == null
                ? ""
                : new String(lastErrorMessage, java.nio.charset.StandardCharsets.UTF_8);
    }

    @Override
    public String toString() {
        return "sent " + sent + ", pending " + pending + ", received " + received + ", remaining "
                + remaining + ", up " + bytesUp + " B, down " + bytesDown + " B"
                + (retryInMs > 0 ? ", attempt " + attempt + ", retry in " + retryInMs + " ms ("
                                + lastError + ": " + lastErrorMessage + ")"
                                : "");
    }
}
