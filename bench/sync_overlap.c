/* sync_overlap.c - probe: do concurrent fdatasyncs of one file overlap on this
 * kernel and disk? N threads each append a block to the same file (at offsets
 * taken in turn) and fdatasync it, for a fixed time; prints syncs/s, MB/s and
 * the sync latency p50/p99 for N = 1, 2, 4. If 2 threads sync more often than
 * 1 at about the same latency, a second flusher could start a sync for an
 * append that arrives while one is in flight instead of queueing it behind
 * that one (group commit's wait: bench/REPORT.md, the produce ack stage).
 * Not a test; nothing asserts on it.
 * Usage: sync_overlap [--dir DIR] [--seconds S] [--block-bytes B] */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MAX_THREADS = 4, MAX_SAMPLES = 1 << 21 };

typedef struct {
    int fd;
    size_t block;
    double seconds;
    _Atomic long long *next_off;
    double *lat; /* seconds per fdatasync */
    long n;
    int err;
} worker_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    uint8_t *buf = malloc(w->block);
    if (!buf) {
        w->err = 1;
        return NULL;
    }
    memset(buf, 0x5a, w->block);
    double end = now_s() + w->seconds;
    while (w->n < MAX_SAMPLES && now_s() < end) {
        long long off = atomic_fetch_add(w->next_off, (long long)w->block);
        if (pwrite(w->fd, buf, w->block, (off_t)off) != (ssize_t)w->block) {
            w->err = 1;
            break;
        }
        double t0 = now_s();
        if (fdatasync(w->fd) != 0) {
            w->err = 1;
            break;
        }
        w->lat[w->n++] = now_s() - t0;
    }
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run with n threads on a new file; prints one line. @return 0 or 1. */
static int run(const char *dir, int n, size_t block, double seconds)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/sync_overlap.probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    _Atomic long long next_off = 0;
    pthread_t t[MAX_THREADS];
    worker_t w[MAX_THREADS];
    int rc = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (worker_t){.fd = fd, .block = block, .seconds = seconds, .next_off = &next_off};
        w[i].lat = malloc(sizeof(double) * MAX_SAMPLES);
        if (!w[i].lat || pthread_create(&t[i], NULL, worker, &w[i]) != 0) {
            fprintf(stderr, "sync_overlap: cannot start thread %d\n", i);
            exit(1);
        }
    }
    long total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        total += w[i].n;
        rc |= w[i].err;
    }
    double *all = malloc(sizeof(double) * (size_t)(total > 0 ? total : 1));
    long k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, w[i].lat, sizeof(double) * (size_t)w[i].n);
        k += w[i].n;
        free(w[i].lat);
    }
    if (total > 0) {
        qsort(all, (size_t)total, sizeof(double), cmp_double);
        printf("  %d thread(s): %8.0f fdatasyncs/s  %7.1f MB/s  sync p50 %.3f ms  p99 %.3f ms\n", n,
               (double)total / seconds, (double)total * (double)block / seconds / 1e6,
               all[total / 2] * 1e3, all[total * 99 / 100] * 1e3);
    }
    free(all);
    close(fd);
    unlink(path);
    if (rc)
        fprintf(stderr, "sync_overlap: a write or fdatasync failed\n");
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = ".";
    double seconds = 3;
    size_t block = 32768;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--block-bytes") == 0)
            block = (size_t)atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: sync_overlap [--dir DIR] [--seconds S] [--block-bytes B]\n");
            return 2;
        }
    }
    if (seconds <= 0 || block == 0 || block > (64u << 20)) {
        fprintf(stderr, "sync_overlap: --seconds must be > 0, --block-bytes 1..64 MiB\n");
        return 2;
    }
    printf("sync_overlap: %zu B appends + fdatasync to one file, %.0f s per run, dir %s\n", block,
           seconds, dir);
    int rc = 0;
    for (int n = 1; n <= MAX_THREADS; n *= 2)
        rc |= run(dir, n, block, seconds);
    return rc;
}
