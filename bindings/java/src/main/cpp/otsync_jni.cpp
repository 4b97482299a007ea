// The JNI side of bo.comteco.otsync (bindings/java): OtsyncClient's and HttpCall's natives
// over client-core's C API (otsync/client.h), and the otsync_transport that carries each HTTP
// request through the app's Java Transport.
//
// Text crosses as UTF-8 byte arrays (Java encodes and decodes: JNI's "modified UTF-8" is not
// UTF-8); C failures become OtsyncException(code, message). The natives are registered in
// JNI_OnLoad, so the library exports JNI_OnLoad only.
//
// Threads: the library calls the transport's send and cancel, and the progress callback, on
// the syncing thread (the Java thread in OtsyncClient.sync or enroll). The glue still gets its
// JNIEnv from the VM and attaches a thread it does not know (as a daemon, detached when the
// thread ends), so it is right for any thread. The Java side answers a call from any thread
// through HttpCall.nativeComplete / nativeFail.
#include "otsync/client.h"

#include <jni.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace {

JavaVM* g_vm = nullptr;

// Classes (global references) and ids, looked up once in JNI_OnLoad.
struct Ids {
    jclass exception = nullptr; // bo.comteco.otsync.OtsyncException
    jmethodID exception_ctor{}; // (I[B)V
    jclass http_call = nullptr; // bo.comteco.otsync.HttpCall
    jmethodID http_call_ctor{}; // (J[B[B[[B[B)V
    jfieldID http_call_ptr{};   // long ptr
    jclass bytes = nullptr;     // byte[]
    jmethodID bridge_send{};    // TransportBridge.send(JLbo/comteco/otsync/HttpCall;)V
    jmethodID bridge_cancel{};  // TransportBridge.cancel(J)V
    jclass progress = nullptr;  // bo.comteco.otsync.SyncProgress
    jmethodID progress_ctor{};  // (JJJJJJIJI[B)V
    jmethodID on_progress{};    // ProgressListener.onProgress(SyncProgress)Z
    jclass illegal_state = nullptr;
    jclass out_of_memory = nullptr;
};
Ids g;

/// Detaches, when the thread ends, a thread this glue attached.
struct AttachedThread {
    bool attached = false;
    AttachedThread() = default;
    AttachedThread(const AttachedThread&) = delete;
    AttachedThread& operator=(const AttachedThread&) = delete;
    ~AttachedThread() {
        if (attached && g_vm) {
            g_vm->DetachCurrentThread();
        }
    }
};
thread_local AttachedThread t_attached;

/// The calling thread's JNIEnv, attaching the thread to the VM when it is not (nullptr when
/// that fails).
JNIEnv* env_here() {
    if (!g_vm) {
        return nullptr;
    }
    void* env = nullptr;
    const jint r = g_vm->GetEnv(&env, JNI_VERSION_1_8);
    if (r == JNI_OK) {
        return static_cast<JNIEnv*>(env);
    }
    if (r != JNI_EDETACHED) {
        return nullptr;
    }
    JavaVMAttachArgs args{};
    args.version = JNI_VERSION_1_8;
    args.name = const_cast<char*>("otsync-native");
    args.group = nullptr;
    if (g_vm->AttachCurrentThreadAsDaemon(&env, &args) != JNI_OK) {
        return nullptr;
    }
    t_attached.attached = true;
    return static_cast<JNIEnv*>(env);
}

/// A local reference frame: the glue may run on a thread that stays in native code for a
/// long time (a whole sync), so it frees what it creates.
class LocalFrame {
public:
    LocalFrame(JNIEnv* env, jint capacity) : m_env(env), m_ok(env->PushLocalFrame(capacity) == 0) {}
    ~LocalFrame() {
        if (m_ok) {
            m_env->PopLocalFrame(nullptr);
        }
    }
    LocalFrame(const LocalFrame&) = delete;
    LocalFrame& operator=(const LocalFrame&) = delete;
    bool ok() const { return m_ok; }

private:
    JNIEnv* m_env;
    bool m_ok;
};

