/* log_compact.c - benchmark: the log cleaner (compaction) against the disk's
 * sequential read+write bandwidth measured in the same run, and the latency of
 * durable appends to another log of the same loop while the cleaner runs vs
 * without it.
 * Data path measured: plog_cleaner_offer -> cleaner thread (offset map over the
 * dirty segments, rewrite of every segment, fdatasync, rename swaps) -> swap
 * on the loop; appends: plog_append + flusher group commit + durability callback.
 * Prints the dirty log's MB/s through the cleaner, the raw probe's MB/s (read
 * every segment file + write and fdatasync what the cleaner wrote), their ratio,
 * and append p50/p99 with the cleaner running vs without it, and their ratios:
 * the appends without it are taken just before the pass and just after it
 * (--baseline N each), so both sides see the same disk and page cache.
 * An append here is the storage half of a Produce with acks=all: plog_append
 * on the loop, the flusher's group-commit fdatasync, the durability callback.
 * Usage: log_compact [--dir DIR] [--mb M] [--keys K] [--value-bytes B]
 *                    [--baseline N] */
#include "core/plog.h"
#include "core/st_crc32c.h"
#include "tests/support/tbatch.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
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

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

/* One uncompressed batch of n records with random keys out of n_keys. */
static uint8_t *keyed_batch(int n, int n_keys, size_t vlen, size_t *len)
{
    uint8_t *b = calloc(1, 61 + (size_t)n * (vlen + 48));
    size_t p = 61;
    for (int i = 0; i < n; i++) {
        uint8_t rec[64];
        char key[24];
        int kl = snprintf(key, sizeof(key), "key-%d", (int)(rnd() % (uint64_t)n_keys));
        size_t r = 0;
        rec[r++] = 0;
        r += tbatch_put_varlong(rec + r, 0);
        r += tbatch_put_varlong(rec + r, i);
        r += tbatch_put_varlong(rec + r, kl);
        memcpy(rec + r, key, (size_t)kl);
        r += (size_t)kl;
        r += tbatch_put_varlong(rec + r, (int64_t)vlen);
        size_t body = r + vlen + 1;
        p += tbatch_put_varlong(b + p, (int64_t)body);
        memcpy(b + p, rec, r);
        p += r;
        for (size_t j = 0; j < vlen; j++)
            b[p++] = (uint8_t)rnd();
        b[p++] = 0; /* headers */
    }
    /* Header: reuse tbatch's for the fixed fields, then patch count/length. */
    size_t hl;
    uint8_t *h = tbatch_build(n, 0, 1, 1000, &hl);
    memcpy(b, h, 61);
    free(h);
    uint32_t bl = (uint32_t)(p - 12);
    b[8] = (uint8_t)(bl >> 24), b[9] = (uint8_t)(bl >> 16), b[10] = (uint8_t)(bl >> 8),
    b[11] = (uint8_t)bl;
    uint32_t crc = st_crc32c(0, b + 21, p - 21);
    b[17] = (uint8_t)(crc >> 24), b[18] = (uint8_t)(crc >> 16), b[19] = (uint8_t)(crc >> 8),
    b[20] = (uint8_t)crc;
    *len = p;
    return b;
}

