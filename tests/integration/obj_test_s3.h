/* obj_test_s3.h - helpers shared by the S3 integration and fault tests:
 * find (or start) the local S3 server, run one request to completion on a
 * loop, and a copy of the result that outlives the callback.
 * The server comes from $STRATA_TEST_S3_URL (scripts/test.sh starts one with
 * the bucket "strata"); without it, the test starts its own with
 * scripts/s3server.sh on a free loopback port and stops it at exit. */
#ifndef OBJ_TEST_S3_H
#define OBJ_TEST_S3_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tiering/obj_int.h"

#define T_BUCKET "strata"

static char t_s3_url[128];
static char t_s3_dir[128];

static inline int t_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &n))
        return -1;
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static inline void t_stop_server(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s/scripts/s3server.sh' stop '%s' >/dev/null 2>&1; rm -rf '%s'",
             STRATA_SOURCE_DIR, t_s3_dir, t_s3_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not stop the S3 server in %s\n", t_s3_dir);
}

/* The endpoint URL of a running S3 server with bucket T_BUCKET, or NULL. */
static inline const char *t_s3_endpoint(void)
{
    if (t_s3_url[0])
        return t_s3_url;
    const char *e = getenv("STRATA_TEST_S3_URL");
    if (e && *e) {
        snprintf(t_s3_url, sizeof t_s3_url, "%s", e);
        return t_s3_url;
    }
    snprintf(t_s3_dir, sizeof t_s3_dir, "/tmp/strata-s3test.XXXXXX");
    if (!mkdtemp(t_s3_dir))
        return NULL;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s/scripts/s3server.sh' start %d '%s' " T_BUCKET, STRATA_SOURCE_DIR,
             t_free_port(), t_s3_dir);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(t_s3_url, sizeof t_s3_url, p)) {
        if (p)
            pclose(p);
        t_s3_url[0] = '\0';
        return NULL;
    }
    pclose(p);
    t_s3_url[strcspn(t_s3_url, "\n")] = '\0';
    atexit(t_stop_server);
    return t_s3_url;
}

/* Whether the server checks signatures (the legacy flavor does not). */
static inline bool t_s3_verifies(void)
{
    const char *v = getenv("STRATA_TEST_S3_VERIFIES");
    return !v || strcmp(v, "0") != 0;
}

/* A unique prefix per test run so runs never see each other's keys. */
static inline void t_unique_prefix(char *out, size_t n, const char *what)
{
    snprintf(out, n, "t-%s-%ld-%d", what, (long)time(NULL), (int)getpid());
}

typedef struct {
    bool is_done;
    int status;
    char errmsg[512];
    unsigned attempts;
    int http_status;
    uint8_t *data;
    size_t len;
    uint64_t object_size;
    char sha[65];
    char **keys;
    uint64_t *sizes;
    size_t n_keys;
    char *next_token;
    size_t n_failed;
} t_out_t;

static inline void t_out_free(t_out_t *o)
{
    free(o->data);
    for (size_t i = 0; i < o->n_keys; i++)
        free(o->keys[i]);
    free(o->keys);
    free(o->sizes);
    free(o->next_token);
    memset(o, 0, sizeof *o);
}

static inline void t_done_cb(obj_req_t *req, obj_result_t *res, void *arg)
{
    t_out_t *o = arg;
    o->is_done = true;
    o->status = res->status;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", res->errmsg);
    o->attempts = res->attempts;
    o->http_status = res->http_status;
    o->len = res->data_len;
    o->data = obj_result_take_data(res);
    o->object_size = res->object_size;
    memcpy(o->sha, res->sha256_hex, sizeof o->sha);
    o->n_keys = res->n_entries;
    o->keys = calloc(res->n_entries + 1, sizeof *o->keys);
    o->sizes = calloc(res->n_entries + 1, sizeof *o->sizes);
    for (size_t i = 0; i < res->n_entries; i++) {
        o->keys[i] = strdup(res->entries[i].key);
        o->sizes[i] = res->entries[i].size_bytes;
    }
    o->next_token = res->next_token ? strdup(res->next_token) : NULL;
    o->n_failed = res->n_failed;
}

static inline void t_wait(uv_loop_t *loop, t_out_t *o)
{
    while (!o->is_done)
        uv_run(loop, UV_RUN_ONCE);
}

static inline void t_close_store(uv_loop_t *loop, obj_store_t *st)
{
    obj_store_close(st, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

#endif
