/* A technician's whole visit through the C API, compiled as C11 to prove that
 * otsync/client.h is plain C: enroll, sync, list, show, en_route,
 * on_site, collect (matched, already recorded, unexpected), sign, complete, sync, then
 * re-open with the right key and with a wrong one, and NULL handles everywhere.
 *
 * Usage: c_flow SERVER_URL ENROLL_CODE DB_PATH
 * The server must hold an OT assigned to the enrolled technician that expects the serial
 * HWTC7F300999 (otsync-server --demo, technician tec.quispe; run_c_flow.sh sets it up).
 * Prints each step; exits 0 when every step passed, 1 at the first failure, 2 on usage. */
#include "otsync/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPECTED_SERIAL "HWTC7F300999"
#define UNEXPECTED_SERIAL "UNEXPECTED01"

/* Fixed keys: the platform keystore's 32 bytes, and a different one that must not open. */
static const uint8_t k_key[32] = {0x4f, 0x54, 0x73, 0x79, 0x6e, 0x63, 0x2d, 0x63, 0x2d, 0x66, 0x6c,
                                  0x6f, 0x77, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33,
                                  0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64};
static const uint8_t k_wrong_key[32] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20};

/* A real 1x1 greyscale PNG (67 bytes): the customer's "signature". */
static const uint8_t k_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00,
    0x00, 0x3a, 0x7e, 0x9b, 0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x48, 0xaf, 0xa4, 0x71, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

static int g_step = 0;
static const char* g_name = "";

static void begin(const char* name) {
    ++g_step;
    g_name = name;
    printf("[%2d] %s ... ", g_step, name);
    fflush(stdout);
}

static void pass(void) {
    printf("ok\n");
    fflush(stdout);
}

/* Reports the failing step (with the API's error when there is one); returns 1. */
static int fail(const char* what, const otsync_error* err) {
    printf("FAILED\n");
    if (err) {
        fprintf(stderr, "c_flow: step %d (%s) failed: %s: error %d: %s\n", g_step, g_name, what,
                err->code, err->message);
    } else {
        fprintf(stderr, "c_flow: step %d (%s) failed: %s\n", g_step, g_name, what);
    }
    return 1;
}

static void clear(otsync_error* err) {
    memset(err, 0, sizeof *err);
}

static const char* verdict_name(otsync_verdict v) {
    switch (v) {
    case OTSYNC_VERDICT_MATCHED:
        return "matched";
    case OTSYNC_VERDICT_UNEXPECTED:
        return "unexpected";
    case OTSYNC_VERDICT_ALREADY_RECORDED:
        return "already recorded";
    }
    return "?";
}

/* True when `json` holds `"key":N` with exactly the number N (not a longer one). */
static int has_number(const char* json, const char* key, const char* number) {
    char needle[128];
    const char* p = json;
    size_t n;
    snprintf(needle, sizeof needle, "\"%s\":%s", key, number);
    n = strlen(needle);
    while ((p = strstr(p, needle)) != NULL) {
        const char next = p[n];
        if (next < '0' || next > '9') {
            return 1;
        }
        p += n;
    }
    return 0;
}

/* Copies into `out` (33 bytes) the id of the first OT in `list` (a JSON array of objects
 * with "id") whose shown form mentions `serial`; returns 1 when found. `count` gets the
 * number of OTs listed. */
static int find_ot(otsync_client_t* client, const char* list, const char* serial, char out[33],
                   int* count, otsync_error* err) {
    const char* p = list;
    *count = 0;
    while ((p = strstr(p, "\"id\":\"")) != NULL) {
        char id[33];
        char* shown;
        p += 6;
        if (strspn(p, "0123456789abcdef") != 32 || p[32] != '"') {
            continue;
        }
        memcpy(id, p, 32);
        id[32] = '\0';
        ++*count;
        shown = otsync_client_show_ot(client, id, err);
        if (!shown) {
            return 0;
        }
        if (strstr(shown, serial) != NULL && out[0] == '\0') {
            memcpy(out, id, 33);
        }
        otsync_string_free(&shown);
    }
    return out[0] != '\0';
}

static int collect(otsync_client_t* client, const char* ot, const char* serial,
                   otsync_verdict expected, otsync_error* err) {
    otsync_verdict verdict;
    char what[160];
    /* A value the API never returns, so a call that forgets to set it is caught. */
    memset(&verdict, 0x7f, sizeof verdict);
    if (otsync_client_collect(client, ot, serial, "Huawei HG8245H", "migration", NULL, "c_flow",
                              &verdict, err) != 0) {
        return fail("otsync_client_collect", err);
    }
    if (verdict != expected) {
        snprintf(what, sizeof what, "verdict for %s is %d (%s), expected %d (%s)", serial,
                 (int)verdict, verdict_name(verdict), (int)expected, verdict_name(expected));
        return fail(what, NULL);
    }
    return 0;
}

