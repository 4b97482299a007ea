package bo.comteco.otsync;

import java.util.concurrent.ConcurrentHashMap;

/**
 * What the native otsync_transport calls: one per {@link OtsyncClient#setTransport}. Keeps the
 * calls in flight by their native pointer, so the library's cancel reaches the right HttpCall.
 */
final class TransportBridge {
    final Transport transport;
    private final ConcurrentHashMap<Long, HttpCall> inFlight = new ConcurrentHashMap<>();

    TransportBridge(Transport transport) {
        this.transport = transport;
    }

    /** From otsync_transport.send, on the syncing thread. Never throws (but for Errors). */
    void send(long ptr, HttpCall call) {
        call.bridge = this;
        inFlight.put(ptr, call);
        try {
            transport.send(call);
        } catch (Throwable t) {
            call.failIfOpen(OtsyncException.NETWORK, "the app's transport threw " + t);
        }
    }

    /** From otsync_transport.cancel, on the syncing thread: the library gave up on the call. */
    void cancel(long ptr) {
        HttpCall call = inFlight.get(ptr);
        if (call == null) {
            return; // already answered
        }
        try {
            transport.cancel(call);
        } catch (Throwable t) {
            // The call still gets its answer from the transport; nothing to do here.
        }
    }

    /** The call was answered: it leaves the calls in flight. */
    void answered(long ptr, HttpCall call) {
        inFlight.remove(ptr, call);
    }

    /** Calls sent and not answered yet. */
    int inFlightCount() {
        return inFlight.size();
    }
}
