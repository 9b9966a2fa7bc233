/* stratad.c - the broker process: configuration, data directory lock, shards,
 * partition recovery, signals and graceful shutdown.
 * Data path: this file wires the modules; it handles no requests itself.
 * Start-up: config (defaults < --config YAML < STRATA_* env < flags) ->
 * exclusive lock on log.dir -> flusher thread -> one shard per core, each
 * recovering the partitions it owns -> "started" line.
 * Shutdown (SIGTERM/SIGINT): every shard closes its partitions (final
 * fdatasync of each log), the flusher drains, the lock is released. */
#include "admin/adm.h"
#include "core/cfg.h"
#include "core/meta.h"
#include "core/part.h"
#include "core/plog.h"
#include "core/rt.h"
#include "core/st_alloc.h"
#include "core/st_disk.h"
#include "core/st_fs.h"
#include "core/st_listen.h"
#include "core/st_log.h"
#include "core/st_metrics.h"
#include "core/st_pool.h"
#include "core/st_sched.h"
#include "core/st_scram.h"
#include "index/idx.h"
#include "kafka/grp.h"
#include "kafka/kh.h"
#include "kafka/kh_tls.h"
#include "tiering/tier.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    cfg_t *cfg;
    plog_env_t *env;
    rt_t *rt;
    meta_t *meta;
    idx_t *idx;           /* the remote index (log.dir/remote-index.db) */
    tier_shard_t **tiers; /* per shard: the uploader */
    st_pool_t *hyd_pool;  /* strata.hydration.threads: replays' chunk work (NULL = libuv's) */
    st_pool_t *up_pool;   /* strata.upload.threads: uploads' compression (NULL = libuv's) */
    part_shard_t **parts; /* per shard: its partitions (set at start, cleared at close) */
    kh_ctx_t kctx;
    acl_conf_t acl;    /* authorization settings; kctx.acl points here when on */
    adm_server_t *adm; /* admin HTTP API, on main_loop */
    st_disk_t *disk;   /* free-space watch of log.dir, on main_loop */
    part_opts_t popts;
    uv_loop_t *main_loop;
    uv_async_t fatal; /* a shard failed to start: stop everything */
    uv_signal_t sigint, sigterm;
    uv_signal_t sighup;   /* reload the TLS certificates */
    uv_timer_t tls_timer; /* strata.ssl.reload.interval.ms: reload changed files */
    kh_tls_t *admin_tls;  /* strata.admin.tls.enabled: the admin API's context */
    _Atomic int n_ready, n_failed, n_logs_open;
    int exit_code;
} broker_t;

static broker_t g_b;

static void usage(FILE *f)
{
    fprintf(f, "Usage: stratad [options]\n"
               "Start a Strata broker in the foreground.\n\n"
               "Options:\n"
               "  -c, --config FILE        YAML configuration file\n"
               "      --smp N              number of shards (default: one per core)\n"
               "      --log-dir DIR        data directory (log.dir, default ./data)\n"
               "      --listeners LIST     Kafka listeners NAME://HOST:PORT,... or HOST:PORT\n"
               "                           (default PLAINTEXT://127.0.0.1:9092)\n"
               "      --admin-listener ADDR  admin HTTP listener (default 127.0.0.1:9644)\n"
               "      --log-level LEVEL    error, warn, info, debug, trace\n"
               "  -X, --set KEY=VALUE      set any configuration key (repeatable)\n"
               "      --check-config       validate the configuration and exit\n"
               "      --help-config        print every configuration key as Markdown\n"
               "  -V, --version            print the version\n"
               "  -h, --help               this help\n\n"
               "Every key can also be set from the environment as STRATA_<KEY> with dots as\n"
               "underscores, e.g. STRATA_LOG_SEGMENT_BYTES=8MiB. Precedence: defaults <\n"
               "--config < environment < flags.\n"
               "STRATA_BOOTSTRAP_USER=NAME:PASSWORD[:MECHANISM] creates that SASL/SCRAM user at\n"
               "start when it has no credential yet (the first user of a secured broker).\n\n"
               "Examples:\n"
               "  stratad                                   # ./data, 127.0.0.1:9092\n"
               "  stratad --log-dir /var/lib/strata --smp 4\n"
               "  stratad -c strata.yaml -X log.segment.bytes=64MiB\n");
}

/* ---- Shards ---- */

static void topic_config(void *arg, const char *topic, plog_config_t *out)
{
    broker_t *b = arg;
    meta_snap_t *snap = meta_snap_get(b->meta);
    kh_topic_log_config(&b->kctx, meta_snap_find(snap, topic, strlen(topic)), out);
    meta_snap_put(snap);
}

/* Is remote storage on for a topic? Its remote.storage.enable, else the
 * broker's remote.log.storage.system.enable. */
static bool topic_is_remote(void *arg, const char *topic)
{
    broker_t *b = arg;
    bool on = cfg_bool(b->cfg, CFG_REMOTE_SYSTEM_ENABLE);
    meta_snap_t *snap = meta_snap_get(b->meta);
    const meta_topic_t *t = meta_snap_find(snap, topic, strlen(topic));
    const char *v = t ? meta_topic_config(t, "remote.storage.enable") : NULL;
    if (v)
        on = !strcmp(v, "true");
    meta_snap_put(snap);
    return on;
}

static void shard_serve(void *arg);

static void shard_failed(broker_t *b, const char *err, int rc)
{
    struct rlimit rl;
    if ((rc == -EMFILE || rc == UV_EMFILE || rc == -ENFILE) && getrlimit(RLIMIT_NOFILE, &rl) == 0)
        ST_ERROR("stratad",
                 "shard cannot start: %s (%s): every partition keeps a file open per segment "
                 "(its .log); the limit is %llu (ulimit -n): raise it, or the system's hard "
                 "limit",
                 err[0] ? err : "opening partitions", st_strerror(rc),
                 (unsigned long long)rl.rlim_cur);
    else
        ST_ERROR("stratad", "shard cannot start: %s (%s)", err[0] ? err : "start-up failed",
                 st_strerror(rc));
    b->n_failed++;
    uv_async_send(&b->fatal);
}

