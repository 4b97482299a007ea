package bo.comteco.otsync;

/**
 * An HTTP transport of the app's own (OkHttp on Android, java.net.http on a desktop, a proxy,
 * certificate pinning): the library hands it each request of an enrollment or a sync as an
 * {@link HttpCall}, and the transport answers it with exactly one {@link HttpCall#complete} or
 * {@link HttpCall#fail}, from any thread, before or after {@link #send} returns.
 *
 * <p>{@code send} and {@code cancel} run on the thread that called {@link OtsyncClient#sync} or
 * {@link OtsyncClient#enroll}; they should not block for long (start the request and return). A
 * {@code send} that throws fails its call with {@link OtsyncException#NETWORK}.
 */
public interface Transport {
    /** Starts carrying {@code call}; answer it now or later, on any thread. */
    void send(HttpCall call);

    /**
     * The library gave up on {@code call} (a cancel or the request deadline): stop it. The call
     * still needs its one answer (a {@code fail} with {@link OtsyncException#CANCELLED} is usual);
     * the library ignores it.
     */
    default void cancel(HttpCall call) {}
}
