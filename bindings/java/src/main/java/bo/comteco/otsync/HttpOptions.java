package bo.comteco.otsync;

/**
 * Limits and TLS settings of the built-in HTTP(S) transport (otsync_http_options); {@link
 * #requestTimeoutMs} is also the deadline of each call to an app's {@link Transport}. Zero or
 * null keeps the library's default: connect 10 s, 30 s without a byte moving, 60 s for one
 * request; the system's CA store; no pinning.
 */
public final class HttpOptions {
    int connectTimeoutMs;
    int ioTimeoutMs;
    int requestTimeoutMs;
    String caFile;
    String pinnedSha256;

    public HttpOptions connectTimeoutMs(int ms) {
        connectTimeoutMs = nonNegative(ms, "connectTimeoutMs");
        return this;
    }

    public HttpOptions ioTimeoutMs(int ms) {
        ioTimeoutMs = nonNegative(ms, "ioTimeoutMs");
        return this;
    }

    public HttpOptions requestTimeoutMs(int ms) {
        requestTimeoutMs = nonNegative(ms, "requestTimeoutMs");
        return this;
    }

    /** A PEM file of the CAs to trust instead of the system's. */
    public HttpOptions caFile(String path) {
        caFile = path;
        return this;
    }

    /** The hex SHA-256 of the server certificate (DER). */
    public HttpOptions pinnedSha256(String hex) {
        pinnedSha256 = hex;
        return this;
    }

    static int nonNegative(int v, String what) {
        if (v < 0) {
            throw new IllegalArgumentException(what + " must not be negative: " + v);
        }
        return v;
    }
}