static void shard_start(rt_shard_t *sh, void *arg)
{
    broker_t *b = arg;
    part_shard_t *ps = NULL;
    char err[512] = "";
    int rc = part_shard_new(sh, b->env, &b->popts, &ps, err, sizeof(err));
    if (rc == 0) {
        tier_opts_t to = {.archive_url = cfg_str(b->cfg, CFG_ARCHIVE_URL),
                          .idx = b->idx,
                          .max_uploads = 2,
                          .max_upload_interval_ms = cfg_int(b->cfg, CFG_ARCHIVE_UPLOAD_INTERVAL_MS),
                          .is_remote = topic_is_remote,
                          .is_remote_arg = b,
                          .aborted = kh_tier_aborted,
                          .gc_interval_ms = cfg_int(b->cfg, CFG_RETENTION_CHECK_MS),
                          .is_orphan_scanner = rt_shard_id(sh) == 0,
                          .topic_config = topic_config,
                          .topic_config_arg = b,
                          .acomp_map_bytes = (size_t)b->popts.cleaner_buffer_bytes,
                          .acomp_interval_ms = b->popts.cleaner_backoff_ms,
                          .acomp_io_bytes_per_sec = b->popts.cleaner_io_bytes_per_sec,
                          .meta = b->meta,
                          .hydration_pool = b->hyd_pool,
                          .upload_pool = b->up_pool};
        rc = tier_shard_new(rt_shard_loop(sh), ps, &to, &b->tiers[rt_shard_id(sh)], err,
                            sizeof(err));
    }
    if (rc == 0) { /* hydration: each shard caches the chunks of the partitions it owns */
        char cdir[PATH_MAX];
        snprintf(cdir, sizeof(cdir), "%s/cache/%d", cfg_str(b->cfg, CFG_LOG_DIR), rt_shard_id(sh));
        tier_read_opts_t ro = {
            cdir, (uint64_t)cfg_int(b->cfg, CFG_CACHE_BYTES) / (uint64_t)rt_shard_count(b->rt), 0,
            0};
        if (tier_read_open(b->tiers[rt_shard_id(sh)], &ro, err, sizeof(err)) != 0)
            ST_WARN("stratad", "no chunk cache: %s", err);
    }
    if (rc != 0) {
        if (ps && !b->tiers[rt_shard_id(sh)])
            part_shard_close(ps, NULL, NULL); /* nothing else refers to it yet */
        shard_failed(b, err, rc);
        return;
    }
    b->parts[rt_shard_id(sh)] = ps;
    /* Serve Kafka only once the archive's offsets are known, or a read of an
     * archived offset right after a restart would look out of range. */
    tier_when_resumed(b->tiers[rt_shard_id(sh)], shard_serve, sh);
}

static void shard_serve(void *arg)
{
    rt_shard_t *sh = arg;
    broker_t *b = &g_b;
    part_shard_t *ps = b->parts[rt_shard_id(sh)];
    kh_shard_t *ks = NULL;
    char err[512] = "";
    if (!ps)
        return; /* stopped before it could serve */
    int rc = kh_shard_new(sh, &b->kctx, ps, &ks, err, sizeof(err));
    if (rc == 0)
        kh_shard_set_tier(ks, b->tiers[rt_shard_id(sh)]);
    rt_shard_set_data(sh, ks);
    if (rc != 0) {
        shard_failed(b, err, rc);
        return;
    }
    if (st_metrics_lag_start(rt_shard_loop(sh)) != 0)
        ST_WARN("stratad", "cannot start the loop lag timer");
    b->n_logs_open += part_count(ps);
    if (++b->n_ready == rt_shard_count(b->rt))
        uv_async_send(&b->fatal); /* wakes main to print the started line */
}

static void on_parts_closed(void *arg)
{
    rt_shard_t *sh = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    rt_shard_done(sh); /* the shard's queue closes; its loop ends */
    rt_shard_set_data(sh, NULL);
    kh_shard_free(ks); /* no message can reach it any more */
}

static void on_tier_closed(void *arg)
{
    rt_shard_t *sh = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    part_shard_t *ps = g_b.parts[rt_shard_id(sh)];
    g_b.parts[rt_shard_id(sh)] = NULL;
    if (ks)
        kh_shard_parts_closing(ks);
    if (ps)
        part_shard_close(ps, on_parts_closed, sh); /* final fdatasync */
    else
        on_parts_closed(sh);
}

static void close_tier(tier_shard_t *ts, void *arg)
{
    tier_shard_close(ts, on_tier_closed, arg); /* uploads stop before the logs close */
}

static void on_kafka_closed(void *arg)
{
    rt_shard_t *sh = arg;
    tier_shard_t *ts = g_b.tiers[rt_shard_id(sh)];
    g_b.tiers[rt_shard_id(sh)] = NULL;
    if (kh_shard_of(sh))
        kh_shard_set_tier(kh_shard_of(sh), NULL); /* late fetches answer without it */
    if (ts)
        tier_read_close(ts, close_tier, sh); /* downloads end, then the uploader */
    else
        on_tier_closed(sh);
}

static void shard_stop(rt_shard_t *sh, void *arg)
{
    (void)arg;
    st_metrics_lag_stop();
    kh_shard_t *ks = kh_shard_of(sh);
    if (ks)
        kh_shard_close(ks, on_kafka_closed, sh);
    else
        on_kafka_closed(sh); /* not serving yet (or failed): close what is open */
}

static const rt_hooks_t k_hooks = {shard_start, shard_stop, &g_b};

/* ---- Main loop: signals and start-up report ---- */

