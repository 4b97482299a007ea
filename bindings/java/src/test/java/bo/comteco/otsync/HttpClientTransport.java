package bo.comteco.otsync;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLException;

/**
 * The host transport of the test: Java's own java.net.http.HttpClient, asynchronous (sendAsync),
 * answering each call from the client's executor threads, as an Android app would hand the
 * library OkHttp. Counts what it did so the test can check it carried the sync.
 */
final class HttpClientTransport implements Transport {
    /** Headers java.net.http sets itself and refuses from the caller. */
    private static final Set<String> RESTRICTED =
            Set.of("connection", "content-length", "expect", "host", "upgrade");

    private final HttpClient http = HttpClient.newBuilder()
                                            .version(HttpClient.Version.HTTP_1_1)
                                            .connectTimeout(Duration.ofSeconds(5))
                                            .build();
    private final Map<HttpCall, CompletableFuture<HttpResponse<byte[]>>> inFlight =
            new ConcurrentHashMap<>();
    final AtomicInteger sent = new AtomicInteger();
    final AtomicInteger completed = new AtomicInteger();
    final AtomicInteger failed = new AtomicInteger();
    final AtomicInteger cancelled = new AtomicInteger();
    /** Answers given on a thread other than the one that called send. */
    final AtomicInteger answeredElsewhere = new AtomicInteger();
    final Set<String> answeringThreads = ConcurrentHashMap.newKeySet();

    @Override
    public void send(HttpCall call) {
        sent.incrementAndGet();
        final Thread sender = Thread.currentThread();
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(call.url()))
                                        .method(call.method(),
                                                HttpRequest.BodyPublishers.ofByteArray(call.body()));
        for (Map.Entry<String, String> h : call.headers()) {
            if (!RESTRICTED.contains(h.getKey().toLowerCase(Locale.ROOT))) {
                b.header(h.getKey(), h.getValue());
            }
        }
        CompletableFuture<HttpResponse<byte[]>> f =
                http.sendAsync(b.build(), HttpResponse.BodyHandlers.ofByteArray());
        inFlight.put(call, f);
        f.whenComplete((response, error) -> {
            inFlight.remove(call);
            if (Thread.currentThread() != sender) {
                answeredElsewhere.incrementAndGet();
            }
            answeringThreads.add(Thread.currentThread().getName());
            if (error == null) {
                completed.incrementAndGet();
                call.complete(response.statusCode(), response.body());
            } else {
                failed.incrementAndGet();
                call.failIfOpen(codeOf(error), String.valueOf(error));
            }
        });
    }

    @Override
    public void cancel(HttpCall call) {
        cancelled.incrementAndGet();
        CompletableFuture<HttpResponse<byte[]>> f = inFlight.get(call);
        if (f != null) {
            f.cancel(true); // whenComplete then fails the call with CANCELLED
        }
    }

    int inFlight() {
        return inFlight.size();
    }

    private static int codeOf(Throwable e) {
        while (e instanceof CompletionException && e.getCause() != null) {
            e = e.getCause();
        }
        if (e instanceof CancellationException) {
            return OtsyncException.CANCELLED;
        }
        if (e instanceof HttpTimeoutException) {
            return OtsyncException.TIMEOUT;
        }
        if (e instanceof SSLException) {
            return OtsyncException.TLS;
        }
        if (e instanceof ConnectException || e instanceof IOException) {
            return OtsyncException.NETWORK;
        }
        return OtsyncException.NETWORK;
    }
}
