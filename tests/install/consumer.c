/* A program of an app's own, built against an installed otsync-client alone (pkg-config or
 * find_package; run_install_test.sh): opens a client on a fresh database, sees the second
 * open refused as busy, prints the version and closes. Plain C11. */
#include <otsync/client.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: consumer DB_PATH\n");
        return 2;
    }
    uint8_t key[32];
    for (size_t i = 0; i < sizeof key; ++i) {
        key[i] = (uint8_t)(0xa5 ^ i);
    }
    if (strcmp(otsync_version(), OTSYNC_VERSION_STRING) != 0) {
        fprintf(stderr, "library %s, header %s\n", otsync_version(), OTSYNC_VERSION_STRING);
        return 1;
    }
    if (strcmp(otsync_error_name(OTSYNC_ERR_BUSY), "busy") != 0) {
        fprintf(stderr, "OTSYNC_ERR_BUSY is named %s\n", otsync_error_name(OTSYNC_ERR_BUSY));
        return 1;
    }

    otsync_error err;
    memset(&err, 0, sizeof err);
    otsync_client_t* client = otsync_client_open(argv[1], key, &err);
    if (client == NULL) {
        fprintf(stderr, "open: %s (%s)\n", err.message, otsync_error_name(err.code));
        return 1;
    }
    /* The same file a second time: refused while the first handle holds it. */
    otsync_client_t* again = otsync_client_open(argv[1], key, &err);
    const int second = err.code;
    if (again != NULL || second != OTSYNC_ERR_BUSY) {
        fprintf(stderr, "second open: code %d, expected busy\n", second);
        otsync_client_close(&again);
        otsync_client_close(&client);
        return 1;
    }
    char* status = otsync_client_status(client, &err);
    if (status == NULL) {
        fprintf(stderr, "status: %s (%s)\n", err.message, otsync_error_name(err.code));
        otsync_client_close(&client);
        return 1;
    }
    printf("otsync %s (header %d.%d.%d); second open: %s; status %s\n", otsync_version(),
           OTSYNC_VERSION_MAJOR, OTSYNC_VERSION_MINOR, OTSYNC_VERSION_PATCH,
           otsync_error_name(second), status);
    otsync_string_free(&status);
    otsync_client_close(&client);
    return client == NULL && status == NULL ? 0 : 1;
}
