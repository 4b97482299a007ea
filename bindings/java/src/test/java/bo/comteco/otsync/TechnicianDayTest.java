package bo.comteco.otsync;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A technician's day through the Java binding, against a real otsync-server (run_test.sh starts
 * it with its demo data), with java.net.http.HttpClient as the host transport: enroll, sync, the
 * visit of tec.quispe's withdraw OT (en route, on site, collect, report the missing adapter and
 * remote, sign, complete), sync again, a second device that pulls the completed OT from the
 * server; a sync cancelled from another thread while the transport holds its request; a sync
 * whose transport never answers ending in a timeout; a progress listener that stops or throws;
 * close during a sync; and the errors the API gives.
 *
 * <p>Usage: TechnicianDayTest SERVER_URL ENROLL_CODE DB_PATH [SECOND_CODE]. Prints each step;
 * exits 0 when all passed, 1 at the first failure (one line on stderr says which), 2 on usage.
 */
public final class TechnicianDayTest {
    static final String EXPECTED_SERIAL = "HWTC7F300999";

    static final byte[] KEY = new byte[32];
    static final byte[] OTHER_KEY = new byte[32];

    static {
        for (int i = 0; i < 32; i++) {
            KEY[i] = (byte) (0x40 + i);
            OTHER_KEY[i] = (byte) (0x90 + i);
        }
    }

    /** A real 1x1 greyscale PNG (67 bytes): the customer's "signature". */
    static final byte[] PNG = bytes(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00,
            0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
            0x08, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x7e, 0x9b, 0x55, 0x00, 0x00, 0x00, 0x0a, 0x49,
            0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x48,
            0xaf, 0xa4, 0x71, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
            0x82);