static void stop_all(broker_t *b)
{
    adm_server_close(b->adm);
    st_disk_close(b->disk);
    b->disk = NULL;
    uv_signal_stop(&b->sigint);
    uv_signal_stop(&b->sigterm);
    uv_close((uv_handle_t *)&b->sigint, NULL);
    uv_close((uv_handle_t *)&b->sigterm, NULL);
    uv_close((uv_handle_t *)&b->sighup, NULL);
    uv_close((uv_handle_t *)&b->tls_timer, NULL);
    uv_close((uv_handle_t *)&b->fatal, NULL);
    rt_stop(b->rt);
}

static void on_signal(uv_signal_t *s, int signum)
{
    broker_t *b = s->data;
    ST_INFO("stratad", "received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    stop_all(b);
}

static void on_fatal(uv_async_t *a)
{
    broker_t *b = a->data;
    if (b->n_failed > 0) {
        b->exit_code = 1;
        stop_all(b);
        return;
    }
    if (b->n_ready == rt_shard_count(b->rt)) {
        b->n_ready = -1000000; /* report once */
        adm_server_set_ready(b->adm, true);
        /* partitions: what the topics have (metadata); logs.open: the local logs the
         * shards recovered at start (a partition's log is made on its first use). */
        meta_snap_t *snap = meta_snap_get(b->meta);
        int64_t n = kh_partitions_total(snap), max = atomic_load(&b->kctx.max_partitions);
        meta_snap_put(snap);
        ST_INFO("stratad",
                "started version=%s node.id=%lld shards=%d partitions=%lld logs.open=%d "
                "log.dir=%s listeners=%s archive=%s",
                STRATA_VERSION, (long long)cfg_int(b->cfg, CFG_NODE_ID), rt_shard_count(b->rt),
                (long long)n, (int)b->n_logs_open, cfg_str(b->cfg, CFG_LOG_DIR),
                cfg_str(b->cfg, CFG_LISTENERS), cfg_str(b->cfg, CFG_ARCHIVE_URL));
        if (n > max)
            ST_WARN("stratad",
                    "the topics have %lld partitions, more than strata.max.partitions=%lld: new "
                    "topics and partitions are refused, and the open file limit may be too small "
                    "for them (a file per segment; raise ulimit -n)",
                    (long long)n, (long long)max);
    }
}

/* ---- TLS contexts: made at start, reloaded for certificate rotation ---- */

/* One TLS context per SSL/SASL_SSL listener (its ssl.* settings, with
 * listener.name.<name>.ssl.* overrides) and one for the admin API.
 * @return 0, or 2 after printing why. */
static int tls_setup(broker_t *b)
{
    char err[512], what[96];
    kh_tls_opts_t o;
    for (int i = 0; i < b->kctx.n_listeners; i++) {
        kh_listener_t *l = &b->kctx.listeners[i];
        if (!kh_sec_proto_is_tls(l->proto))
            continue;
        kh_tls_opts_from_cfg(b->cfg, l->name, &o, what, sizeof(what));
        if (kh_tls_new(&o, &l->tls, err, sizeof(err)) != 0) {
            fprintf(stderr, "stratad: %s\n", err);
            return 2;
        }
    }
    if (!cfg_bool(b->cfg, CFG_ADMIN_TLS_ENABLED))
        return 0;
    /* The admin API has its own files, or shares the listeners' keystore. */
    kh_tls_opts_from_cfg(b->cfg, "", &o, what, sizeof(what));
    snprintf(what, sizeof(what), "admin API (strata.admin.tls.*)");
    o.truststore_location = cfg_str(b->cfg, CFG_ADMIN_TLS_TRUSTSTORE_FILE);
    o.truststore_certs = NULL;
    o.client_auth = cfg_str(b->cfg, CFG_ADMIN_TLS_CLIENT_AUTH);
    if (*cfg_str(b->cfg, CFG_ADMIN_TLS_CERT_FILE)) {
        o.keystore_type = "PEM";
        o.keystore_location = o.keystore_chain = o.keystore_key = NULL;
        o.cert_file = cfg_str(b->cfg, CFG_ADMIN_TLS_CERT_FILE);
        o.key_file = cfg_str(b->cfg, CFG_ADMIN_TLS_KEY_FILE);
    }
    if (kh_tls_new(&o, &b->admin_tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "stratad: %s\n", err);
        return 2;
    }
    return 0;
}

static void tls_reload_one(kh_tls_t *t, const char *name, bool only_changed)
{
    if (!t || (only_changed && !kh_tls_files_changed(t)))
        return;
    char err[512];
    if (kh_tls_reload(t, err, sizeof(err)) != 0)
        ST_ERROR("stratad", "TLS reload failed, the previous certificates stay in use: %s", err);
    else
        ST_INFO("stratad", "TLS certificates reloaded for %s generation=%d", name,
                kh_tls_generation(t));
}

static void tls_reload_all(broker_t *b, bool only_changed)
{
    for (int i = 0; i < b->kctx.n_listeners; i++)
        tls_reload_one(b->kctx.listeners[i].tls, b->kctx.listeners[i].name, only_changed);
    tls_reload_one(b->admin_tls, "admin API", only_changed);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    ST_INFO("stratad", "received SIGHUP, reloading the TLS certificates");
    tls_reload_all(s->data, false);
}

static void on_tls_tick(uv_timer_t *t)
{
    tls_reload_all(t->data, true);
}

static void tls_free_all(broker_t *b)
{
    for (int i = 0; i < b->kctx.n_listeners; i++) {
        kh_tls_free(b->kctx.listeners[i].tls);
        b->kctx.listeners[i].tls = NULL;
    }
    kh_tls_free(b->admin_tls);
    b->admin_tls = NULL;
}

/* ---- Data directory ---- */

/* Exclusive lock held for the process lifetime (released by the kernel on
 * exit, even after kill -9). */
/* Each shard binds every Kafka listener with SO_REUSEPORT, which would also
 * let a second broker of the same user share a port with this one (the kernel
 * then splits connections between two unrelated brokers). So before any of
 * ours exists, bind each port once without it: a socket listening there, ours
 * or another program's, makes that fail. Returns 0, or 1 with a message. */
static int listeners_free(const kh_ctx_t *k)
{
    for (int i = 0; i < k->n_listeners; i++) {
        const kh_listener_t *l = &k->listeners[i];
        if (l->port == 0)
            continue;
        struct sockaddr_storage sa;
        if (st_listen_addr(l->host, l->port, &sa) != 0)
            continue; /* the listener's own set-up reports a bad address */
        socklen_t len =
            sa.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, err = 0;
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
                        bind(fd, (struct sockaddr *)&sa, len) != 0))
            err = errno;
        if (fd >= 0)
            close(fd);
        if (err == EADDRINUSE) {
            fprintf(stderr,
                    "stratad: listener %s %s:%d: the address is already in use by another "
                    "process (another broker?); choose other ports with --listeners\n",
                    l->name, l->host, l->port);
            return 1;
        }
    }
    return 0;
}