/// A Java byte[] (UTF-8 text, no terminator) as a C string; null stays NULL.
class Text {
public:
    Text(JNIEnv* env, jbyteArray a) {
        if (!a) {
            return;
        }
        const jsize n = env->GetArrayLength(a);
        m_s.resize(static_cast<std::size_t>(n));
        if (n > 0) {
            env->GetByteArrayRegion(a, 0, n, reinterpret_cast<jbyte*>(m_s.data()));
        }
        m_null = false;
    }
    const char* c_str() const { return m_null ? nullptr : m_s.c_str(); }

private:
    std::string m_s;
    bool m_null = true;
};

/// Bytes as a new Java byte[] (nullptr with an OutOfMemoryError pending when it fails).
jbyteArray to_java(JNIEnv* env, const void* data, std::size_t n) {
    if (n > static_cast<std::size_t>(INT32_MAX)) {
        env->ThrowNew(g.out_of_memory, "more than 2 GiB for a Java byte[]");
        return nullptr;
    }
    jbyteArray a = env->NewByteArray(static_cast<jsize>(n));
    if (a && n > 0) {
        env->SetByteArrayRegion(a, 0, static_cast<jsize>(n), static_cast<const jbyte*>(data));
    }
    return a;
}

jbyteArray to_java(JNIEnv* env, const char* s) {
    return to_java(env, s ? s : "", s ? std::strlen(s) : 0);
}

/// Throws OtsyncException(err.code, err.message) into Java.
void throw_error(JNIEnv* env, const otsync_error& err) {
    if (env->ExceptionCheck()) {
        return;
    }
    const std::size_t n = strnlen(err.message, sizeof err.message);
    jbyteArray message = to_java(env, err.message, n);
    if (!message) {
        return;
    }
    auto* e = static_cast<jthrowable>(
        env->NewObject(g.exception, g.exception_ctor, static_cast<jint>(err.code), message));
    if (e) {
        env->Throw(e);
        env->DeleteLocalRef(e);
    }
    env->DeleteLocalRef(message);
}

void throw_closed(JNIEnv* env) {
    env->ThrowNew(g.illegal_state, "this OtsyncClient is closed");
}

/// The app's Java transport for one setTransport: a global reference to its TransportBridge,
/// the `user` of the otsync_transport given to the library.
struct JavaTransport {
    jobject bridge = nullptr;
};

/// What a Java OtsyncClient's handle points to.
struct Binding {
    otsync_client_t* client = nullptr;
    // Every Java transport given to the library, until close: a sync in progress keeps the
    // transport it started with even when another is set.
    std::mutex mu;
    std::vector<std::unique_ptr<JavaTransport>> transports;
};

Binding* binding(JNIEnv* env, jlong h) {
    auto* b = reinterpret_cast<Binding*>(static_cast<std::intptr_t>(h));
    if (!b || !b->client) {
        throw_closed(env);
        return nullptr;
    }
    return b;
}

/// Takes the call's pointer from a Java HttpCall (0 when it was answered already), under the
/// object's monitor as HttpCall.take() does: the call is answered exactly once.
jlong take_call(JNIEnv* env, jobject call) {
    if (env->MonitorEnter(call) != JNI_OK) {
        return 0;
    }
    const jlong p = env->GetLongField(call, g.http_call_ptr);
    env->SetLongField(call, g.http_call_ptr, 0);
    env->MonitorExit(call);
    return p;
}

/// A pending Java exception as one line ("java.lang.Foo: message"), cleared.
std::string describe_and_clear(JNIEnv* env) {
    jthrowable t = env->ExceptionOccurred();
    env->ExceptionClear();
    std::string out = "a Java exception";
    if (!t) {
        return out;
    }
    jclass object = env->FindClass("java/lang/Object");
    jmethodID to_string =
        object ? env->GetMethodID(object, "toString", "()Ljava/lang/String;") : nullptr;
    auto* s = to_string ? static_cast<jstring>(env->CallObjectMethod(t, to_string)) : nullptr;
    if (env->ExceptionCheck()) {
        env->ExceptionClear();
    } else if (s) {
        // Modified UTF-8 is fine for a log line.
        const char* chars = env->GetStringUTFChars(s, nullptr);
        if (chars) {
            out = chars;
            env->ReleaseStringUTFChars(s, chars);
        }
    }
    return out;
}

