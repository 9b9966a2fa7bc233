/* st_log.h - diagnostic logging (not the partition log: that is plog_).
 * Format: `LEVEL time [shard N] module: message key=value`.
 * Each line is written with one write(2) so lines from different threads
 * never interleave. Secrets must never be passed here. */
#ifndef ST_LOG_H
#define ST_LOG_H

#include <stdarg.h>

typedef enum { ST_LOG_ERROR, ST_LOG_WARN, ST_LOG_INFO, ST_LOG_DEBUG, ST_LOG_TRACE } st_log_level_t;

/** Set the process-wide threshold; messages above it are dropped. @thread any */
void st_log_set_level(st_log_level_t level);
st_log_level_t st_log_get_level(void);
/** Parse "error|warn|info|debug|trace". @return 0 or ST_E_INVAL. */
int st_log_parse_level(const char *s, st_log_level_t *out);
/** Tag the calling thread's lines with a shard id (-1: none). @thread the calling thread */
void st_log_set_shard(int shard_id);
/** Redirect output to an fd (default 2). @thread any, before threads start */
void st_log_set_fd(int fd);

void st_logf(st_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ST_LOG(level, module, ...)                                                                 \
    do {                                                                                           \
        if ((level) <= st_log_get_level())                                                         \
            st_logf((level), (module), __VA_ARGS__);                                               \
    } while (0)
#define ST_ERROR(m, ...) ST_LOG(ST_LOG_ERROR, m, __VA_ARGS__)
#define ST_WARN(m, ...)  ST_LOG(ST_LOG_WARN, m, __VA_ARGS__)
#define ST_INFO(m, ...)  ST_LOG(ST_LOG_INFO, m, __VA_ARGS__)
#define ST_DEBUG(m, ...) ST_LOG(ST_LOG_DEBUG, m, __VA_ARGS__)

#endif