static int lock_data_dir(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "stratad: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "?";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 1] = 0;
        pid[strcspn(pid, "\n")] = 0;
        fprintf(stderr,
                "stratad: data directory %s is in use by another stratad (pid %s); stop it or "
                "choose another --log-dir\n",
                dir, pid);
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        ST_WARN("stratad", "cannot write pid to %s", path);
    return fd;
}

/* The cluster id: made once (22 characters of base64url, as Kafka's) and kept
 * in log.dir/cluster.id. */
static int cluster_id(const char *dir, char *out, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cluster.id", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        int ok = fgets(out, (int)len, f) != NULL;
        fclose(f);
        out[strcspn(out, "\n")] = 0;
        if (ok && *out)
            return 0;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char rnd[22];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    for (int i = 0; i < 22 && (size_t)i + 1 < len; i++)
        out[i] = b64[rnd[i] & 63];
    out[22] = 0;
    f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", out) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    return st_fsync_parent(path) == 0 ? 0 : -1; /* the new file's entry */
}

static int kafka_context(broker_t *b, const char *dir)
{
    kh_ctx_t *k = &b->kctx;
    k->meta = b->meta;
    k->cfg = b->cfg;
    k->node_id = (int32_t)cfg_int(b->cfg, CFG_NODE_ID);
    if (cluster_id(dir, k->cluster_id, sizeof(k->cluster_id)) != 0) {
        fprintf(stderr, "stratad: cannot create %s/cluster.id: %s\n", dir, strerror(errno));
        return 1;
    }
    /* DescribeLogDirs names the directory by its absolute path */
    char abs[PATH_MAX];
    snprintf(k->log_dir, sizeof(k->log_dir), "%s", realpath(dir, abs) ? abs : dir);
    k->request_max_bytes = cfg_int(b->cfg, CFG_REQUEST_MAX_BYTES);
    k->message_max_bytes = cfg_int(b->cfg, CFG_MESSAGE_MAX_BYTES);
    k->fetch_max_bytes = cfg_int(b->cfg, CFG_FETCH_MAX_BYTES);
    k->fetch_sendfile = cfg_bool(b->cfg, CFG_FETCH_SENDFILE);
    k->socket_send_buffer = (int32_t)cfg_int(b->cfg, CFG_SOCKET_SEND_BUFFER);
    k->idle_ms = cfg_int(b->cfg, CFG_IDLE_MS);
    k->ssl_handshake_timeout_ms = cfg_int(b->cfg, CFG_SSL_HANDSHAKE_TIMEOUT_MS);
    k->request_read_timeout_ms = cfg_int(b->cfg, CFG_REQUEST_READ_TIMEOUT_MS);
    k->limits = kh_limits_new(cfg_int(b->cfg, CFG_MAX_CONNECTIONS),
                              cfg_int(b->cfg, CFG_MAX_CONNECTIONS_PER_IP),
                              cfg_int(b->cfg, CFG_QUEUED_MAX_REQUEST_BYTES));
    if (!k->limits) {
        fprintf(stderr, "stratad: out of memory\n");
        return 1;
    }
    k->num_partitions = (int32_t)cfg_int(b->cfg, CFG_NUM_PARTITIONS);
    k->max_partitions = cfg_int(b->cfg, CFG_MAX_PARTITIONS);
    k->auto_create = cfg_bool(b->cfg, CFG_AUTO_CREATE);
    k->offsets_retention_ms = cfg_int(b->cfg, CFG_OFFSETS_RETENTION_MIN) * 60000;
    k->group_min_session_ms = (int32_t)cfg_int(b->cfg, CFG_GROUP_MIN_SESSION_MS);
    k->group_max_session_ms = (int32_t)cfg_int(b->cfg, CFG_GROUP_MAX_SESSION_MS);
    k->group_initial_delay_ms = (int32_t)cfg_int(b->cfg, CFG_GROUP_INITIAL_DELAY_MS);
    k->group_cons_session_ms = (int32_t)cfg_int(b->cfg, CFG_GROUP_CONS_SESSION_MS);
    k->group_cons_hb_ms = (int32_t)cfg_int(b->cfg, CFG_GROUP_CONS_HB_MS);
    {
        /* group.consumer.assignors: uniform and/or range, comma-separated, first = default */
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", cfg_str(b->cfg, CFG_GROUP_CONS_ASSIGNORS));
        char *save = NULL;
        for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            int a = !strcmp(t, "uniform") ? GRP_ASSIGNOR_UNIFORM
                    : !strcmp(t, "range") ? GRP_ASSIGNOR_RANGE
                                          : 0;
            bool dup = false;
            for (int i = 0; i < k->n_group_cons_assignors; i++)
                dup |= k->group_cons_assignors[i] == a;
            if (!a) {
                fprintf(stderr,
                        "stratad: group.consumer.assignors: unknown assignor '%s' "
                        "(uniform, range)\n",
                        t);
                return 1;
            }
            if (!dup)
                k->group_cons_assignors[k->n_group_cons_assignors++] = a;
        }
        if (k->group_cons_session_ms <= k->group_cons_hb_ms) {
            fprintf(stderr, "stratad: group.consumer.heartbeat.interval.ms must be below "
                            "group.consumer.session.timeout.ms\n");
            return 1;
        }
    }
    k->txn_max_timeout_ms = (int32_t)cfg_int(b->cfg, CFG_TXN_MAX_TIMEOUT_MS);
    k->txn_check_interval_ms = (int32_t)cfg_int(b->cfg, CFG_TXN_CHECK_INTERVAL_MS);
    k->txn_id_expiration_ms = cfg_int(b->cfg, CFG_TXN_ID_EXPIRATION_MS);
    k->txn_snapshot_bytes = cfg_int(b->cfg, CFG_TXN_SNAPSHOT_BYTES);
    /* Authorization is on when asked for (Kafka's authorizer.class.name) or
     * when a listener authenticates its clients; the default single PLAINTEXT
     * listener has no authenticated principal, so ACLs there could only deny
     * User:ANONYMOUS (docs/ARCHITECTURE.md, "Authorization"). */
    const char *why = *cfg_str(b->cfg, CFG_AUTHORIZER) ? "authorizer.class.name is set" : NULL;
    for (int i = 0; !why && i < k->n_listeners; i++) {
        const kh_listener_t *l = &k->listeners[i];
        kh_tls_opts_t o;
        char what[96];
        if (l->proto == KH_SEC_SASL_PLAINTEXT || l->proto == KH_SEC_SASL_SSL)
            why = "a listener authenticates with SASL";
        if (l->proto == KH_SEC_SSL) {
            kh_tls_opts_from_cfg(b->cfg, l->name, &o, what, sizeof(what));
            if (o.client_auth &&
                (!strcmp(o.client_auth, "required") || !strcmp(o.client_auth, "requested")))
                why = "a listener authenticates with client certificates (mTLS)";
        }
    }
    if (why) {
        if (acl_conf_init(&b->acl, cfg_str(b->cfg, CFG_SUPER_USERS),
                          cfg_bool(b->cfg, CFG_ALLOW_NO_ACL)) != 0)
            return 1;
        k->acl = &b->acl;
        ST_INFO("stratad",
                "ACL authorization on (%s): %d super users, allow.everyone.if.no.acl.found=%s", why,
                b->acl.n_super_users, b->acl.allow_if_no_acl ? "true" : "false");
    }
    k->reauth_ms = cfg_int(b->cfg, CFG_REAUTH_MS);
    return 0;
}

