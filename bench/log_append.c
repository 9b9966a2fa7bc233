/* log_append.c - benchmark: durable appends through the partition log vs raw
 * fdatasync'd sequential writes of the same sizes, measured in the same run.
 * Data path measured: plog_append (validation, CRC-32C, page-cache write) +
 * flusher group commit + durability callback, i.e. what acks=all costs.
 * Prints MB/s of both and the ratio (target >= 0.8).
 * Usage: log_append [--dir DIR] [--seconds S] [--records N] [--record-bytes B]
 *                   [--in-flight K] */
#include "core/plog.h"
#include "tests/support/tbatch.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Raw probe: write(len) + fdatasync, repeated ---- */

static double raw_mbps(const char *dir, const uint8_t *buf, size_t len, double seconds)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/raw.probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    double t0 = now_s(), t;
    size_t total = 0;
    do {
        if (write(fd, buf, len) != (ssize_t)len || fdatasync(fd) != 0) {
            perror("raw write");
            exit(1);
        }
        total += len;
    } while ((t = now_s()) - t0 < seconds);
    close(fd);
    unlink(path);
    return (double)total / (t - t0) / 1e6;
}

/* ---- plog with K appends in flight ---- */

typedef struct {
    plog_waiter_t w;
    int busy;
} slot_t;

typedef struct {
    plog_t *log;
    const uint8_t *batch;
    size_t len;
    uint8_t *scratch;
    slot_t *slots;
    int k;
    size_t acked;
    double t0, seconds;
    int stop;
    uv_idle_t idle;
} run_t;

static void on_durable(void *arg, int status)
{
    slot_t *s = arg;
    if (status != 0) {
        fprintf(stderr, "durable error: %s\n", st_strerror(status));
        exit(1);
    }
    s->busy = 0;
}

static void pump(uv_idle_t *h)
{
    run_t *r = h->data;
    if (now_s() - r->t0 >= r->seconds) {
        r->stop = 1;
        uv_idle_stop(h);
        return;
    }
    for (int i = 0; i < r->k; i++) {
        if (r->slots[i].busy)
            continue;
        memcpy(r->scratch, r->batch, r->len); /* a producer's fresh buffer */
        plog_append_info_t info;
        const char *why;
        int rc = plog_append(r->log, r->scratch, r->len, 0, 0, &info, &why);
        if (rc != 0) {
            fprintf(stderr, "append: %s (%s)\n", st_strerror(rc), why);
            exit(1);
        }
        r->acked += r->len;
        r->slots[i].busy = 1;
        plog_wait_durable(r->log, &r->slots[i].w, info.end_offset, on_durable, &r->slots[i]);
    }
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static double plog_mbps(const char *dir, const uint8_t *batch, size_t len, int k, double seconds)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    plog_env_t *env;
    plog_shard_t *sh;
    plog_t *log;
    char err[256], ldir[512];
    snprintf(ldir, sizeof(ldir), "%s/bench-%d", dir, k);
    plog_config_t cfg;
    plog_config_default(&cfg);
    if (plog_env_new(&env) || plog_shard_new(env, &loop, &sh) ||
        plog_open(sh, ldir, &cfg, 0, &log, err, sizeof(err))) {
        fprintf(stderr, "open: %s\n", err);
        exit(1);
    }
    run_t r = {.log = log, .batch = batch, .len = len, .k = k, .seconds = seconds};
    r.scratch = malloc(len);
    r.slots = calloc((size_t)k, sizeof(*r.slots));
    uv_idle_init(&loop, &r.idle);
    r.idle.data = &r;
    r.t0 = now_s();
    uv_idle_start(&r.idle, pump);
    /* Run until time is up and every append is durable. */
    for (;;) {
        uv_run(&loop, UV_RUN_ONCE);
        int busy = 0;
        for (int i = 0; i < k; i++)
            busy |= r.slots[i].busy;
        if (r.stop && !busy)
            break;
    }
    double t = now_s() - r.t0;
    int closed = 0;
    plog_close(log, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    plog_shard_free(sh);
    uv_close((uv_handle_t *)&r.idle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    plog_env_free(env);
    free(r.scratch);
    free(r.slots);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ldir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", ldir);
    return (double)r.acked / t / 1e6;
}

int main(int argc, char **argv)
{
    const char *dir = ".";
    double seconds = 3;
    int records = 16, rec_bytes = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--records"))
            records = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--record-bytes"))
            rec_bytes = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    size_t len;
    uint8_t *batch = tbatch_build(records, (size_t)rec_bytes, 1, 0, &len);
    printf("log_append: batches of %d x %d B records (%zu B), %.0f s per run, dir %s\n", records,
           rec_bytes, len, seconds, dir);
    double raw = raw_mbps(dir, batch, len, seconds);
    printf("  raw write+fdatasync of %zu B        %8.1f MB/s  (the limit)\n", len, raw);
    int ks[] = {1, 8, 64};
    for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
        double m = plog_mbps(dir, batch, len, ks[i], seconds);
        printf("  plog durable appends, %2d in flight %8.1f MB/s  ratio %.2f%s\n", ks[i], m,
               m / raw, ks[i] == 1 ? " (target >= 0.8)" : " (group commit)");
    }
    free(batch);
    return 0;
}