static int run(const char* url, const char* code, const char* db_path) {
    otsync_error err;
    otsync_client_t* client = NULL;
    char* json = NULL;
    char ot[33] = {0};
    int count = 0;
    int failed = 1;

    begin("open the device database");
    clear(&err);
    client = otsync_client_open(db_path, k_key, &err);
    if (!client) {
        return fail("otsync_client_open", &err);
    }
    pass();

    begin("status before enrolling says not enrolled");
    json = otsync_client_status(client, &err);
    if (!json) {
        fail("otsync_client_status", &err);
        goto done;
    }
    if (!strstr(json, "\"enrolled\":false")) {
        fprintf(stderr, "c_flow: status: %s\n", json);
        fail("status does not say \"enrolled\":false", NULL);
        goto done;
    }
    otsync_string_free(&json);
    pass();

    begin("sync before enrolling fails with OTSYNC_ERR_NOT_ENROLLED");
    clear(&err);
    if (otsync_client_sync(client, NULL, NULL, &err) == 0 || err.code != OTSYNC_ERR_NOT_ENROLLED) {
        fail("expected OTSYNC_ERR_NOT_ENROLLED", &err);
        goto done;
    }
    pass();

    begin("enroll");
    clear(&err);
    if (otsync_client_enroll(client, url, code, "c_flow", &err) != 0) {
        fail("otsync_client_enroll", &err);
        goto done;
    }
    pass();

    begin("enrolling again with a used code is refused");
    clear(&err);
    if (otsync_client_enroll(client, url, code, "c_flow", &err) == 0 || err.code == OTSYNC_OK) {
        fail("a second enrollment succeeded", NULL);
        goto done;
    }
    pass();

    begin("first sync");
    clear(&err);
    if (otsync_client_sync(client, NULL, NULL, &err) != 0) {
        fail("otsync_client_sync", &err);
        goto done;
    }
    pass();

    begin("list my OTs (at least one)");
    /* On success the error is left alone: a sentinel must survive. */
    err.code = -12345;
    json = otsync_client_list_ots(client, NULL, &err);
    if (!json) {
        fail("otsync_client_list_ots", &err);
        goto done;
    }
    if (err.code != -12345) {
        fail("a successful call wrote the error", NULL);
        goto done;
    }
    clear(&err);
    if (!find_ot(client, json, EXPECTED_SERIAL, ot, &count, &err)) {
        fprintf(stderr, "c_flow: list: %s\n", json);
        fail(count == 0 ? "no OT listed" : "no listed OT expects " EXPECTED_SERIAL,
             err.code ? &err : NULL);
        goto done;
    }
    otsync_string_free(&json);
    printf("ok (%d OTs; %s expects " EXPECTED_SERIAL ")\n", count, ot);

    begin("list filtered by status assigned includes it");
    json = otsync_client_list_ots(client, "assigned", &err);
    if (!json) {
        fail("otsync_client_list_ots(assigned)", &err);
        goto done;
    }
    if (!strstr(json, ot)) {
        fail("the OT is not listed as assigned", NULL);
        goto done;
    }
    otsync_string_free(&json);
    pass();

    begin("show the OT");
    json = otsync_client_show_ot(client, ot, &err);
    if (!json) {
        fail("otsync_client_show_ot", &err);
        goto done;
    }
    if (!strstr(json, EXPECTED_SERIAL) || !strstr(json, ot)) {
        fprintf(stderr, "c_flow: show: %s\n", json);
        fail("the shown OT lacks its id or its expected serial", NULL);
        goto done;
    }
    otsync_string_free(&json);
    pass();

    begin("show an OT that does not exist fails with OTSYNC_ERR_NOT_FOUND");
    clear(&err);
    json = otsync_client_show_ot(client, "00000000000000000000000000000000", &err);
    if (json || err.code != OTSYNC_ERR_NOT_FOUND) {
        fail("expected NULL and OTSYNC_ERR_NOT_FOUND", &err);
        goto done;
    }
    pass();

    begin("completing before arriving is refused");
    clear(&err);
    if (otsync_client_set_status(client, ot, "completed", NULL, &err) == 0 ||
        err.code == OTSYNC_OK) {
        fail("assigned -> completed was accepted", NULL);
        goto done;
    }
    pass();

    begin("status en_route");
    if (otsync_client_set_status(client, ot, "en_route", NULL, &err) != 0) {
        fail("otsync_client_set_status(en_route)", &err);
        goto done;
    }
    pass();

    begin("status on_site");
    if (otsync_client_set_status(client, ot, "on_site", NULL, &err) != 0) {
        fail("otsync_client_set_status(on_site)", &err);
        goto done;
    }
    pass();

    begin("collect " EXPECTED_SERIAL " -> matched");
    if (collect(client, ot, EXPECTED_SERIAL, OTSYNC_VERDICT_MATCHED, &err)) {
        goto done;
    }
    pass();

    begin("collect " EXPECTED_SERIAL " again -> already recorded");
    if (collect(client, ot, EXPECTED_SERIAL, OTSYNC_VERDICT_ALREADY_RECORDED, &err)) {
        goto done;
    }
    pass();

    begin("collect " UNEXPECTED_SERIAL " -> unexpected");
    if (collect(client, ot, UNEXPECTED_SERIAL, OTSYNC_VERDICT_UNEXPECTED, &err)) {
        goto done;
    }
    pass();

    begin("the shown OT has both rows");
    json = otsync_client_show_ot(client, ot, &err);
    if (!json) {
        fail("otsync_client_show_ot", &err);
        goto done;
    }
    if (!strstr(json, UNEXPECTED_SERIAL)) {
        fprintf(stderr, "c_flow: show: %s\n", json);
        fail("no row for " UNEXPECTED_SERIAL, NULL);
        goto done;
    }
    otsync_string_free(&json);
    pass();

    begin("the adapter and the remote stay with the customer: reasons recorded");
    if (otsync_client_report_missing(client, ot, "PWR-12V-0999", "el cliente la conserva", &err) !=
            0 ||
        otsync_client_report_missing(client, ot, "RMT-0999", "extraviado", &err) != 0) {
        fail("otsync_client_report_missing", &err);
        goto done;
    }
    pass();

    begin("a signature that is not a PNG is refused");
    clear(&err);
    if (otsync_client_sign(client, ot, (const uint8_t*)"hello world", 11, &err) == 0 ||
        err.code != OTSYNC_ERR_INVALID_VALUE) {
        fail("'hello world' was accepted as a PNG", NULL);
        goto done;
    }
    pass();

    begin("sign with a PNG");
    if (otsync_client_sign(client, ot, k_png, sizeof k_png, &err) != 0) {
        fail("otsync_client_sign", &err);
        goto done;
    }
    pass();

    begin("an empty signature is refused");
    clear(&err);
    if (otsync_client_sign(client, ot, NULL, 0, &err) == 0 || err.code == OTSYNC_OK) {
        fail("an empty signature was accepted", NULL);
        goto done;
    }
    pass();

    begin("the signed rows are frozen");
    clear(&err);
    if (otsync_client_void_item(client, ot, UNEXPECTED_SERIAL, &err) == 0 ||
        err.code != OTSYNC_ERR_SIGNED_ROWS) {
        fail("a signed row could be voided", NULL);
        goto done;
    }
    pass();

    begin("status completed");
    if (otsync_client_set_status(client, ot, "completed", NULL, &err) != 0) {
        fail("otsync_client_set_status(completed)", &err);
        goto done;
    }
    pass();

    begin("there is something to send before the sync");
    json = otsync_client_status(client, &err);
    if (!json) {
        fail("otsync_client_status", &err);
        goto done;
    }
    if (has_number(json, "pending", "0")) {
        fprintf(stderr, "c_flow: status: %s\n", json);
        fail("nothing pending after recording", NULL);
        goto done;
    }
    otsync_string_free(&json);
    pass();

    begin("sync pushes everything");
    if (otsync_client_sync(client, NULL, NULL, &err) != 0) {
        fail("otsync_client_sync", &err);
        goto done;
    }
    pass();

    begin("status says pending 0 and no rejection");
    json = otsync_client_status(client, &err);
    if (!json) {
        fail("otsync_client_status", &err);
        goto done;
    }
    printf("\n     %s\n     ", json);
    if (!has_number(json, "pending", "0")) {
        fail("status does not say \"pending\":0", NULL);
        goto done;
    }
    if (!strstr(json, "\"rejections\":[]")) {
        fail("the server rejected ops (see \"rejections\")", NULL);
        goto done;
    }
    otsync_string_free(&json);
    pass();

    begin("close sets the handle to NULL");
    otsync_client_close(&client);
    if (client != NULL) {
        fail("the handle is not NULL after close", NULL);
        goto done;
    }
    otsync_client_close(&client); /* closing twice is harmless */
    pass();

    begin("re-open with the same key; the OT is still listed, completed");
    client = otsync_client_open(db_path, k_key, &err);
    if (!client) {
        fail("otsync_client_open", &err);
        goto done;
    }
    json = otsync_client_list_ots(client, "completed", &err);
    if (!json) {
        fail("otsync_client_list_ots", &err);
        goto done;
    }
    if (!strstr(json, ot)) {
        fprintf(stderr, "c_flow: list: %s\n", json);
        fail("the completed OT is not listed after re-opening", NULL);
        goto done;
    }
    otsync_string_free(&json);
    otsync_client_close(&client);
    pass();

    begin("re-open with a wrong key fails with OTSYNC_ERR_WRONG_KEY");
    clear(&err);
    client = otsync_client_open(db_path, k_wrong_key, &err);
    if (client) {
        otsync_client_close(&client);
        fail("a wrong key opened the database", NULL);
        goto done;
    }
    if (err.code != OTSYNC_ERR_WRONG_KEY) {
        fail("expected OTSYNC_ERR_WRONG_KEY", &err);
        goto done;
    }
    pass();

    begin("NULL handles and arguments fail without crashing");
    {
        otsync_verdict verdict = OTSYNC_VERDICT_MATCHED;
        otsync_client_t* none = NULL;
        char* none_str = NULL;
        int bad = 0;
        clear(&err);
        if (otsync_client_list_ots(NULL, NULL, &err) != NULL || err.code == OTSYNC_OK) {
            bad = 1;
        }
        clear(&err);
        if (otsync_client_show_ot(NULL, ot, &err) != NULL || err.code == OTSYNC_OK) {
            bad = 2;
        }
        clear(&err);
        if (otsync_client_set_status(NULL, ot, "en_route", NULL, &err) == 0 ||
            err.code == OTSYNC_OK) {
            bad = 3;
        }
        clear(&err);
        if (otsync_client_collect(NULL, ot, EXPECTED_SERIAL, NULL, "migration", NULL, NULL,
                                  &verdict, &err) == 0 ||
            err.code == OTSYNC_OK) {
            bad = 4;
        }
        clear(&err);
        if (otsync_client_sync(NULL, NULL, NULL, &err) == 0 || err.code == OTSYNC_OK) {
            bad = 5;
        }
        clear(&err);
        if (otsync_client_status(NULL, &err) != NULL || err.code == OTSYNC_OK) {
            bad = 6;
        }
        clear(&err);
        if (otsync_client_enroll(NULL, url, code, NULL, &err) == 0 || err.code == OTSYNC_OK) {
            bad = 7;
        }
        clear(&err);
        if (otsync_client_create_handover(NULL, NULL, &err) != NULL || err.code == OTSYNC_OK) {
            bad = 8;
        }
        clear(&err);
        if (otsync_client_open(NULL, k_key, &err) != NULL || err.code == OTSYNC_OK) {
            bad = 9;
        }
        clear(&err);
        if (otsync_client_open(db_path, NULL, &err) != NULL || err.code == OTSYNC_OK) {
            bad = 10;
        }
        /* A NULL error pointer is allowed too. */
        if (otsync_client_list_ots(NULL, NULL, NULL) != NULL ||
            otsync_client_verify(NULL, NULL, NULL, NULL, NULL) == 0 ||
            otsync_client_void_item(NULL, NULL, NULL, NULL) == 0 ||
            otsync_client_sign(NULL, NULL, NULL, 0, NULL) == 0) {
            bad = 11;
        }
        otsync_client_close(NULL);
        otsync_client_close(&none);
        otsync_string_free(NULL);
        otsync_string_free(&none_str);
        if (bad) {
            char what[64];
            snprintf(what, sizeof what, "NULL check %d did not fail as it should", bad);
            fail(what, &err);
            goto done;
        }
    }
    pass();

    failed = 0;
done:
    otsync_string_free(&json);
    otsync_client_close(&client);
    return failed;
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: c_flow SERVER_URL ENROLL_CODE DB_PATH\n");
        return 2;
    }
    if (run(argv[1], argv[2], argv[3]) != 0) {
        return 1;
    }
    printf("c_flow: all %d steps passed\n", g_step);
    return 0;
}
