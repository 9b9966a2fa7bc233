/* st_log.c - diagnostic log lines to stderr (see st_log.h).
 * A line is formatted into a stack buffer and written with a single write(2):
 * short writes to a pipe below PIPE_BUF are atomic, so threads need no lock. */
#include "core/st_log.h"
#include "core/st_err.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = ST_LOG_INFO;
static int g_fd = 2;
static _Thread_local int t_shard = -1;

static const char *const k_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void st_log_set_level(st_log_level_t level)
{
    atomic_store(&g_level, (int)level);
}

st_log_level_t st_log_get_level(void)
{
    return (st_log_level_t)atomic_load_explicit(&g_level, memory_order_relaxed);
}

int st_log_parse_level(const char *s, st_log_level_t *out)
{
    for (int i = 0; i <= ST_LOG_TRACE; i++) {
        if (strcasecmp(s, k_names[i]) == 0) {
            *out = (st_log_level_t)i;
            return 0;
        }
    }
    return ST_E_INVAL;
}

void st_log_set_shard(int shard_id)
{
    t_shard = shard_id;
}

void st_log_set_fd(int fd)
{
    g_fd = fd;
}

void st_logf(st_log_level_t level, const char *module, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%-5s %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
                     k_names[level], tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (t_shard >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[shard %d] ", t_shard);
    n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(g_fd, line, len);
    (void)w;
}
