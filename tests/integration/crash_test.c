/* crash_test.c - kill -9 durability test of the partition log.
 * A child process appends batches with durable acks (several in flight, so
 * group commit is exercised, with small segments so rolls happen) and prints
 * one line per acknowledged batch. The parent kills it with SIGKILL at a
 * random moment, recovers the log as a restarted broker would, and checks
 * that every acknowledged batch is present and byte-identical.
 * Usage: crash_test [TRIALS]   (the child mode is internal) */
#include "core/plog.h"
#include "tests/support/tbatch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { IN_FLIGHT = 16 };

/* ---- Child: append forever, print acks ---- */

typedef struct {
    plog_waiter_t w;
    int64_t base, n;
    uint64_t seed;
    size_t vlen;
    int busy;
} slot_t;

static plog_t *g_log;
static slot_t g_slots[IN_FLIGHT];
static uint64_t g_seed;

static void on_durable(void *arg, int status)
{
    slot_t *s = arg;
    if (status != 0) {
        fprintf(stderr, "child: durable error %s\n", st_strerror(status));
        exit(3);
    }
    printf("%" PRId64 " %" PRId64 " %" PRIu64 " %zu\n", s->base, s->n, s->seed, s->vlen);
    fflush(stdout);
    s->busy = 0;
}

static void fill(uv_idle_t *h)
{
    (void)h;
    for (int i = 0; i < IN_FLIGHT; i++) {
        slot_t *s = &g_slots[i];
        if (s->busy)
            continue;
        s->seed = g_seed++;
        s->n = 1 + (int64_t)(s->seed % 7);
        s->vlen = 100 + (size_t)(s->seed * 37 % 900);
        size_t len;
        uint8_t *b = tbatch_build((int)s->n, s->vlen, s->seed, (int64_t)s->seed, &len);
        plog_append_info_t info;
        const char *why;
        int rc = plog_append(g_log, b, len, 1, 0, &info, &why);
        free(b);
        if (rc != 0) {
            fprintf(stderr, "child: append failed: %s (%s)\n", st_strerror(rc), why);
            exit(3);
        }
        s->base = info.base_offset;
        s->busy = 1;
        plog_wait_durable(g_log, &s->w, info.end_offset, on_durable, s);
    }
}

static int child_main(const char *dir, uint64_t seed0)
{
    uv_loop_t *loop = uv_default_loop();
    plog_env_t *env;
    plog_shard_t *sh;
    char err[256];
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 256 * 1024;
    if (plog_env_new(&env) || plog_shard_new(env, loop, &sh) ||
        plog_open(sh, dir, &cfg, 0, &g_log, err, sizeof(err))) {
        fprintf(stderr, "child: open failed: %s\n", err);
        return 3;
    }
    g_seed = seed0;
    uv_idle_t idle;
    uv_idle_init(loop, &idle);
    uv_idle_start(&idle, fill);
    return uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- Parent ---- */

typedef struct {
    int64_t base, n;
    uint64_t seed;
    size_t vlen;
} ack_t;

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static int verify(const char *dir, const ack_t *acks, int n_acks, int64_t *end_out)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    plog_env_t *env;
    plog_shard_t *sh;
    plog_t *log;
    char err[256];
    plog_config_t cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 256 * 1024;
    if (plog_env_new(&env) || plog_shard_new(env, &loop, &sh) ||
        plog_open(sh, dir, &cfg, 0, &log, err, sizeof(err))) {
        fprintf(stderr, "verify: open failed: %s\n", err);
        return -1;
    }
    int bad = 0;
    for (int i = 0; i < n_acks && !bad; i++) {
        const ack_t *a = &acks[i];
        plog_slice_t s;
        if (plog_read(log, a->base, 1, &s) != 0 || s.first_offset != a->base ||
            s.next_offset != a->base + a->n) {
            fprintf(stderr, "verify: acked batch at offset %" PRId64 " missing (end %" PRId64 ")\n",
                    a->base, plog_end_offset(log));
            bad = 1;
            break;
        }
        size_t len;
        uint8_t *exp = tbatch_build((int)a->n, a->vlen, a->seed, (int64_t)a->seed, &len);
        uint8_t *got = malloc((size_t)s.len);
        if ((size_t)s.len != len || plog_slice_pread(&s, got) != 0 ||
            memcmp(got + 8, exp + 8, 4) != 0 || memcmp(got + 16, exp + 16, len - 16) != 0) {
            fprintf(stderr, "verify: acked batch at offset %" PRId64 " differs\n", a->base);
            bad = 1;
        }
        free(got);
        free(exp);
        plog_slice_release(&s);
    }
    *end_out = plog_end_offset(log);
    int closed = 0;
    plog_close(log, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    plog_shard_free(sh);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    plog_env_free(env);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "child"))
        return child_main(argv[2], strtoull(argv[3], NULL, 10));
    int trials = argc > 1 ? atoi(argv[1]) : 25;
    char dir[] = "/tmp/crash_test.XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    char logdir[300];
    snprintf(logdir, sizeof(logdir), "%s/t-0", dir);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int cap = 1 << 16, n_acks = 0, passed = 0, failed = 0;
    ack_t *acks = malloc((size_t)cap * sizeof(*acks));
    uint64_t seed = 1;
    for (int t = 0; t < trials; t++) {
        int fds[2];
        if (pipe(fds) != 0)
            return 2;
        char seedbuf[32];
        snprintf(seedbuf, sizeof(seedbuf), "%" PRIu64, seed);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
            execl("/proc/self/exe", argv[0], "child", logdir, seedbuf, (char *)NULL);
            _exit(127);
        }
        close(fds[1]);
        FILE *in = fdopen(fds[0], "r");
        int kill_after = rand() % 400; /* acks to see before the kill */
        int seen = 0;
        char line[256];
        while (seen < kill_after && fgets(line, sizeof(line), in)) {
            ack_t a;
            if (sscanf(line, "%" SCNd64 " %" SCNd64 " %" SCNu64 " %zu", &a.base, &a.n, &a.seed,
                       &a.vlen) == 4 &&
                n_acks < cap) {
                acks[n_acks++] = a;
                seen++;
            }
        }
        usleep((useconds_t)(rand() % 3000)); /* land anywhere in the write/sync cycle */
        kill(pid, SIGKILL);
        /* Acks the child printed before it died count too. */
        while (fgets(line, sizeof(line), in)) {
            ack_t a;
            if (sscanf(line, "%" SCNd64 " %" SCNd64 " %" SCNu64 " %zu", &a.base, &a.n, &a.seed,
                       &a.vlen) == 4 &&
                n_acks < cap)
                acks[n_acks++] = a;
        }
        fclose(in);
        int st;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st)) {
            fprintf(stderr, "trial %d: child exited on its own (status %d)\n", t, WEXITSTATUS(st));
            failed++;
            continue;
        }
        int64_t end;
        if (verify(logdir, acks, n_acks, &end) == 0) {
            passed++;
            printf("trial %d: ok, %d acked batches verified, log end offset %" PRId64 "\n", t,
                   n_acks, end);
        } else {
            failed++;
            printf("trial %d: FAILED\n", t);
        }
        seed += 1000000; /* fresh, distinct contents for the next child */
    }
    free(acks);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