/* sasl.enabled.mechanisms of each SASL listener (listener.name.<l>.sasl.enabled.mechanisms
 * overrides it, as in Kafka). @return 0 or 2 (the reason went to stderr). */
static int sasl_mechanisms(broker_t *b)
{
    for (int i = 0; i < b->kctx.n_listeners; i++) {
        kh_listener_t *l = &b->kctx.listeners[i];
        char err[256];
        const char *v = cfg_listener_str(b->cfg, l->name, CFG_SASL_MECHANISMS);
        if (kh_sec_proto_is_sasl(l->proto) &&
            kh_sasl_parse_mechanisms(v, &l->sasl_mechs, err, sizeof(err)) != 0) {
            fprintf(stderr, "stratad: listener %s: %s\n", l->name, err);
            return 2;
        }
    }
    return 0;
}

/* STRATA_BOOTSTRAP_USER=NAME:PASSWORD[:MECHANISM] creates the first SCRAM
 * user (both mechanisms unless one is named) when it has no credential yet,
 * so a broker with SASL listeners and an authenticated admin API can be
 * reached at all. An environment variable, not a config key: the password
 * never shows in /v1/cluster/config, DescribeConfigs or the log. */
static int bootstrap_user(broker_t *b)
{
    const char *v = getenv("STRATA_BOOTSTRAP_USER");
    if (!v || !*v)
        return 0;
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", v);
    char *pw = strchr(buf, ':');
    if (!pw || pw == buf || !pw[1]) {
        fprintf(stderr, "stratad: STRATA_BOOTSTRAP_USER must be NAME:PASSWORD[:MECHANISM]\n");
        return 1;
    }
    *pw++ = 0;
    char *mech_name = strrchr(pw, ':');
    int only = 0;
    if (mech_name && (only = st_scram_mech_of(mech_name + 1, strlen(mech_name + 1))) != 0)
        *mech_name = 0;
    meta_users_t *u = meta_users_get(b->meta);
    bool exists = meta_users_find(u, buf, strlen(buf), ST_SCRAM_SHA_256) ||
                  meta_users_find(u, buf, strlen(buf), ST_SCRAM_SHA_512);
    meta_users_put(u);
    int rc = 0;
    if (!exists) {
        meta_scram_change_t ch[2];
        int n = 0;
        for (int m = ST_SCRAM_SHA_256; m <= ST_SCRAM_SHA_512 && rc == 0; m++) {
            if (only && m != only)
                continue;
            memset(&ch[n], 0, sizeof(ch[n]));
            rc = meta_scram_cred_make(m, pw, strlen(pw), ST_SCRAM_MIN_ITERATIONS, &ch[n].cred);
            ch[n++].cred.name = buf;
        }
        if (rc == 0)
            rc = meta_users_alter_now(b->meta, ch, n);
        memset(ch, 0, sizeof(ch));
        if (rc == 0)
            ST_INFO("stratad", "created the bootstrap SCRAM user '%s'", buf);
    }
    memset(buf, 0, sizeof(buf));
    if (rc != 0)
        fprintf(stderr, "stratad: cannot create the bootstrap user: %s\n", st_strerror(rc));
    return rc != 0;
}

