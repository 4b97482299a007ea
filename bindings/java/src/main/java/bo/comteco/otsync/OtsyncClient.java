package bo.comteco.otsync;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The offline replica of a technician's handheld: the Java face of client-core's C API
 * (otsync/client.h). Results are the C API's JSON documents as Strings; failures throw {@link
 * OtsyncException} with the C error code and message.
 *
 * <p>Threads: one client may be used from several threads at once, as the C handle may. A sync
 * or an enrollment blocks its thread on the network; {@link #cancel} from another thread ends it
 * within a second. {@link #close} cancels what is in progress, waits for the calls in progress to
 * return, then closes the database; calls after it throw {@link IllegalStateException}.
 *
 * <p>The native library is {@code libotsync_jni.so}, found on {@code java.library.path}, or at
 * the absolute path in the system property {@code otsync.jni.library}.
 */
public final class OtsyncClient implements AutoCloseable {
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private long handle; // the native binding; written under the write lock only
    private volatile boolean closing;
    private final Object closeLock = new Object();

    private OtsyncClient(long handle) {
        this.handle = handle;
    }

    /**
     * Opens (creating if needed) the device database at {@code dbPath}, exclusively ({@link
     * OtsyncException#BUSY} while another handle holds it), with the 32-byte database key from
     * the platform keystore (the caller may wipe it afterwards).
     */
    public static OtsyncClient open(String dbPath, byte[] key) {
        if (dbPath == null) {
            throw new NullPointerException("dbPath");
        }
        if (key == null || key.length != 32) {
            throw new IllegalArgumentException("the database key must be 32 bytes");
        }
        loadLibrary();
        return new OtsyncClient(nativeOpen(utf8(dbPath), key));
    }

    /** The native library's version, "MAJOR.MINOR.PATCH" (otsync_version). */
    public static String version() {
        loadLibrary();
        return text(nativeVersion());
    }

    /**
     * Enrolls this device with the server at {@code serverUrl} using a one-time code from
     * otsync-admin ({@code label} may be null), through the transport set with {@link
     * #setTransport} or the built-in one.
     */
    public void enroll(String serverUrl, String code, String label) {
        long h = acquire();
        try {
            nativeEnroll(h, utf8(serverUrl), utf8(code), utf8(label));
        } finally {
            release();
        }
    }

    /** {@link #sync(ProgressListener)} without a listener. */
    public String sync() {
        return sync(null);
    }

    /**
     * Pushes the outbox and pulls until the server has nothing more; returns the result as JSON:
     * {"requests","sent","flagged","rejected","received","reissued","retries","bytes_up",
     * "bytes_down","pending","evicted_ots":[hex],"conflicts"}. Refusals throw (client.h says
     * what each means); nothing recorded is lost on any of them.
     *
     * @param listener told how it goes (may be null); see {@link ProgressListener}
     */
    public String sync(ProgressListener listener) {
        long h = acquire();
        try {
            return text(nativeSync(h, listener));
        } finally {
            release();
        }
    }

    /**
     * The app's transport for every later enroll and sync, or null for the built-in one. A sync
     * in progress keeps the transport it started with.
     */
    public void setTransport(Transport transport) {
        long h = acquire();
        try {
            nativeSetTransport(h, transport == null ? null : new TransportBridge(transport));
        } finally {
            release();
        }
    }

    /** Limits and TLS settings of the built-in transport; the deadline of an app's transport. */
    public void setHttpOptions(HttpOptions options) {
        if (options == null) {
            throw new NullPointerException("options");
        }
        long h = acquire();
        try {
            nativeSetHttpOptions(h, options.connectTimeoutMs, options.ioTimeoutMs,
                    options.requestTimeoutMs, utf8(options.caFile), utf8(options.pinnedSha256));
        } finally {
            release();
        }
    }

    /** How a sync waits out a link that does not answer. */
    public void setRetryPolicy(RetryPolicy policy) {
        if (policy == null) {
            throw new NullPointerException("policy");
        }
        long h = acquire();
        try {
            nativeSetRetryPolicy(h, policy.initialDelayMs, policy.maxDelayMs,
                    policy.maxElapsedMs, policy.jitterPercent);
        } finally {
            release();
        }
    }

    /**
     * Ends the enroll or sync in progress, from any thread: it throws {@link
     * OtsyncException#CANCELLED} within a second, everything recorded kept. No-op when idle or
     * closed.
     */
    public void cancel() {
        lock.readLock().lock();
        try {
            if (handle != 0) {
                nativeCancel(handle);
            }
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * My OTs as a JSON array of {"id","kind","status","address","window_start","window_end",
     * "customer_name","modality"}; {@code status} filters when not null.
     */
    public String listOts(String status) {
        long h = acquire();
        try {
            return text(nativeListOts(h, utf8(status)));
        } finally {
            release();
        }
    }

    /** My OTs whose visit window overlaps [fromMs, toMs) (Unix ms; 0 = open end). */
    public String listOtsBetween(String status, long fromMs, long toMs) {
        long h = acquire();
        try {
            return text(nativeListOtsBetween(h, utf8(status), fromMs, toMs));
        } finally {
            release();
        }
    }

    /** One OT with its case summary, contact, expected equipment and recorded rows (JSON). */
    public String showOt(String otId) {
        long h = acquire();
        try {
            return text(nativeShowOt(h, utf8(otId)));
        } finally {
            release();
        }
    }

    /**
     * Moves my OT: "en_route", "on_site", "completed", or "failed" with a reason (else null).
     */
    public void setStatus(String otId, String status, String reason) {
        long h = acquire();
        try {
            nativeSetStatus(h, utf8(otId), utf8(status), utf8(reason));
        } finally {
            release();
        }
    }

    /** {@link #setStatus(String, String, String)} without a reason. */
    public void setStatus(String otId, String status) {
        setStatus(otId, status, null);
    }

    /**
     * Records a collected item (the Anexo 4 row), on site only: {@code reason} "migration" or
     * "damaged" (then {@code defect} is required); {@code description}, {@code defect} and
     * {@code observations} may be null.
     */
    public Verdict collect(String otId, String serial, String description, String reason,
            String defect, String observations) {
        long h = acquire();
        try {
            return Verdict.of(nativeCollect(h, utf8(otId), utf8(serial), utf8(description),
                    utf8(reason), utf8(defect), utf8(observations)));
        } finally {
            release();
        }
    }

    /** Voids a mistaken row (it stays on record, marked void). */
    public void voidItem(String otId, String serial) {
        long h = acquire();
        try {
            nativeVoidItem(h, utf8(otId), utf8(serial));
        } finally {
            release();
        }
    }

    /** Records that equipment the customer carried was verified (modalities 2 and 3). */
    public Verdict verify(String otId, String serial) {
        long h = acquire();
        try {
            return Verdict.of(nativeVerify(h, utf8(otId), utf8(serial)));
        } finally {
            release();
        }
    }

    /** Why an expected serial is missing from the OT ("el cliente la conserva", "extraviado"). */
    public void reportMissing(String otId, String serial, String reason) {
        long h = acquire();
        try {
            nativeReportMissing(h, utf8(otId), utf8(serial), utf8(reason));
        } finally {
            release();
        }
    }

    /** The customer's signature as PNG bytes (at most 256 KiB), bound to the rows as they are. */
    public void sign(String otId, byte[] png) {
        long h = acquire();
        try {
            nativeSign(h, utf8(otId), png == null ? new byte[0] : png);
        } finally {
            release();
        }
    }

    /**
     * A photo (a whole JPEG or PNG, at most 4 MiB) of an item of the OT, expected or collected,
     * by serial: a damaged or missing one. Kept encrypted and uploaded after the rows. Returns
     * the photo's BLAKE2b-256 (64 hex digits). {@link OtsyncException#NOT_FOUND} for a serial
     * not on the OT, {@link OtsyncException#UNSUPPORTED_MEDIA_TYPE} for other bytes.
     */
    public String photo(String otId, String serial, byte[] image) {
        long h = acquire();
        try {
            String json = text(nativePhoto(h, utf8(otId), utf8(serial),
                    image == null ? new byte[0] : image));
            return json.length() >= 2 && json.startsWith("\"") && json.endsWith("\"")
                    ? json.substring(1, json.length() - 1)
                    : json;
        } finally {
            release();
        }
    }

    /**
     * The delivery act: hands a draft handover of this technician to the warehouse, signed
     * (a whole PNG) over its rows, under the name {@code deliveredBy} (may be null). Its rows
     * are then frozen.
     */
    public void deliverHandover(String handoverId, String deliveredBy, byte[] png) {
        long h = acquire();
        try {
            nativeDeliverHandover(h, utf8(handoverId), deliveredBy == null ? null : utf8(deliveredBy),
                    png == null ? new byte[0] : png);
        } finally {
            release();
        }
    }

    /** Reopens a signed OT's rows, on site, saying why. */
    public void reopenSignature(String otId, String reason) {
        long h = acquire();
        try {
            nativeReopenSignature(h, utf8(otId), utf8(reason));
        } finally {
            release();
        }
    }

    /** A handover of every item in my custody not yet handed over; returns its id (hex). */
    public String createHandover(String zone) {
        long h = acquire();
        try {
            String json = text(nativeCreateHandover(h, utf8(zone)));
            // A JSON string of 32 hex digits: "...".
            return json.length() >= 2 && json.startsWith("\"") && json.endsWith("\"")
                    ? json.substring(1, json.length() - 1)
                    : json;
        } finally {
            release();
        }
    }

    /**
     * My handovers (Anexo 4) as a JSON array of {"id","status","zone","date",
     * "rows":[{"item","serial"}],"receipt":null|{...,"verified"}}: the warehouse's receipt,
     * checked against the server key stored at enrollment, is the technician's proof of delivery.
     */
    public String handovers() {
        long h = acquire();
        try {
            return text(nativeHandovers(h));
        } finally {
            release();
        }
    }

    /**
     * Checks that the handover was received and its receipt's signature verifies; else throws
     * {@link OtsyncException#NOT_FOUND}, {@link OtsyncException#INVALID_TRANSITION} (not received
     * yet) or {@link OtsyncException#BAD_SIGNATURE}.
     */
    public void verifyReceipt(String handoverId) {
        long h = acquire();
        try {
            nativeVerifyReceipt(h, utf8(handoverId));
        } finally {
            release();
        }
    }

    /**
     * {"enrolled","replica","pending","last_sync":{"at","result"},"notices":[...],
     * "rejections":[...],"conflicts":[...]}.
     */
    public String status() {
        long h = acquire();
        try {
            return text(nativeStatus(h));
        } finally {
            release();
        }
    }

    /**
     * Cancels what is in progress, waits for the calls in progress to return, and closes the
     * database. Closing twice is harmless. Not from a progress listener or a transport callback
     * of this client (IllegalStateException: it would wait for itself).
     */
    @Override
    public void close() {
        if (lock.getReadHoldCount() > 0) {
            throw new IllegalStateException(
                    "close() from inside a callback of this OtsyncClient would wait for itself");
        }
        synchronized (closeLock) {
            closing = true;
            // Cancel until the calls in progress have returned: a cancel that arrives as a
            // sync starts is not seen by it, so it is repeated. Only a closer frees the handle,
            // and closers take turns, so reading it here without the lock is safe.
            boolean interrupted = false;
            while (true) {
                if (handle != 0) {
                    nativeCancel(handle);
                }
                try {
                    if (lock.writeLock().tryLock(100, TimeUnit.MILLISECONDS)) {
                        break;
                    }
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            try {
                if (handle != 0) {
                    long h = handle;
                    handle = 0;
                    nativeClose(h);
                }
            } finally {
                lock.writeLock().unlock();
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    private long acquire() {
        lock.readLock().lock();
        if (handle == 0 || (closing && lock.getReadHoldCount() == 1)) {
            lock.readLock().unlock();
            throw new IllegalStateException("this OtsyncClient is closed");
        }
        return handle;
    }

    private void release() {
        lock.readLock().unlock();
    }

    /** Text to the C API: UTF-8 bytes (no terminator), or null; NUL is refused. */
    static byte[] utf8(String s) {
        if (s == null) {
            return null;
        }
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("text for the otsync C API may not hold NUL");
        }
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String text(byte[] utf8) {
        return new String(utf8, StandardCharsets.UTF_8);
    }

    private static boolean loaded;

    static synchronized void loadLibrary() {
        if (loaded) {
            return;
        }
        String path = System.getProperty("otsync.jni.library");
        if (path != null && !path.isEmpty()) {
            System.load(path);
        } else {
            System.loadLibrary("otsync_jni");
        }
        loaded = true;
    }

    // The natives (src/main/cpp/otsync_jni.cpp, registered in JNI_OnLoad): text as UTF-8
    // bytes, failures thrown as OtsyncException.
    private static native byte[] nativeVersion();

    static native byte[] nativeErrorName(int code);

    private static native long nativeOpen(byte[] path, byte[] key);

    private static native void nativeClose(long h);

    private static native void nativeEnroll(long h, byte[] url, byte[] code, byte[] label);

    private static native byte[] nativeSync(long h, ProgressListener listener);

    private static native void nativeSetTransport(long h, TransportBridge bridge);

    private static native void nativeSetHttpOptions(long h, int connectMs, int ioMs,
            int requestMs, byte[] caFile, byte[] pinnedSha256);

    private static native void nativeSetRetryPolicy(long h, int initialMs, int maxMs,
            int maxElapsedMs, int jitterPercent);

    private static native void nativeCancel(long h);

    private static native byte[] nativeListOts(long h, byte[] status);

    private static native byte[] nativeListOtsBetween(long h, byte[] status, long fromMs,
            long toMs);

    private static native byte[] nativeShowOt(long h, byte[] ot);

    private static native void nativeSetStatus(long h, byte[] ot, byte[] status, byte[] reason);

    private static native int nativeCollect(long h, byte[] ot, byte[] serial, byte[] description,
            byte[] reason, byte[] defect, byte[] observations);

    private static native void nativeVoidItem(long h, byte[] ot, byte[] serial);

    private static native int nativeVerify(long h, byte[] ot, byte[] serial);

    private static native void nativeReportMissing(long h, byte[] ot, byte[] serial,
            byte[] reason);

    private static native void nativeSign(long h, byte[] ot, byte[] png);

    private static native byte[] nativePhoto(long h, byte[] ot, byte[] serial, byte[] image);

    private static native void nativeDeliverHandover(long h, byte[] handover, byte[] deliveredBy,
            byte[] png);

    private static native void nativeReopenSignature(long h, byte[] ot, byte[] reason);

    private static native byte[] nativeCreateHandover(long h, byte[] zone);

    private static native byte[] nativeHandovers(long h);

    private static native void nativeVerifyReceipt(long h, byte[] handover);

    private static native byte[] nativeStatus(long h);
}