    static byte[] bytes(int... v) {
        byte[] out = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (byte) v[i];
        }
        return out;
    }

    // ---- a tiny test harness: numbered steps, the first failure ends the run ----

    static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    interface Body {
        void run() throws Exception;
    }

    static int step = 0;
    static String stepName = "";

    static void step(String name, Body body) throws Exception {
        ++step;
        stepName = name;
        System.out.printf("[%2d] %s ... ", step, name);
        System.out.flush();
        body.run();
        System.out.println("ok");
    }

    static void note(String line) {
        System.out.print("\n     " + line + "\n     ");
        System.out.flush();
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new Failure(what);
        }
    }

    /** Runs {@code body}, which must throw OtsyncException with {@code code}; returns it. */
    static OtsyncException expectCode(int code, Body body) throws Exception {
        try {
            body.run();
        } catch (OtsyncException e) {
            if (e.code() != code) {
                throw new Failure("expected error " + code + ", got " + e);
            }
            return e;
        }
        throw new Failure("expected error " + code + ", the call succeeded");
    }

    /** The number after {@code "key":} in a JSON document (the first one), or -1. */
    static long number(String json, String key) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(key) + "\":(-?[0-9]+)").matcher(json);
        return m.find() ? Long.parseLong(m.group(1)) : -1;
    }

    /** The values of {@code "key":"..."} in a JSON document, in order. */
    static List<String> strings(String json, String key) {
        List<String> out = new ArrayList<>();
        Matcher m = Pattern.compile("\"" + Pattern.quote(key) + "\":\"([^\"]*)\"").matcher(json);
        while (m.find()) {
            out.add(m.group(1));
        }
        return out;
    }

    /** The status of OT {@code id} in a list_ots JSON array, or null. */
    static String statusIn(String list, String id) {
        Matcher m = Pattern.compile("\\{[^{}]*\"id\":\"" + id + "\"[^{}]*\\}").matcher(list);
        if (!m.find()) {
            return null;
        }
        List<String> s = strings(m.group(), "status");
        return s.isEmpty() ? null : s.get(0);
    }

    /** A transport that keeps every call and never answers it on its own. */
    static final class HoldingTransport implements Transport {
        final BlockingQueue<HttpCall> sent = new LinkedBlockingQueue<>();
        final List<HttpCall> all = new CopyOnWriteArrayList<>();
        final List<HttpCall> cancelled = new CopyOnWriteArrayList<>();

        @Override
        public void send(HttpCall call) {
            all.add(call);
            sent.add(call);
        }

        @Override
        public void cancel(HttpCall call) {
            cancelled.add(call); // the test answers it later: a late answer is ignored
        }

        /** Answers every call still open (the library gave up on them all). */
        int failAll(int code) {
            int n = 0;
            for (HttpCall c : all) {
                if (c.failIfOpen(code, "answered late by the test")) {
                    n++;
                }
            }
            return n;
        }
    }

    /** A sync on its own thread: what it returned or threw, and when. */
    static final class SyncThread extends Thread {
        final OtsyncClient client;
        final ProgressListener listener;
        final AtomicReference<String> result = new AtomicReference<>();
        final AtomicReference<Throwable> thrown = new AtomicReference<>();
        volatile long endedNanos;

        SyncThread(OtsyncClient client, ProgressListener listener) {
            super("test-sync");
            this.client = client;
            this.listener = listener;
            setDaemon(true);
        }

        @Override
        public void run() {
            try {
                result.set(client.sync(listener));
            } catch (Throwable t) {
                thrown.set(t);
            } finally {
                endedNanos = System.nanoTime();
            }
        }
    }

    static long ms(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(nanos);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3 && args.length != 4) {
            System.err.println("usage: TechnicianDayTest SERVER_URL ENROLL_CODE DB_PATH [SECOND_CODE]");
            System.exit(2);
        }
        try {
            run(args[0], args[1], args[2], args.length == 4 ? args[3] : null);
        } catch (Throwable t) {
            System.out.println("FAILED");
            System.out.flush();
            String why = t instanceof Failure ? t.getMessage() : t.toString();
            System.err.println("TechnicianDayTest: step " + step + " (" + stepName + ") failed: "
                    + why);
            if (!(t instanceof Failure)) {
                t.printStackTrace();
            }
            System.exit(1);
        }
        System.out.println("TechnicianDayTest: all " + step + " steps passed");
        System.exit(0);
    }

    static void run(String url, String code, String dbPath, String secondCode) throws Exception {
        final HttpClientTransport http = new HttpClientTransport();
        final String[] ot = new String[1]; // the visit's OT
        final String[] other = new String[1]; // another OT of tec.quispe's, still assigned
        final OtsyncClient client;

        step("the native library loads: version " + OtsyncClient.version(), () -> {
            check(OtsyncClient.version().matches("[0-9]+\\.[0-9]+\\.[0-9]+"),
                    "version " + OtsyncClient.version());
            check(new OtsyncException(OtsyncException.TIMEOUT, "x").errorName().equals("timeout"),
                    "the name of TIMEOUT");
        });

        step("open the device database", () -> {});
        client = OtsyncClient.open(dbPath, KEY);

        step("a second handle on the same file is refused (BUSY)",
                () -> expectCode(OtsyncException.BUSY, () -> OtsyncClient.open(dbPath, KEY).close()));

        step("status before enrolling says not enrolled", () -> {
            String s = client.status();
            check(s.contains("\"enrolled\":false"), "status: " + s);
        });

        step("sync before enrolling fails with NOT_ENROLLED",
                () -> expectCode(OtsyncException.NOT_ENROLLED, client::sync));

        step("enroll through java.net.http.HttpClient", () -> {
            client.setTransport(http);
            client.enroll(url, code, "java TechnicianDayTest");
            check(http.sent.get() >= 1, "the HttpClient transport carried no request");
        });

        step("enrolling again with the used code is refused", () -> {
            try {
                client.enroll(url, code, "java TechnicianDayTest");
            } catch (OtsyncException e) {
                note("refused: " + e);
                return;
            }
            throw new Failure("a second enrollment with the same code succeeded");
        });

        step("first sync pulls my OTs, answered on HttpClient's threads", () -> {
            AtomicInteger calls = new AtomicInteger();
            int before = http.sent.get();
            String result = client.sync(p -> {
                calls.incrementAndGet();
                return true;
            });
            note("result " + result);
            note("progress calls " + calls.get() + ", requests " + (http.sent.get() - before)
                    + ", answered on " + http.answeringThreads);
            check(number(result, "received") > 0, "nothing received: " + result);
            check(number(result, "pending") == 0, "pending after the first sync: " + result);
            check(calls.get() > 0, "the progress listener was never called");
            check(http.sent.get() > before, "the sync did not go through the HttpClient transport");
            check(http.answeredElsewhere.get() > 0,
                    "no answer came from another thread than the syncing one");
        });

        step("list my OTs; one expects " + EXPECTED_SERIAL, () -> {
            String list = client.listOts(null);
            for (String id : strings(list, "id")) {
                String shown = client.showOt(id);
                if (ot[0] == null && shown.contains(EXPECTED_SERIAL)) {
                    ot[0] = id;
                } else if (other[0] == null && "assigned".equals(statusIn(list, id))) {
                    other[0] = id;
                }
            }
            check(ot[0] != null, "no OT expects " + EXPECTED_SERIAL + ": " + list);
            check(other[0] != null, "no second assigned OT: " + list);
            note("visit " + ot[0] + ", and " + other[0] + " for the cancel and the timeout");
        });

        step("filters: status assigned lists it; a bad status is INVALID_VALUE", () -> {
            check(client.listOts("assigned").contains(ot[0]), "not listed as assigned");
            expectCode(OtsyncException.INVALID_VALUE, () -> client.listOts("nonsense"));
            check(client.listOtsBetween(null, 0, 0).contains(ot[0]), "not in the open window");
        });

        step("show an OT that does not exist: NOT_FOUND", () -> expectCode(
                OtsyncException.NOT_FOUND, () -> client.showOt("00000000000000000000000000000000")));

        step("collecting before arriving is refused (INVALID_TRANSITION)", () -> expectCode(
                OtsyncException.INVALID_TRANSITION,
                () -> client.collect(ot[0], EXPECTED_SERIAL, null, "migration", null, null)));

        step("en route, on site", () -> {
            client.setStatus(ot[0], "en_route");
            client.setStatus(ot[0], "on_site");
            check("on_site".equals(statusIn(client.listOts(null), ot[0])), "not on_site");
        });

        step("collect " + EXPECTED_SERIAL + " -> MATCHED, again -> ALREADY_RECORDED", () -> {
            Verdict v = client.collect(ot[0], EXPECTED_SERIAL, "Huawei HG8245H", "migration", null,
                    "Java: ONT retirada, cliente conforme");
            check(v == Verdict.MATCHED, "verdict " + v);
            v = client.collect(ot[0], EXPECTED_SERIAL, "Huawei HG8245H", "migration", null, null);
            check(v == Verdict.ALREADY_RECORDED, "second verdict " + v);
        });

        step("completing with the adapter and remote unexplained: REQUIREMENTS_INCOMPLETE",
                () -> expectCode(OtsyncException.REQUIREMENTS_INCOMPLETE,
                        () -> client.setStatus(ot[0], "completed")));

        step("report the missing adapter and remote", () -> {
            client.reportMissing(ot[0], "PWR-12V-0999", "el cliente la conserva");
            client.reportMissing(ot[0], "RMT-0999", "extraviado");
        });

        step("completing unsigned: REQUIREMENTS_INCOMPLETE", () -> expectCode(
                OtsyncException.REQUIREMENTS_INCOMPLETE, () -> client.setStatus(ot[0], "completed")));

        step("a signature that is not a PNG: INVALID_VALUE", () -> expectCode(
                OtsyncException.INVALID_VALUE, () -> client.sign(ot[0], "hola".getBytes())));

        step("sign with a PNG; the rows are frozen (SIGNED_ROWS)", () -> {
            client.sign(ot[0], PNG);
            expectCode(OtsyncException.SIGNED_ROWS,
                    () -> client.collect(ot[0], "UNEXPECTED01", null, "migration", null, null));
        });

        step("a photo of the collected ONT: its hash; a PDF is no photo", () -> {
            byte[] jpeg = bytes(0xff, 0xd8, 0xff, 0xe0, 0x46, 0x4f, 0x54, 0x4f, 0xff, 0xd9);
            String hash = client.photo(ot[0], "HWTC7F300999", jpeg);
            check(hash.matches("[0-9a-f]{64}"), "photo hash " + hash);
            expectCode(OtsyncException.UNSUPPORTED_MEDIA_TYPE,
                    () -> client.photo(ot[0], "HWTC7F300999", "%PDF-1.4\n%%EOF".getBytes()));
        });

        step("complete", () -> {
            client.setStatus(ot[0], "completed");
            check("completed".equals(statusIn(client.listOts(null), ot[0])), "not completed");
        });

        step("a handover of the collected ONT; its receipt is not there yet", () -> {
            String id = client.createHandover("Cercado");
            check(id.matches("[0-9a-f]{32}"), "handover id " + id);
            String list = client.handovers();
            check(list.contains(id) && list.contains(EXPECTED_SERIAL), "handovers: " + list);
            expectCode(OtsyncException.INVALID_TRANSITION, () -> client.verifyReceipt(id));
            client.deliverHandover(id, "Pedro Quispe", PNG);
            check(client.handovers().contains("\"delivered\""), "not delivered: " + client.handovers());
            expectCode(OtsyncException.INVALID_TRANSITION,
                    () -> client.deliverHandover(id, null, PNG));
        });

        final long[] pendingBefore = new long[1];
        step("there is something to send", () -> {
            pendingBefore[0] = number(client.status(), "pending");
            check(pendingBefore[0] > 0, "nothing pending: " + client.status());
            note("pending " + pendingBefore[0]);
        });

        step("sync pushes the visit: sent > 0, pending 0, nothing rejected", () -> {
            String result = client.sync();
            note("result " + result);
            check(number(result, "sent") > 0, "nothing sent: " + result);
            check(number(result, "pending") == 0, "still pending: " + result);
            check(number(result, "rejected") == 0, "rejected: " + result);
            String s = client.status();
            check(number(s, "pending") == 0 && s.contains("\"rejections\":[]"), "status: " + s);
        });

        if (secondCode != null) {
            step("a second device of tec.quispe pulls the OT from the server: completed", () -> {
                Path db2 = Paths.get(dbPath + ".second");
                try (OtsyncClient second = OtsyncClient.open(db2.toString(), OTHER_KEY)) {
                    second.setTransport(new HttpClientTransport());
                    second.enroll(url, secondCode, "java second device");
                    second.sync();
                    String list = second.listOts(null);
                    check("completed".equals(statusIn(list, ot[0])),
                            "the server does not have the OT completed: " + list);
                    String shown = second.showOt(ot[0]);
                    check(shown.contains(EXPECTED_SERIAL), "the row did not reach it: " + shown);
                }
            });
        }

        // ---- cancel: the transport holds the request; cancel from another Java thread ----
        final HoldingTransport holding = new HoldingTransport();
        step("record one more fact (" + "the next OT en route" + ") to have something pending",
                () -> {
                    client.setStatus(other[0], "en_route");
                    pendingBefore[0] = number(client.status(), "pending");
                    check(pendingBefore[0] > 0, "nothing pending");
                });

        step("cancel from another thread ends a held sync with CANCELLED within 1 s", () -> {
            client.setTransport(holding);
            SyncThread sync = new SyncThread(client, null);
            sync.start();
            HttpCall held = holding.sent.poll(10, TimeUnit.SECONDS);
            check(held != null, "the sync sent no request within 10 s");
            check(held.method().equals("POST") && held.url().startsWith(url) && held.bodyLength() > 0,
                    "odd request " + held);
            Thread.sleep(200); // the sync is waiting on the held request now
            check(sync.isAlive(), "the sync ended without an answer: " + sync.thrown.get());
            final long[] cancelAt = new long[1];
            Thread canceller = new Thread(() -> {
                cancelAt[0] = System.nanoTime();
                client.cancel();
            }, "test-canceller");
            canceller.start();
            canceller.join();
            sync.join(5000);
            check(!sync.isAlive(), "the sync did not return within 5 s of the cancel");
            long took = ms(sync.endedNanos - cancelAt[0]);
            Throwable t = sync.thrown.get();
            check(t instanceof OtsyncException
                            && ((OtsyncException) t).code() == OtsyncException.CANCELLED,
                    "expected CANCELLED, got " + (t == null ? "result " + sync.result.get() : t));
            note("returned " + t + " " + took + " ms after the cancel");
            check(took < 1000, "the cancel took " + took + " ms");
            check(holding.cancelled.contains(held), "the transport's cancel was not called");
            check(!held.isAnswered(), "the held call was answered by someone else");
        });

        step("nothing pending was lost; the late answer is ignored; a second answer throws",
                () -> {
                    long pending = number(client.status(), "pending");
                    check(pending == pendingBefore[0],
                            "pending " + pending + ", was " + pendingBefore[0]);
                    HttpCall held = holding.all.get(0);
                    held.complete(500, "late".getBytes()); // after the library gave up on it
                    try {
                        held.fail(OtsyncException.NETWORK, "again");
                        throw new Failure("a second answer was accepted");
                    } catch (IllegalStateException expected) {
                        // answered exactly once
                    }
                    check(holding.failAll(OtsyncException.CANCELLED) == 0, "calls left open");
                });

        // ---- timeout: a transport that never answers, a short deadline and retry policy ----
        final HoldingTransport silent = new HoldingTransport();
        step("a transport that never answers: the sync returns TIMEOUT quickly", () -> {
            client.setTransport(silent);
            client.setHttpOptions(new HttpOptions().requestTimeoutMs(300));
            client.setRetryPolicy(new RetryPolicy(50, 100, 1000, 0));
            List<SyncProgress> waits = new CopyOnWriteArrayList<>();
            long t0 = System.nanoTime();
            OtsyncException e = expectCode(OtsyncException.TIMEOUT, () -> client.sync(p -> {
                if (p.retryInMs > 0) {
                    waits.add(p);
                }
                return true;
            }));
            long took = ms(System.nanoTime() - t0);
            note(e + " after " + took + " ms, " + silent.all.size() + " requests, "
                    + waits.size() + " retry waits"
                    + (waits.isEmpty() ? "" : "; first: " + waits.get(0)));
            check(took < 5000, "the timeout took " + took + " ms");
            check(silent.all.size() >= 2, "no retry after the first deadline");
            check(!waits.isEmpty() && waits.get(0).lastError == OtsyncException.TIMEOUT,
                    "the listener saw no retry wait for a timeout");
            check(silent.cancelled.size() == silent.all.size(),
                    "the library did not cancel every call past its deadline");
            check(number(client.status(), "pending") == pendingBefore[0], "pending changed");
            check(silent.failAll(OtsyncException.TIMEOUT) == silent.all.size(),
                    "a call was answered behind the test's back");
        });

        step("a progress listener that returns false stops the sync (CANCELLED)", () -> {
            client.setHttpOptions(new HttpOptions());
            client.setRetryPolicy(new RetryPolicy(1000, 60000, 300000, 20));
            client.setTransport(http);
            // The listener is first told after the first exchange (which may have delivered
            // the op): what was delivered stays delivered, the rest stays pending.
            expectCode(OtsyncException.CANCELLED, () -> client.sync(p -> false));
        });

        step("a progress listener that throws: sync rethrows it", () -> {
            try {
                client.sync(p -> {
                    throw new IllegalArgumentException("listener says no");
                });
                throw new Failure("the sync returned");
            } catch (IllegalArgumentException expected) {
                check(expected.getMessage().equals("listener says no"), "another exception");
            }
        });

        step("back on HttpClient: the sync delivers what was kept (pending 0)", () -> {
            String result = client.sync();
            note("result " + result);
            check(number(result, "pending") == 0, "still pending: " + result);
            String st = client.status();
            check(number(st, "pending") == 0 && st.contains("\"rejections\":[]"), "status: " + st);
            check(http.inFlight() == 0, "HttpClient calls left in flight");
        });

        if (secondCode != null) {
            step("the second device sees the other OT en route; close during its sync", () -> {
                Path db2 = Paths.get(dbPath + ".second");
                OtsyncClient second = OtsyncClient.open(db2.toString(), OTHER_KEY);
                try {
                    second.setTransport(new HttpClientTransport());
                    second.sync();
                    String s = statusIn(second.listOts(null), other[0]);
                    check("en_route".equals(s), "the other OT is " + s + " on the second device");
                    HoldingTransport hold = new HoldingTransport();
                    second.setTransport(hold);
                    second.setStatus(other[0], "on_site");
                    SyncThread sync = new SyncThread(second, null);
                    sync.start();
                    check(hold.sent.poll(10, TimeUnit.SECONDS) != null, "no request");
                    long t0 = System.nanoTime();
                    second.close();
                    long took = ms(System.nanoTime() - t0);
                    sync.join(5000);
                    Throwable t = sync.thrown.get();
                    note("close took " + took + " ms; the sync got " + t);
                    check(took < 1500, "close waited " + took + " ms");
                    check(t instanceof OtsyncException
                                    && ((OtsyncException) t).code() == OtsyncException.CANCELLED,
                            "expected CANCELLED from the sync, got " + t);
                    hold.failAll(OtsyncException.CANCELLED);
                } finally {
                    second.close();
                }
                try (OtsyncClient again = OtsyncClient.open(db2.toString(), OTHER_KEY)) {
                    check(number(again.status(), "pending") > 0, "the on_site op was lost");
                }
            });
        }

        step("close; calls after close throw IllegalStateException; close twice is harmless",
                () -> {
                    client.close();
                    client.close();
                    try {
                        client.status();
                        throw new Failure("status() worked after close");
                    } catch (IllegalStateException expected) {
                        // closed
                    }
                    client.cancel(); // a no-op when closed
                });

        step("re-open: the visit is still completed; a wrong key is WRONG_KEY", () -> {
            try (OtsyncClient again = OtsyncClient.open(dbPath, KEY)) {
                check("completed".equals(statusIn(again.listOts(null), ot[0])), "not completed");
            }
            expectCode(OtsyncException.WRONG_KEY, () -> OtsyncClient.open(dbPath, OTHER_KEY).close());
            check(Files.exists(Paths.get(dbPath)), "no database file");
        });

        step("argument checks stay in Java", () -> {
            try {
                OtsyncClient.open(dbPath, new byte[16]).close();
                throw new Failure("a 16-byte key was accepted");
            } catch (IllegalArgumentException expected) {
                // refused before the native call
            }
        });
    }
}
