/* part.h - the partitions a shard owns: a registry from (topic, partition)
 * to its open plog_t, the periodic retention/roll tick, and orderly close.
 * Data path: request handlers on the owning shard look a partition up here
 * (part_get) and append/read through plog. At start-up each shard opens the
 * partition directories it owns (rt_shard_for) and recovers them. */
#ifndef PART_H
#define PART_H

#include "core/plog.h"
#include "core/rt.h"

typedef struct part_shard part_shard_t;

typedef struct {
    const char *data_dir;     /* borrowed: log.dir */
    plog_config_t log_cfg;    /* defaults for every partition */
    int64_t tick_interval_ms; /* retention / segment.ms check period */
    /* The shard's log cleaner (compacted topics; 0: Kafka's defaults). */
    int64_t cleaner_buffer_bytes;     /* log.cleaner.dedupe.buffer.size */
    int64_t cleaner_io_bytes_per_sec; /* log.cleaner.io.max.bytes.per.second */
    int64_t cleaner_backoff_ms;       /* log.cleaner.backoff.ms */
    /* Optional: the config of a topic's logs (cluster defaults + topic
     * overrides); log_cfg is used when NULL. Called on the shard's loop. */
    void (*topic_config)(void *arg, const char *topic, plog_config_t *out);
    void *topic_config_arg;
} part_opts_t;

/** Create the registry of shard sh and open every partition directory of
 * data_dir that sh owns (recovering each).
 * @return 0 or an error (errbuf names the partition). @thread sh's loop */
ST_MUST_CHECK int part_shard_new(rt_shard_t *sh,
                                 plog_env_t *env,
                                 const part_opts_t *opts,
                                 part_shard_t **out,
                                 char *errbuf,
                                 size_t errbuf_len);

/** The log of (topic, partition) if this shard has it open, else NULL. */
plog_t *part_get(part_shard_t *ps, const char *topic, int32_t partition);

/** Create (or open) the log of (topic, partition) on this shard.
 * @param cfg  Borrowed; NULL for the topic's config from the options. */
ST_MUST_CHECK int part_open(part_shard_t *ps,
                            const char *topic,
                            int32_t partition,
                            const plog_config_t *cfg,
                            plog_t **out,
                            char *errbuf,
                            size_t errbuf_len);

/** Close and delete every partition of topic on this shard (directories are
 * removed off the loop); on_drop(arg, log), if set, runs for each log just
 * before it is closed. @return how many were dropped. */
int part_drop_topic(part_shard_t *ps,
                    const char *topic,
                    void (*on_drop)(void *, plog_t *),
                    void *arg);

/** Apply cfg to every open partition of topic on this shard. */
void part_set_topic_config(part_shard_t *ps, const char *topic, const plog_config_t *cfg);

int part_count(const part_shard_t *ps);

/** Call fn for every open partition of this shard. @thread the shard's loop */
void part_foreach(part_shard_t *ps,
                  void (*fn)(void *arg, const char *topic, int32_t partition, plog_t *log),
                  void *arg);

/** The shard's log completion channel (to register plog_shard_on_sealed). */
plog_shard_t *part_plog_shard(part_shard_t *ps);

typedef void (*part_closed_cb)(void *arg);
/** Stop the tick timer, close every log (final fdatasync), free the registry;
 * cb fires on the loop when all is closed. */
void part_shard_close(part_shard_t *ps, part_closed_cb cb, void *arg);

/** Wall-clock milliseconds (the time base of segment.ms and retention.ms). */
int64_t part_now_ms(void);

#endif