/// otsync_transport.send: hands `call` to the Java transport as an HttpCall that owns the
/// app's reference from now on. When that fails before Java owns it, or the Java side throws
/// past TransportBridge.send, the call is failed here (if nobody answered it yet).
void transport_send(void* user, otsync_http_call* call) {
    auto* t = static_cast<JavaTransport*>(user);
    JNIEnv* env = env_here();
    if (!env) {
        otsync_http_call_fail(call, OTSYNC_ERR_NETWORK,
                              "the Java transport: this thread could not attach to the JVM");
        return;
    }
    // Keep an exception already pending on this thread (there should be none) out of the way.
    jthrowable pending = env->ExceptionOccurred();
    if (pending) {
        env->ExceptionClear();
    }
    {
        LocalFrame frame(env, 32);
        if (!frame.ok()) {
            env->ExceptionClear();
            otsync_http_call_fail(call, OTSYNC_ERR_NETWORK, "the Java transport: out of memory");
        } else {
            const size_t n = otsync_http_call_header_count(call);
            jobjectArray headers = env->NewObjectArray(static_cast<jsize>(2 * n), g.bytes, nullptr);
            for (size_t i = 0; headers && i < n && !env->ExceptionCheck(); ++i) {
                jbyteArray name = to_java(env, otsync_http_call_header_name(call, i));
                jbyteArray value =
                    name ? to_java(env, otsync_http_call_header_value(call, i)) : nullptr;
                if (value) {
                    env->SetObjectArrayElement(headers, static_cast<jsize>(2 * i), name);
                    env->SetObjectArrayElement(headers, static_cast<jsize>(2 * i + 1), value);
                }
                env->DeleteLocalRef(name);
                env->DeleteLocalRef(value);
            }
            size_t body_len = 0;
            const uint8_t* body = otsync_http_call_body(call, &body_len);
            jbyteArray method = to_java(env, otsync_http_call_method(call));
            jbyteArray url = method ? to_java(env, otsync_http_call_url(call)) : nullptr;
            jbyteArray jbody = url ? to_java(env, body, body_len) : nullptr;
            jobject jcall = nullptr;
            if (headers && jbody && !env->ExceptionCheck()) {
                jcall = env->NewObject(g.http_call, g.http_call_ctor,
                                       static_cast<jlong>(reinterpret_cast<std::intptr_t>(call)),
                                       method, url, headers, jbody);
            }
            if (!jcall) {
                // Java never saw the call: it is still ours to answer.
                const std::string why = describe_and_clear(env);
                otsync_http_call_fail(call, OTSYNC_ERR_NETWORK,
                                      ("the Java transport: " + why).c_str());
            } else {
                env->CallVoidMethod(t->bridge, g.bridge_send,
                                    static_cast<jlong>(reinterpret_cast<std::intptr_t>(call)),
                                    jcall);
                if (env->ExceptionCheck()) {
                    const std::string why = describe_and_clear(env);
                    if (const jlong p = take_call(env, jcall)) {
                        otsync_http_call_fail(
                            reinterpret_cast<otsync_http_call*>(static_cast<std::intptr_t>(p)),
                            OTSYNC_ERR_NETWORK, ("the Java transport threw " + why).c_str());
                    }
                }
            }
        }
    }
    if (pending) {
        env->Throw(pending);
        env->DeleteLocalRef(pending);
    }
}

/// otsync_transport.cancel: the library gave up on `call`; the Java transport may stop it
/// (the call still gets its one answer from Java).
void transport_cancel(void* user, otsync_http_call* call) {
    auto* t = static_cast<JavaTransport*>(user);
    JNIEnv* env = env_here();
    if (!env) {
        return;
    }
    jthrowable pending = env->ExceptionOccurred();
    if (pending) {
        env->ExceptionClear();
    }
    env->CallVoidMethod(t->bridge, g.bridge_cancel,
                        static_cast<jlong>(reinterpret_cast<std::intptr_t>(call)));
    if (env->ExceptionCheck()) {
        env->ExceptionClear(); // TransportBridge.cancel catches; only an Error gets here
    }
    if (pending) {
        env->Throw(pending);
        env->DeleteLocalRef(pending);
    }
}

/// One sync's Java listener, and what it threw (rethrown when the sync returns).
struct SyncListener {
    jobject listener = nullptr;  // a global reference
    jthrowable thrown = nullptr; // a global reference
};