static void on_flag(void *arg, int status)
{
    (void)status;
    *(int *)arg = 1;
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static void on_pass(void *arg)
{
    *(int *)arg = 1;
}

static double append_wait(uv_loop_t *loop, plog_t *log, const uint8_t *b, size_t len)
{
    uint8_t *copy = malloc(len);
    memcpy(copy, b, len);
    plog_append_info_t info;
    double t0 = now_s();
    if (plog_append(log, copy, len, 0, 1000, &info, NULL) != 0) {
        fprintf(stderr, "append failed\n");
        exit(1);
    }
    free(copy);
    int done = 0;
    plog_waiter_t w;
    plog_wait_durable(log, &w, info.end_offset, on_flag, &done);
    while (!done)
        uv_run(loop, UV_RUN_ONCE);
    return now_s() - t0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p50, p99 and max of n durations in seconds, in ms (v is sorted). */
static void pct(double *v, int n, double *p50, double *p99, double *max)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    *p50 = n ? v[n / 2] * 1e3 : 0;
    *p99 = n ? v[(int)(n * 0.99)] * 1e3 : 0;
    *max = n ? v[n - 1] * 1e3 : 0;
}

/* Raw probe: read every .log of dir, write written_bytes to a new file in
 * segment-sized writes with an fdatasync each, as the cleaner syncs each segment. */
static double raw_seconds(const char *dir, int64_t written_bytes, int n_segs)
{
    double t0 = now_s();
    DIR *d = opendir(dir);
    struct dirent *e;
    static uint8_t buf[1 << 20];
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".log") != 0)
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        int fd = open(p, O_RDONLY);
        while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
            ;
        if (fd >= 0)
            close(fd);
    }
    if (d)
        closedir(d);
    char p[1024];
    snprintf(p, sizeof(p), "%s/../raw.probe", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int64_t per = n_segs > 0 ? written_bytes / n_segs + 1 : written_bytes;
    for (int64_t done = 0; fd >= 0 && done < written_bytes;) {
        int64_t chunk_end = done + per;
        while (done < chunk_end && done < written_bytes) {
            size_t n = sizeof(buf);
            if ((int64_t)n > written_bytes - done)
                n = (size_t)(written_bytes - done);
            if (write(fd, buf, n) != (ssize_t)n)
                break;
            done += (int64_t)n;
        }
        if (fdatasync(fd) != 0)
            break;
    }
    if (fd >= 0)
        close(fd);
    unlink(p);
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    const char *base = "/tmp";
    int64_t mb = 128;
    int n_keys = 100000;
    size_t vlen = 100;
    int baseline = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            base = argv[i + 1];
        else if (!strcmp(argv[i], "--mb"))
            mb = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--keys"))
            n_keys = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--value-bytes"))
            vlen = (size_t)atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--baseline"))
            baseline = atoi(argv[i + 1]);
    }
    if (baseline < 100)
        baseline = 100;
    char root[512], dir[600], dir2[600];
    snprintf(root, sizeof(root), "%s/log_compact.XXXXXX", base);
    if (!mkdtemp(root)) {
        perror(root);
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/c-0", root);
    snprintf(dir2, sizeof(dir2), "%s/p-0", root);
    uv_loop_t loop;
    uv_loop_init(&loop);
    plog_env_t *env;
    plog_shard_t *sh;
    if (plog_env_new(&env) != 0 || plog_shard_new(env, &loop, &sh) != 0)
        return 1;
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 32 << 20;
    cfg.cleanup_compact = true;
    cfg.cleanup_delete = false;
    cfg.min_cleanable_ratio = 0;
    cfg.write_caching = true; /* fill fast; the final sync makes it durable */
    plog_t *log, *plog2;
    char err[256];
    if (plog_open(sh, dir, &cfg, 1000, &log, err, sizeof(err)) != 0)
        return 1;
    plog_config_t cfg2;
    plog_config_default(&cfg2);
    if (plog_open(sh, dir2, &cfg2, 1000, &plog2, err, sizeof(err)) != 0)
        return 1;
    /* Fill: mb MiB of keyed records. */
    int64_t target = mb << 20, written = 0;
    while (written < target) {
        size_t len;
        uint8_t *b = keyed_batch(200, n_keys, vlen, &len);
        plog_append_info_t info;
        if (plog_append(log, b, len, 0, 1000, &info, NULL) != 0)
            return 1;
        free(b);
        written += (int64_t)len;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (plog_roll(log, 1000) != 0)
        return 1;
    size_t len;
    uint8_t *b = keyed_batch(1, n_keys, vlen, &len);
    append_wait(&loop, log, b, len); /* every sealed segment durable, recovery point written */
    free(b);
    int n_segs = plog_segment_count(log) - 1;
    int64_t before = plog_size_bytes(log);
    plog_cleaner_t *c;
    if (plog_cleaner_new(&loop, (size_t)n_keys * 24 * 2 + (1 << 20), 0, &c) != 0)
        return 1;
    int done = 0;
    plog_cleaner_on_done(c, on_pass, &done);
    /* Appends of 10 records to another log, acks=all: `baseline` without the
     * cleaner, then while the pass runs, then `baseline` more without it. */
    uint8_t *small = keyed_batch(10, 1000, 100, &len);
    int cap = 1 << 20, n_with = 0, n_without = 0;
    double *with = malloc((size_t)cap * sizeof(double)),
           *without = malloc((size_t)(2 * baseline) * sizeof(double));
    while (n_without < baseline)
        without[n_without++] = append_wait(&loop, plog2, small, len);
    double t0 = now_s();
    if (plog_cleaner_offer(c, log, 10000) != 1) {
        fprintf(stderr, "the cleaner did not start\n");
        return 1;
    }
    while (!done && n_with < cap)
        with[n_with++] = append_wait(&loop, plog2, small, len);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    double secs = now_s() - t0;
    while (n_without < 2 * baseline)
        without[n_without++] = append_wait(&loop, plog2, small, len);
    plog_compact_stats_t st;
    plog_compact_stats(log, &st);
    double raw = raw_seconds(dir, st.bytes_written, n_segs);
    double p50w, p99w, maxw, p50o, p99o, maxo;
    pct(with, n_with, &p50w, &p99w, &maxw);
    pct(without, n_without, &p50o, &p99o, &maxo);
    double dirty_mb = (double)before / 1e6;
    printf("log_compact: dirty log %.1f MB (%d segments, %d keys, %zu-byte values) -> %.1f MB\n",
           dirty_mb, n_segs, n_keys, vlen, (double)plog_size_bytes(log) / 1e6);
    printf("  cleaner: %.2f s = %.1f MB/s of dirty log (read %.1f MB, wrote %.1f MB, removed "
           "%" PRId64 " records)\n",
           secs, dirty_mb / secs, (double)st.bytes_read / 1e6, (double)st.bytes_written / 1e6,
           st.records_removed);
    printf("  raw sequential read of the log + write/fdatasync of the output: %.2f s = %.1f MB/s\n",
           raw, dirty_mb / raw);
    printf("  ratio cleaner/raw: %.2f\n", raw / secs);
    printf("  durable appends (10 records, acks=all path) to another log of the same loop:\n"
           "    with the cleaner running: p50 %.2f ms p99 %.2f ms max %.2f ms (%d appends)\n"
           "    without (before + after the pass): p50 %.2f ms p99 %.2f ms max %.2f ms (%d "
           "appends)\n",
           p50w, p99w, maxw, n_with, p50o, p99o, maxo, n_without);
    printf("  ratio with/without the cleaner: p50 %.2f p99 %.2f%s\n", p50o > 0 ? p50w / p50o : 0,
           p99o > 0 ? p99w / p99o : 0,
           n_with < 100 ? " (under 100 appends during the pass: raise --mb)" : "");
    free(small);
    free(with);
    free(without);
    int closed = 0;
    plog_close(log, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    closed = 0;
    plog_close(plog2, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    plog_cleaner_free(c);
    plog_shard_free(sh);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    plog_env_free(env);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : 1;
}
