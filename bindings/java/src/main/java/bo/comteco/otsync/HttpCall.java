package bo.comteco.otsync;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * One HTTP request the library asks a {@link Transport} to carry (otsync_http_call): its method,
 * URL, headers and body are copied into this object, and the answer goes back with exactly one of
 * {@link #complete} or {@link #fail}, from any thread, even after the library gave up on it (it
 * ignores a late answer). A second answer throws {@link IllegalStateException}.
 *
 * <p>An HttpCall that is never answered keeps its native request alive (a small leak), and the
 * sync waits for the request deadline (otsync_http_options.request_timeout_ms).
 */
public final class HttpCall {
    private long ptr; // the otsync_http_call*, 0 once answered; guarded by this
    private final String method;
    private final String url;
    private final List<Map.Entry<String, String>> headers;
    private final byte[] body;
    TransportBridge bridge; // set by the bridge before the transport sees the call

    /** From the native side: the otsync_http_call* and its request, text as UTF-8. */
    HttpCall(long ptr, byte[] method, byte[] url, byte[][] headerNamesAndValues, byte[] body) {
        this.ptr = ptr;
        this.method = new String(method, StandardCharsets.UTF_8);
        this.url = new String(url, StandardCharsets.UTF_8);
        List<Map.Entry<String, String>> h = new ArrayList<>(headerNamesAndValues.length / 2);
        for (int i = 0; i + 1 < headerNamesAndValues.length; i += 2) {
            h.add(new java.util.AbstractMap.SimpleImmutableEntry<>(
                    new String(headerNamesAndValues[i], StandardCharsets.UTF_8),
                    new String(headerNamesAndValues[i + 1], StandardCharsets.UTF_8)));
        }
        this.headers = Collections.unmodifiableList(h);
        this.body = body;
    }

    /** "POST". */
    public String method() {
        return method;
    }

    /** The server URL and path. */
    public String url() {
        return url;
    }

    /** The request headers in the library's order (name, value). */
    public List<Map.Entry<String, String>> headers() {
        return headers;
    }

    /** A copy of the request body. */
    public byte[] body() {
        return body.clone();
    }

    /** The body's length in bytes. */
    public int bodyLength() {
        return body.length;
    }

    /** Whether the call was answered (completed or failed). */
    public synchronized boolean isAnswered() {
        return ptr == 0;
    }

    /**
     * The answer: HTTP status and body (copied).
     *
     * @throws IllegalStateException when the call was already answered
     */
    public void complete(int status, byte[] responseBody) {
        long p = take();
        if (p == 0) {
            throw new IllegalStateException("this HttpCall was already answered");
        }
        nativeComplete(p, status, responseBody == null ? new byte[0] : responseBody);
    }

    /**
     * No answer: {@link OtsyncException#NETWORK}, {@link OtsyncException#TIMEOUT}, {@link
     * OtsyncException#TLS} or {@link OtsyncException#CANCELLED} (others count as NETWORK), and a
     * line for logs.
     *
     * @throws IllegalStateException when the call was already answered
     */
    public void fail(int errorCode, String message) {
        if (!failIfOpen(errorCode, message)) {
            throw new IllegalStateException("this HttpCall was already answered");
        }
    }

    /** {@link #fail} unless already answered; returns whether this call answered it. */
    public boolean failIfOpen(int errorCode, String message) {
        long p = take();
        if (p == 0) {
            return false;
        }
        nativeFail(p, errorCode,
                (message == null ? "" : message).getBytes(StandardCharsets.UTF_8));
        return true;
    }

    /**
     * Hands over the native pointer exactly once (0 after that). The native side takes it the
     * same way (this object's monitor) when the transport's send throws past the bridge.
     */
    private long take() {
        long p;
        synchronized (this) {
            p = ptr;
            ptr = 0;
        }
        TransportBridge b = bridge;
        if (p != 0 && b != null) {
            b.answered(p, this);
        }
        return p;
    }

    @Override
    public String toString() {
        return "HttpCall(" + method + " " + url + ", " + body.length + " bytes)";
    }

    // Registered by the native library's JNI_OnLoad (HttpCall objects exist only after it).
    private static native void nativeComplete(long call, int status, byte[] body);

    private static native void nativeFail(long call, int errorCode, byte[] message);
}