int sync_progress(const otsync_sync_progress* p, void* user) {
    auto* s = static_cast<SyncListener*>(user);
    if (!s->listener) {
        return 0;
    }
    JNIEnv* env = env_here();
    if (!env) {
        return 0;
    }
    LocalFrame frame(env, 8);
    if (!frame.ok()) {
        env->ExceptionClear();
        return 0;
    }
    jbyteArray message = to_java(env, p->last_error_message);
    jobject progress = nullptr;
    if (message) {
        progress = env->NewObject(g.progress, g.progress_ctor, static_cast<jlong>(p->sent),
                                  static_cast<jlong>(p->pending), static_cast<jlong>(p->received),
                                  static_cast<jlong>(p->remaining), static_cast<jlong>(p->bytes_up),
                                  static_cast<jlong>(p->bytes_down), static_cast<jint>(p->attempt),
                                  static_cast<jlong>(p->retry_in_ms),
                                  static_cast<jint>(p->last_error), message);
    }
    jboolean go = JNI_FALSE;
    if (progress) {
        go = env->CallBooleanMethod(s->listener, g.on_progress, progress);
    }
    if (env->ExceptionCheck()) {
        // The listener threw (or the progress could not be built): stop, and rethrow it
        // from sync().
        jthrowable t = env->ExceptionOccurred();
        env->ExceptionClear();
        if (!s->thrown && t) {
            s->thrown = static_cast<jthrowable>(env->NewGlobalRef(t));
        }
        return 1;
    }
    return go ? 0 : 1;
}

// ---- OtsyncClient's natives ----

jbyteArray native_version(JNIEnv* env, jclass) {
    return to_java(env, otsync_version());
}

jbyteArray native_error_name(JNIEnv* env, jclass, jint code) {
    return to_java(env, otsync_error_name(code));
}

jlong native_open(JNIEnv* env, jclass, jbyteArray path, jbyteArray key) {
    if (!key || env->GetArrayLength(key) != 32) {
        otsync_error err{};
        err.code = OTSYNC_ERR_INVALID_ARGUMENT;
        std::strcpy(err.message, "the database key must be 32 bytes");
        throw_error(env, err);
        return 0;
    }
    uint8_t k[32];
    env->GetByteArrayRegion(key, 0, 32, reinterpret_cast<jbyte*>(k));
    const Text p(env, path);
    auto* b = new (std::nothrow) Binding;
    if (!b) {
        env->ThrowNew(g.out_of_memory, "otsync binding");
        return 0;
    }
    otsync_error err{};
    b->client = otsync_client_open(p.c_str(), k, &err);
    std::memset(k, 0, sizeof k);
    if (!b->client) {
        delete b;
        throw_error(env, err);
        return 0;
    }
    return static_cast<jlong>(reinterpret_cast<std::intptr_t>(b));
}

void native_close(JNIEnv* env, jclass, jlong h) {
    auto* b = reinterpret_cast<Binding*>(static_cast<std::intptr_t>(h));
    if (!b) {
        return;
    }
    otsync_client_close(&b->client);
    // No sync runs any more (OtsyncClient.close waited for them): the transports can go.
    // A call still unanswered holds its TransportBridge from Java, not from here.
    for (auto& t : b->transports) {
        env->DeleteGlobalRef(t->bridge);
    }
    delete b;
}

void native_enroll(JNIEnv* env, jclass, jlong h, jbyteArray url, jbyteArray code,
                   jbyteArray label) {
    Binding* b = binding(env, h);
    if (!b) {
        return;
    }
    const Text u(env, url), c(env, code), l(env, label);
    otsync_error err{};
    if (otsync_client_enroll(b->client, u.c_str(), c.c_str(), l.c_str(), &err) != 0) {
        throw_error(env, err);
    }
}