/* ---- Recovery from the archive ---- */

static void on_restored(void *arg, int status)
{
    int *done = arg;
    *done = status == 0 ? 1 : -1;
}

/* The data directory lost its remote index (new or wiped): if the archive
 * holds segment objects, rebuild the index from them, recreate the topics
 * and make each missing partition log start after its last archived offset
 * (tier_recover_restore). Runs before the shards start. An archive that
 * cannot be listed stops the start: new records would otherwise reuse
 * archived offsets and overwrite their objects.
 * @return 0, or 1 (the reason is printed). */
static int restore_from_archive(broker_t *b, const char *dir)
{
    tier_recover_result_t res;
    char err[512] = "";
    const char *url = cfg_str(b->cfg, CFG_ARCHIVE_URL);
    int rc = tier_recover_blocking(url, b->idx, true, &res, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr,
                "stratad: the remote index is empty and the archive %s cannot be checked for "
                "data to recover: %s. Not starting, so that new records cannot overwrite "
                "archived ones; fix the object store (endpoint, credentials) and start again.\n",
                url, err);
        return 1;
    }
    uv_loop_t loop;
    if (res.was_not_empty || (res.n_parts == 0 && res.n_topics == 0) || uv_loop_init(&loop) != 0) {
        tier_recover_result_fini(&res);
        return 0;
    }
    int64_t objects = res.objects, failed = res.failed;
    size_t n_parts = res.n_parts, n_topics = res.n_topics;
    int done = 0;
    if (tier_recover_restore(&loop, b->meta, dir, &res, on_restored, &done) != 0)
        done = -1;
    while (done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        ST_WARN("stratad", "recovery: a handle of the temporary loop is still open");
    ST_INFO("stratad",
            "recovered from the archive: objects=%lld partitions=%zu topics=%zu failed=%lld "
            "restore=%s",
            (long long)objects, n_parts, n_topics, (long long)failed, done > 0 ? "ok" : "failed");
    tier_recover_result_fini(&res);
    return 0;
}

/* ---- Configuration ---- */

enum {
    OPT_SMP = 256,
    OPT_LOG_DIR,
    OPT_LISTENERS,
    OPT_ADMIN,
    OPT_LOG_LEVEL,
    OPT_CHECK,
    OPT_HELPCFG
};

