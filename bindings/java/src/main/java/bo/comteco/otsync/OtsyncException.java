package bo.comteco.otsync;

import java.nio.charset.StandardCharsets;

/**
 * A failure of the otsync library: the C API's error code ({@link #code()}, the numbers of
 * {@code otsync_error_code} in client.h, the same as the server's JSON errors) and its one-line
 * message (for logs; user-facing text comes from the app).
 *
 * <p>Unchecked, like the rest of the binding's errors: a sync's {@link #NETWORK}, {@link #TIMEOUT}
 * or {@link #CANCELLED} are outcomes to expect and handle, and nothing was lost on any of them.
 */
public class OtsyncException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public static final int INTERNAL = 1;
    public static final int INVALID_ARGUMENT = 2;
    public static final int TRUNCATED = 3;
    public static final int MALFORMED = 4;
    public static final int TOO_LARGE = 5;
    public static final int WRONG_TYPE = 6;
    public static final int UNKNOWN_FIELD = 7;
    public static final int MISSING_FIELD = 8;
    public static final int INVALID_UTF8 = 9;
    public static final int OUT_OF_RANGE = 10;
    public static final int UNKNOWN_ENTITY_TYPE = 11;
    public static final int UNKNOWN_ENTITY_FIELD = 12;
    public static final int KIND_MISMATCH = 13;
    public static final int VALUE_TYPE_MISMATCH = 14;
    public static final int OP_ID_REUSED = 15;
    public static final int PERMISSION_DENIED = 16;
    public static final int INVALID_TRANSITION = 17;
    public static final int CLOCK_SKEW = 18;
    public static final int UNSUPPORTED_PROTOCOL = 19;
    public static final int INVALID_VALUE = 20;
    public static final int UNAUTHENTICATED = 21;
    public static final int SERVER_NOT_FOUND = 22;
    public static final int CONFLICT = 23;
    public static final int RATE_LIMITED = 24;
    public static final int REQUIREMENTS_INCOMPLETE = 25;
    public static final int DEVICE_REVOKED = 26;
    public static final int UNKNOWN_DEVICE = 27;
    public static final int BAD_SIGNATURE = 28;
    public static final int USER_DISABLED = 29;
    public static final int REPLAYED = 30;
    public static final int SIGNED_ROWS = 31;
    public static final int UNSUPPORTED_MEDIA_TYPE = 33;
    public static final int NOT_ENROLLED = 100;
    public static final int NOT_FOUND = 101;
    public static final int NETWORK = 102;
    public static final int REVOKED = 103;
    public static final int WRONG_KEY = 104;
    public static final int BUSY = 105;
    public static final int TIMEOUT = 106;
    public static final int CANCELLED = 107;
    public static final int TLS = 108;

    private final int code;

    public OtsyncException(int code, String message) {
        super(message);
        this.code = code;
    }

    /** From the native side: the message as the C API's UTF-8 bytes. */
    OtsyncException(int code, byte[] utf8Message) {
        this(code, utf8Message == null ? "" : new String(utf8Message, StandardCharsets.UTF_8));
    }

    /** The C API's error code ({@code otsync_error_code}). */
    public int code() {
        return code;
    }

    /**
     * The stable spelling of the code, for logs and telemetry (otsync_error_name): "network",
     * "timeout", "cancelled", the server's wire code for 1..99, "unknown" for any other number.
     */
    public String errorName() {
        OtsyncClient.loadLibrary();
        return new String(OtsyncClient.nativeErrorName(code), StandardCharsets.UTF_8);
    }

    @Override
    public String toString() {
        return "OtsyncException(" + code + "): " + getMessage();
    }
}