jbyteArray native_sync(JNIEnv* env, jclass, jlong h, jobject listener) {
    Binding* b = binding(env, h);
    if (!b) {
        return nullptr;
    }
    SyncListener s;
    // A global reference: the library calls back on the syncing thread (this one), but the
    // glue does not rely on it.
    if (listener && !(s.listener = env->NewGlobalRef(listener))) {
        env->ThrowNew(g.out_of_memory, "otsync progress listener");
        return nullptr;
    }
    char* result = nullptr;
    otsync_error err{};
    const int rc =
        otsync_client_sync_ex(b->client, listener ? sync_progress : nullptr, &s, &result, &err);
    if (s.listener) {
        env->DeleteGlobalRef(s.listener);
    }
    jbyteArray out = nullptr;
    if (s.thrown) {
        env->Throw(s.thrown);
        env->DeleteGlobalRef(s.thrown);
    } else if (rc != 0) {
        throw_error(env, err);
    } else {
        out = to_java(env, result);
    }
    otsync_string_free(&result);
    return out;
}

void native_set_transport(JNIEnv* env, jclass, jlong h, jobject bridge) {
    Binding* b = binding(env, h);
    if (!b) {
        return;
    }
    otsync_error err{};
    if (!bridge) {
        if (otsync_client_set_transport(b->client, nullptr, &err) != 0) {
            throw_error(env, err);
        }
        return;
    }
    auto t = std::unique_ptr<JavaTransport>(new (std::nothrow) JavaTransport);
    if (!t || !(t->bridge = env->NewGlobalRef(bridge))) {
        env->ThrowNew(g.out_of_memory, "otsync transport");
        return;
    }
    otsync_transport ct{};
    ct.user = t.get();
    ct.send = transport_send;
    ct.cancel = transport_cancel;
    std::lock_guard lock(b->mu);
    try {
        b->transports.reserve(b->transports.size() + 1);
    } catch (...) {
        env->DeleteGlobalRef(t->bridge);
        env->ThrowNew(g.out_of_memory, "otsync transport");
        return;
    }
    b->transports.push_back(std::move(t)); // no reallocation: cannot throw
    if (otsync_client_set_transport(b->client, &ct, &err) != 0) {
        throw_error(env, err); // kept until close all the same: harmless
    }
}

void native_set_http_options(JNIEnv* env, jclass, jlong h, jint connect_ms, jint io_ms,
                             jint request_ms, jbyteArray ca_file, jbyteArray pinned) {
    Binding* b = binding(env, h);
    if (!b) {
        return;
    }
    const Text ca(env, ca_file), pin(env, pinned);
    otsync_http_options o{};
    o.connect_timeout_ms = static_cast<uint32_t>(connect_ms);
    o.io_timeout_ms = static_cast<uint32_t>(io_ms);
    o.request_timeout_ms = static_cast<uint32_t>(request_ms);
    o.ca_file = ca.c_str();
    o.pinned_sha256 = pin.c_str();
    otsync_error err{};
    if (otsync_client_set_http_options(b->client, &o, &err) != 0) {
        throw_error(env, err);
    }
}

void native_set_retry_policy(JNIEnv* env, jclass, jlong h, jint initial_ms, jint max_ms,
                             jint max_elapsed_ms, jint jitter) {
    Binding* b = binding(env, h);
    if (!b) {
        return;
    }
    otsync_retry_policy p{};
    p.initial_delay_ms = static_cast<uint32_t>(initial_ms);
    p.max_delay_ms = static_cast<uint32_t>(max_ms);
    p.max_elapsed_ms = static_cast<uint32_t>(max_elapsed_ms);
    p.jitter_percent = static_cast<uint32_t>(jitter);
    otsync_error err{};
    if (otsync_client_set_retry_policy(b->client, &p, &err) != 0) {
        throw_error(env, err);
    }
}

void native_cancel(JNIEnv*, jclass, jlong h) {
    auto* b = reinterpret_cast<Binding*>(static_cast<std::intptr_t>(h));
    if (b) {
        otsync_client_cancel(b->client);
    }
}

/// A C API call returning a JSON string: the bytes for Java, or an OtsyncException.
template <class F>
jbyteArray json_call(JNIEnv* env, jlong h, F&& f) {
    Binding* b = binding(env, h);
    if (!b) {
        return nullptr;
    }
    otsync_error err{};
    char* json = f(b->client, &err);
    if (!json) {
        throw_error(env, err);
        return nullptr;
    }
    jbyteArray out = to_java(env, json);
    otsync_string_free(&json);
    return out;
}