static int load_config(int argc, char **argv, cfg_t *c, bool *check_only)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"smp", required_argument, NULL, OPT_SMP},
        {"log-dir", required_argument, NULL, OPT_LOG_DIR},
        {"listeners", required_argument, NULL, OPT_LISTENERS},
        {"admin-listener", required_argument, NULL, OPT_ADMIN},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"set", required_argument, NULL, 'X'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"help-config", no_argument, NULL, OPT_HELPCFG},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL;
    int o;
    /* Pass 1: --config, help, version (flags are applied after the file and env). */
    while ((o = getopt_long(argc, argv, "c:X:Vh", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config_file = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("stratad %s\n", STRATA_VERSION);
            exit(0);
        case OPT_HELPCFG:
            cfg_write_docs(1);
            exit(0);
        case OPT_CHECK:
            *check_only = true;
            break;
        case '?':
            usage(stderr);
            return 2;
        default:
            break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "stratad: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    char err[512];
    if (config_file && cfg_load_yaml(c, config_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "stratad: %s\n", err);
        return 2;
    }
    if (cfg_load_env(c, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "stratad: %s\n", err);
        return 2;
    }
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:X:Vh", opts, NULL)) != -1) {
        const char *key = NULL, *val = optarg;
        char kv[1024];
        switch (o) {
        case OPT_SMP:
            key = "strata.smp";
            break;
        case OPT_LOG_DIR:
            key = "log.dir";
            break;
        case OPT_LISTENERS:
            key = "listeners";
            break;
        case OPT_ADMIN:
            key = "strata.admin.listener";
            break;
        case OPT_LOG_LEVEL:
            key = "strata.log.level";
            break;
        case 'X': {
            snprintf(kv, sizeof(kv), "%s", optarg);
            char *eq = strchr(kv, '=');
            if (!eq) {
                fprintf(stderr, "stratad: --set expects KEY=VALUE, got '%s'\n", optarg);
                return 2;
            }
            *eq = 0;
            key = kv;
            val = eq + 1;
            break;
        }
        default:
            break;
        }
        if (key && cfg_set(c, key, val, "command line", err, sizeof(err)) != 0) {
            fprintf(stderr, "stratad: %s\n", err);
            return 2;
        }
    }
    return 0;
}

/* Partitions keep files open (one per segment): take the whole hard limit of
 * descriptors, as Kafka's and Redpanda's installs do with their ulimits. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        ST_WARN("stratad", "cannot raise the open files limit to %llu: %s",
                (unsigned long long)want, strerror(errno));
}

/* strata.max.partitions 0 (its default): what the open file limit allows,
 * set with origin "default" (so the admin API's remove comes back to it). */
static int derive_max_partitions(cfg_t *cfg)
{
    if (cfg_int(cfg, CFG_MAX_PARTITIONS) != 0)
        return 0;
    uint64_t nofile;
    int64_t n = kh_max_partitions_derived(&nofile);
    char text[32];
    snprintf(text, sizeof(text), "%lld", (long long)n);
    if (cfg_set(cfg, "strata.max.partitions", text, "default", NULL, 0) != 0)
        return 1;
    ST_INFO("stratad",
            "strata.max.partitions=%lld, derived from the open file limit %llu (%d files counted "
            "per partition; set strata.max.partitions or raise ulimit -n to change it)",
            (long long)n, (unsigned long long)nofile, KH_FDS_PER_PARTITION);
    return 0;
}

int main(int argc, char **argv)
{
    broker_t *b = &g_b;
    /* Before any thread allocates: replay buffers are reused, not faulted in again. */
    (void)st_alloc_keep_freed();
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (cfg_new(&b->cfg) != 0)
        return 1;
    bool check_only = false;
    int rc = load_config(argc, argv, b->cfg, &check_only);
    if (rc != 0)
        return rc;
    char aerr[512]; /* overrides persisted by the admin API (PUT /v1/cluster/config) */
    if (adm_config_load(b->cfg, cfg_str(b->cfg, CFG_LOG_DIR), aerr, sizeof(aerr)) != 0) {
        fprintf(stderr, "stratad: %s\n", aerr);
        return 2;
    }
    st_log_level_t level;
    if (st_log_parse_level(cfg_str(b->cfg, CFG_LOG_LEVEL), &level) == 0)
        st_log_set_level(level);
    const char *dir = cfg_str(b->cfg, CFG_LOG_DIR);
    if (!*cfg_str(b->cfg, CFG_ARCHIVE_URL)) {
        char url[PATH_MAX + 16];
        snprintf(url, sizeof(url), "file://%s/archive", dir);
        if (cfg_set(b->cfg, "strata.archive.url", url, "default", NULL, 0) != 0)
            return 1;
    }
    if (kh_listeners_from_cfg(b->cfg, b->kctx.listeners, &b->kctx.n_listeners, aerr,
                              sizeof(aerr)) != 0) {
        fprintf(stderr, "stratad: %s\n", aerr);
        return 2;
    }
    if ((rc = sasl_mechanisms(b)) != 0)
        return rc;
    if ((rc = tls_setup(b)) != 0)
        return rc;
    if (check_only) {
        tls_free_all(b);
        printf("stratad: configuration is valid\n");
        return 0;
    }
    if ((rc = derive_max_partitions(b->cfg)) != 0)
        return rc;
    if ((rc = st_mkdirs(dir)) != 0) {
        fprintf(stderr, "stratad: cannot create data directory %s: %s\n", dir, strerror(-rc));
        return 1;
    }
    int lock_fd = lock_data_dir(dir);
    if (lock_fd < 0)
        return 1;
    if (listeners_free(&b->kctx) != 0)
        return 1;
    const char *url = cfg_str(b->cfg, CFG_ARCHIVE_URL);
    if (!strncmp(url, "file://", 7) && (rc = st_mkdirs(url + 7)) != 0) {
        fprintf(stderr, "stratad: cannot create archive directory %s: %s\n", url + 7,
                strerror(-rc));
        return 1;
    }

    char err[512];
    if ((rc = meta_open(dir, &b->meta, err, sizeof(err))) != 0) {
        fprintf(stderr, "stratad: %s\n", err);
        return 1;
    }
    if ((rc = goffs_open(dir, &b->kctx.goffs, err, sizeof(err))) != 0) {
        fprintf(stderr, "stratad: %s\n", err);
        return 1;
    }
    if ((rc = kafka_context(b, dir)) != 0)
        return rc;
    if (bootstrap_user(b) != 0)
        return 1;
    char idx_path[PATH_MAX];
    snprintf(idx_path, sizeof(idx_path), "%s/remote-index.db", dir);
    if ((rc = idx_open(idx_path, &b->idx, err, sizeof(err))) != 0) {
        fprintf(stderr, "stratad: %s\n", err);
        return 1;
    }
    if (restore_from_archive(b, dir) != 0)
        return 1;
    plog_config_default(&b->popts.log_cfg);
    b->popts.data_dir = dir;
    b->popts.log_cfg.segment_bytes = cfg_int(b->cfg, CFG_SEGMENT_BYTES);
    b->popts.log_cfg.segment_ms = cfg_int(b->cfg, CFG_ROLL_MS);
    b->popts.log_cfg.retention_ms = cfg_int(b->cfg, CFG_RETENTION_MS);
    b->popts.log_cfg.retention_bytes = cfg_int(b->cfg, CFG_RETENTION_BYTES);
    b->popts.log_cfg.index_interval_bytes = (int32_t)cfg_int(b->cfg, CFG_INDEX_INTERVAL);
    b->popts.log_cfg.write_caching = cfg_bool(b->cfg, CFG_WRITE_CACHING);
    b->popts.log_cfg.flush_ms = cfg_int(b->cfg, CFG_FLUSH_MS);
    b->popts.log_cfg.flush_bytes = cfg_int(b->cfg, CFG_FLUSH_BYTES);
    b->popts.log_cfg.flush_messages = cfg_int(b->cfg, CFG_FLUSH_MESSAGES);
    if (plog_cleanup_policy_parse(cfg_str(b->cfg, CFG_CLEANUP_POLICY),
                                  &b->popts.log_cfg.cleanup_delete,
                                  &b->popts.log_cfg.cleanup_compact) != 0 ||
        plog_ratio_parse(cfg_str(b->cfg, CFG_CLEANER_MIN_RATIO),
                         &b->popts.log_cfg.min_cleanable_ratio) != 0)
        return 1; /* validated by cfg_set: cannot happen */
    b->popts.log_cfg.min_compaction_lag_ms = cfg_int(b->cfg, CFG_CLEANER_MIN_LAG_MS);
    b->popts.log_cfg.max_compaction_lag_ms = cfg_int(b->cfg, CFG_CLEANER_MAX_LAG_MS);
    b->popts.log_cfg.delete_retention_ms = cfg_int(b->cfg, CFG_CLEANER_DELETE_RETENTION_MS);
    b->popts.cleaner_buffer_bytes = cfg_int(b->cfg, CFG_CLEANER_DEDUPE_BUFFER);
    b->popts.cleaner_io_bytes_per_sec = cfg_int(b->cfg, CFG_CLEANER_IO_MAX_BPS);
    b->popts.cleaner_backoff_ms = cfg_int(b->cfg, CFG_CLEANER_BACKOFF_MS);
    int64_t tick = cfg_int(b->cfg, CFG_RETENTION_CHECK_MS);
    b->popts.tick_interval_ms = tick < 5000 ? tick : 5000; /* segment.ms rolls of idle logs */
    b->popts.topic_config = topic_config;
    b->popts.topic_config_arg = b;
    b->popts.log_cfg.remote_enabled = cfg_bool(b->cfg, CFG_REMOTE_SYSTEM_ENABLE);
    kh_ctx_set_log_defaults(&b->kctx, &b->popts.log_cfg); /* PUT /v1/cluster/config swaps it */

    int smp = (int)cfg_int(b->cfg, CFG_SMP);
    if (smp == 0)
        smp = rt_cpu_count();
    /* Kafka's dedupe buffer is the total of every cleaner thread: one per shard. */
    b->popts.cleaner_buffer_bytes /= smp > 0 ? smp : 1;
    /* Before the shard loops and the log's writer and flusher start: each asks for it. */
    st_sched_set_slice_us(cfg_int(b->cfg, CFG_SCHED_SLICE_US));
    if ((rc = plog_env_new(&b->env)) != 0 ||
        (rc = rt_new(smp, (int)cfg_int(b->cfg, CFG_QUEUE_CAPACITY), &b->rt)) != 0) {
        b->kctx.rt = NULL;
        fprintf(stderr, "stratad: cannot start: %s\n", st_strerror(rc));
        return 1;
    }
    b->kctx.rt = b->rt;
    int64_t hyd_threads = cfg_int(b->cfg, CFG_HYDRATION_THREADS);
    int64_t up_threads = cfg_int(b->cfg, CFG_UPLOAD_THREADS);
    st_pool_prio_t hyd_prio = {.nice = (int)cfg_int(b->cfg, CFG_HYDRATION_NICE),
                               .io_idle = cfg_bool(b->cfg, CFG_HYDRATION_IO_IDLE)};
    if ((hyd_threads > 0 &&
         (rc = st_pool_new_prio("hydrate", (int)hyd_threads, &hyd_prio, &b->hyd_pool)) != 0) ||
        (up_threads > 0 && (rc = st_pool_new("upload", (int)up_threads, &b->up_pool)) != 0)) {
        fprintf(stderr, "stratad: cannot start the worker pools: %s\n", st_strerror(rc));
        return 1;
    }
    b->tiers = calloc((size_t)smp, sizeof(*b->tiers));
    b->parts = calloc((size_t)smp, sizeof(*b->parts));
    if (!b->tiers || !b->parts)
        return 1;
    if ((rc = st_metrics_init(smp)) != 0) {
        fprintf(stderr, "stratad: cannot start: %s\n", st_strerror(rc));
        return 1;
    }
    b->main_loop = uv_default_loop();
    adm_opts_t aopts = {.loop = b->main_loop,
                        .rt = b->rt,
                        .meta = b->meta,
                        .cfg = b->cfg,
                        .kctx = &b->kctx,
                        .idx = b->idx,
                        .tiers = b->tiers,
                        .is_remote = topic_is_remote,
                        .is_remote_arg = b,
                        .tls = b->admin_tls};
    if ((rc = adm_server_new(&aopts, &b->adm, aerr, sizeof(aerr))) != 0) {
        fprintf(stderr, "stratad: %s\n", aerr);
        return 1;
    }
    st_disk_opts_t dopts = {dir, cfg_int(b->cfg, CFG_DISK_ALERT_BYTES),
                            cfg_int(b->cfg, CFG_DISK_ALERT_PERCENT), 0};
    if ((rc = st_disk_watch(b->main_loop, &dopts, &b->disk)) != 0)
        ST_WARN("stratad", "cannot watch the free disk space: %s", st_strerror(rc));
    uv_async_init(b->main_loop, &b->fatal, on_fatal);
    b->fatal.data = b;
    uv_signal_init(b->main_loop, &b->sigint);
    uv_signal_init(b->main_loop, &b->sigterm);
    b->sigint.data = b->sigterm.data = b;
    uv_signal_start(&b->sigint, on_signal, SIGINT);
    uv_signal_start(&b->sigterm, on_signal, SIGTERM);
    uv_signal_init(b->main_loop, &b->sighup);
    b->sighup.data = b;
    uv_signal_start(&b->sighup, on_sighup, SIGHUP);
    uv_timer_init(b->main_loop, &b->tls_timer);
    b->tls_timer.data = b;
    int64_t every = cfg_int(b->cfg, CFG_SSL_RELOAD_INTERVAL_MS);
    if (every > 0)
        uv_timer_start(&b->tls_timer, on_tls_tick, (uint64_t)every, (uint64_t)every);
    ST_INFO("stratad", "starting version=%s shards=%d log.dir=%s", STRATA_VERSION, smp, dir);
    if ((rc = rt_start(b->rt, &k_hooks)) != 0) {
        fprintf(stderr, "stratad: cannot start shards: %s\n", st_strerror(rc));
        return 1;
    }
    uv_run(b->main_loop, UV_RUN_DEFAULT);
    rt_join_free(b->rt);
    st_pool_free(b->hyd_pool); /* after the shards: their ports are closed */
    st_pool_free(b->up_pool);
    adm_server_free(b->adm); /* after the shards: they may still have answered it */
    plog_env_free(b->env);   /* drains pending deletions */
    uv_loop_close(b->main_loop);
    idx_close(b->idx);
    free(b->tiers);
    free(b->parts);
    meta_close(b->meta);
    acl_conf_fini(&b->acl);
    goffs_close(b->kctx.goffs);
    tls_free_all(b);
    kh_limits_free(b->kctx.limits);
    ST_INFO("stratad", "stopped %s", b->exit_code ? "after a start-up failure" : "cleanly");
    st_metrics_fini();
    cfg_free(b->cfg);
    close(lock_fd);
    return b->exit_code;
}