/// A C API call returning 0 on success.
template <class F>
void status_call(JNIEnv* env, jlong h, F&& f) {
    Binding* b = binding(env, h);
    if (!b) {
        return;
    }
    otsync_error err{};
    if (f(b->client, &err) != 0) {
        throw_error(env, err);
    }
}

jbyteArray native_list_ots(JNIEnv* env, jclass, jlong h, jbyteArray status) {
    const Text s(env, status);
    return json_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_list_ots(c, s.c_str(), e);
    });
}

jbyteArray native_list_ots_between(JNIEnv* env, jclass, jlong h, jbyteArray status, jlong from,
                                   jlong to) {
    const Text s(env, status);
    return json_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_list_ots_between(c, s.c_str(), from, to, e);
    });
}

jbyteArray native_show_ot(JNIEnv* env, jclass, jlong h, jbyteArray ot) {
    const Text o(env, ot);
    return json_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_show_ot(c, o.c_str(), e);
    });
}

void native_set_status(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray status,
                       jbyteArray reason) {
    const Text o(env, ot), s(env, status), r(env, reason);
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_set_status(c, o.c_str(), s.c_str(), r.c_str(), e);
    });
}

jint native_collect(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray serial,
                    jbyteArray description, jbyteArray reason, jbyteArray defect,
                    jbyteArray observations) {
    const Text o(env, ot), s(env, serial), d(env, description), r(env, reason), f(env, defect),
        obs(env, observations);
    otsync_verdict v = OTSYNC_VERDICT_MATCHED;
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_collect(c, o.c_str(), s.c_str(), d.c_str(), r.c_str(), f.c_str(),
                                     obs.c_str(), &v, e);
    });
    return static_cast<jint>(v);
}

void native_void_item(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray serial) {
    const Text o(env, ot), s(env, serial);
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_void_item(c, o.c_str(), s.c_str(), e);
    });
}

jint native_verify(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray serial) {
    const Text o(env, ot), s(env, serial);
    otsync_verdict v = OTSYNC_VERDICT_MATCHED;
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_verify(c, o.c_str(), s.c_str(), &v, e);
    });
    return static_cast<jint>(v);
}

void native_report_missing(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray serial,
                           jbyteArray reason) {
    const Text o(env, ot), s(env, serial), r(env, reason);
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_report_missing(c, o.c_str(), s.c_str(), r.c_str(), e);
    });
}

/// A Java byte[]'s bytes (none for null); false with OutOfMemoryError thrown.
bool copy_bytes(JNIEnv* env, jbyteArray from, std::vector<uint8_t>& bytes, const char* what) {
    if (!from) {
        return true;
    }
    try {
        bytes.resize(static_cast<std::size_t>(env->GetArrayLength(from)));
    } catch (...) {
        env->ThrowNew(g.out_of_memory, what);
        return false;
    }
    env->GetByteArrayRegion(from, 0, static_cast<jsize>(bytes.size()),
                            reinterpret_cast<jbyte*>(bytes.data()));
    return true;
}

void native_sign(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray png) {
    const Text o(env, ot);
    std::vector<uint8_t> bytes;
    if (!copy_bytes(env, png, bytes, "otsync signature")) {
        return;
    }
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_sign(c, o.c_str(), bytes.empty() ? nullptr : bytes.data(),
                                  bytes.size(), e);
    });
}

jbyteArray native_photo(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray serial,
                        jbyteArray image) {
    const Text o(env, ot), s(env, serial);
    std::vector<uint8_t> bytes;
    if (!copy_bytes(env, image, bytes, "otsync photo")) {
        return nullptr;
    }
    return json_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_photo(c, o.c_str(), s.c_str(), bytes.empty() ? nullptr : bytes.data(),
                                   bytes.size(), e);
    });
}

void native_deliver_handover(JNIEnv* env, jclass, jlong h, jbyteArray handover,
                             jbyteArray delivered_by, jbyteArray png) {
    const Text id(env, handover), by(env, delivered_by);
    std::vector<uint8_t> bytes;
    if (!copy_bytes(env, png, bytes, "otsync signature")) {
        return;
    }
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_deliver_handover(
            c, id.c_str(), by.c_str(), bytes.empty() ? nullptr : bytes.data(), bytes.size(), e);
    });
}

void native_reopen_signature(JNIEnv* env, jclass, jlong h, jbyteArray ot, jbyteArray reason) {
    const Text o(env, ot), r(env, reason);
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_reopen_signature(c, o.c_str(), r.c_str(), e);
    });
}

jbyteArray native_create_handover(JNIEnv* env, jclass, jlong h, jbyteArray zone) {
    const Text z(env, zone);
    return json_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_create_handover(c, z.c_str(), e);
    });
}

jbyteArray native_handovers(JNIEnv* env, jclass, jlong h) {
    return json_call(
        env, h, [&](otsync_client_t* c, otsync_error* e) { return otsync_client_handovers(c, e); });
}

void native_verify_receipt(JNIEnv* env, jclass, jlong h, jbyteArray handover) {
    const Text id(env, handover);
    status_call(env, h, [&](otsync_client_t* c, otsync_error* e) {
        return otsync_client_verify_receipt(c, id.c_str(), e);
    });
}

jbyteArray native_status(JNIEnv* env, jclass, jlong h) {
    return json_call(
        env, h, [&](otsync_client_t* c, otsync_error* e) { return otsync_client_status(c, e); });
}

// ---- HttpCall's natives: the Java transport's answer, from any thread ----

otsync_http_call* call_of(jlong p) {
    return reinterpret_cast<otsync_http_call*>(static_cast<std::intptr_t>(p));
}

void native_complete(JNIEnv* env, jclass, jlong call, jint status, jbyteArray body) {
    std::vector<uint8_t> bytes;
    if (body) {
        try {
            bytes.resize(static_cast<std::size_t>(env->GetArrayLength(body)));
        } catch (...) {
            otsync_http_call_fail(call_of(call), OTSYNC_ERR_NETWORK,
                                  "the Java transport: out of memory for the answer");
            return;
        }
        env->GetByteArrayRegion(body, 0, static_cast<jsize>(bytes.size()),
                                reinterpret_cast<jbyte*>(bytes.data()));
    }
    otsync_http_call_complete(call_of(call), status, bytes.data(), bytes.size());
}

void native_fail(JNIEnv* env, jclass, jlong call, jint code, jbyteArray message) {
    const Text m(env, message);
    otsync_http_call_fail(call_of(call), code, m.c_str());
}

// clang-format off
#define OTSYNC_NATIVE(name, sig, fn) \
    JNINativeMethod{const_cast<char*>(name), const_cast<char*>(sig), reinterpret_cast<void*>(fn)}
// clang-format on

bool register_natives(JNIEnv* env) {
    const JNINativeMethod client[] = {
        OTSYNC_NATIVE("nativeVersion", "()[B", native_version),
        OTSYNC_NATIVE("nativeErrorName", "(I)[B", native_error_name),
        OTSYNC_NATIVE("nativeOpen", "([B[B)J", native_open),
        OTSYNC_NATIVE("nativeClose", "(J)V", native_close),
        OTSYNC_NATIVE("nativeEnroll", "(J[B[B[B)V", native_enroll),
        OTSYNC_NATIVE("nativeSync", "(JLbo/comteco/otsync/ProgressListener;)[B", native_sync),
        OTSYNC_NATIVE("nativeSetTransport", "(JLbo/comteco/otsync/TransportBridge;)V",
                      native_set_transport),
        OTSYNC_NATIVE("nativeSetHttpOptions", "(JIII[B[B)V", native_set_http_options),
        OTSYNC_NATIVE("nativeSetRetryPolicy", "(JIIII)V", native_set_retry_policy),
        OTSYNC_NATIVE("nativeCancel", "(J)V", native_cancel),
        OTSYNC_NATIVE("nativeListOts", "(J[B)[B", native_list_ots),
        OTSYNC_NATIVE("nativeListOtsBetween", "(J[BJJ)[B", native_list_ots_between),
        OTSYNC_NATIVE("nativeShowOt", "(J[B)[B", native_show_ot),
        OTSYNC_NATIVE("nativeSetStatus", "(J[B[B[B)V", native_set_status),
        OTSYNC_NATIVE("nativeCollect", "(J[B[B[B[B[B[B)I", native_collect),
        OTSYNC_NATIVE("nativeVoidItem", "(J[B[B)V", native_void_item),
        OTSYNC_NATIVE("nativeVerify", "(J[B[B)I", native_verify),
        OTSYNC_NATIVE("nativeReportMissing", "(J[B[B[B)V", native_report_missing),
        OTSYNC_NATIVE("nativeSign", "(J[B[B)V", native_sign),
        OTSYNC_NATIVE("nativePhoto", "(J[B[B[B)[B", native_photo),
        OTSYNC_NATIVE("nativeDeliverHandover", "(J[B[B[B)V", native_deliver_handover),
        OTSYNC_NATIVE("nativeReopenSignature", "(J[B[B)V", native_reopen_signature),
        OTSYNC_NATIVE("nativeCreateHandover", "(J[B)[B", native_create_handover),
        OTSYNC_NATIVE("nativeHandovers", "(J)[B", native_handovers),
        OTSYNC_NATIVE("nativeVerifyReceipt", "(J[B)V", native_verify_receipt),
        OTSYNC_NATIVE("nativeStatus", "(J)[B", native_status),
    };
    const JNINativeMethod call[] = {
        OTSYNC_NATIVE("nativeComplete", "(JI[B)V", native_complete),
        OTSYNC_NATIVE("nativeFail", "(JI[B)V", native_fail),
    };
    jclass c = env->FindClass("bo/comteco/otsync/OtsyncClient");
    if (!c || env->RegisterNatives(c, client, sizeof client / sizeof client[0]) != JNI_OK) {
        return false;
    }
    env->DeleteLocalRef(c);
    return env->RegisterNatives(g.http_call, call, sizeof call / sizeof call[0]) == JNI_OK;
}
#undef OTSYNC_NATIVE

jclass global_class(JNIEnv* env, const char* name) {
    jclass local = env->FindClass(name);
    if (!local) {
        return nullptr;
    }
    auto* out = static_cast<jclass>(env->NewGlobalRef(local));
    env->DeleteLocalRef(local);
    return out;
}

bool look_up(JNIEnv* env) {
    if (!(g.exception = global_class(env, "bo/comteco/otsync/OtsyncException")) ||
        !(g.exception_ctor = env->GetMethodID(g.exception, "<init>", "(I[B)V")) ||
        !(g.http_call = global_class(env, "bo/comteco/otsync/HttpCall")) ||
        !(g.http_call_ctor = env->GetMethodID(g.http_call, "<init>", "(J[B[B[[B[B)V")) ||
        !(g.http_call_ptr = env->GetFieldID(g.http_call, "ptr", "J")) ||
        !(g.bytes = global_class(env, "[B")) ||
        !(g.progress = global_class(env, "bo/comteco/otsync/SyncProgress")) ||
        !(g.progress_ctor = env->GetMethodID(g.progress, "<init>", "(JJJJJJIJI[B)V")) ||
        !(g.illegal_state = global_class(env, "java/lang/IllegalStateException")) ||
        !(g.out_of_memory = global_class(env, "java/lang/OutOfMemoryError"))) {
        return false;
    }
    jclass bridge = env->FindClass("bo/comteco/otsync/TransportBridge");
    jclass listener = env->FindClass("bo/comteco/otsync/ProgressListener");
    if (!bridge || !listener ||
        !(g.bridge_send = env->GetMethodID(bridge, "send", "(JLbo/comteco/otsync/HttpCall;)V")) ||
        !(g.bridge_cancel = env->GetMethodID(bridge, "cancel", "(J)V")) ||
        !(g.on_progress =
              env->GetMethodID(listener, "onProgress", "(Lbo/comteco/otsync/SyncProgress;)Z"))) {
        return false;
    }
    env->DeleteLocalRef(bridge);
    env->DeleteLocalRef(listener);
    return true;
}

} // namespace

extern "C" JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM* vm, void*) {
    g_vm = vm;
    void* env = nullptr;
    if (vm->GetEnv(&env, JNI_VERSION_1_8) != JNI_OK) {
        return JNI_ERR;
    }
    auto* e = static_cast<JNIEnv*>(env);
    if (!look_up(e) || !register_natives(e)) {
        return JNI_ERR; // a NoSuchMethodError or similar is pending: it says what
    }
    return JNI_VERSION_1_8;
}
