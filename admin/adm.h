/* adm.h - the admin HTTP API: health, cluster and partition state, config,
 * storage, and Prometheus metrics (GET /metrics), on strata.admin.listener.
 * Data path: operators, monitoring and the `strata` CLI speak HTTP/1.1 to
 * this server, which runs on a loop that is not a shard's (stratad's main
 * loop). Questions about partitions are posted to the owning shards
 * (rt_post) and the answers gathered back here; no shard ever waits on this
 * server, and this server never touches a shard's data itself.
 * See docs/admin-api.md for the endpoints and their fields. */
#ifndef ADM_H
#define ADM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/cfg.h"
#include "core/meta.h"
#include "core/rt.h"
#include "core/st_err.h"
#include "index/idx.h"
#include "kafka/kh.h"

typedef struct adm_server adm_server_t;

typedef struct {
    uv_loop_t *loop;  /* borrowed: the loop the server runs on (not a shard's) */
    rt_t *rt;         /* borrowed: the shards, to ask about partitions */
    meta_t *meta;     /* borrowed: topics */
    const cfg_t *cfg; /* borrowed: the running configuration (read only) */
    /* borrowed: node id, cluster id, listeners; its _Atomic fields (message.max.bytes,
     * num.partitions, auto.create.topics.enable, log defaults) change live on PUT
     * /v1/cluster/config */
    kh_ctx_t *kctx;
    idx_t
        *idx; /* borrowed: the remote index (POST /v1/storage/recover, remote bytes); NULL = none */
    /* borrowed: [shard] the shard's tiered storage or NULL, read only on that shard's
     * loop (upload and hydration state); NULL = no tiering */
    struct tier_shard *const *tiers;
    /* Is remote storage on for a topic? Called on shards. NULL = never. */
    bool (*is_remote)(void *arg, const char *topic);
    void *is_remote_arg;
    /* borrowed: strata.admin.tls.enabled: serve https with this context
     * (kafka/kh_tls.h, reloaded by stratad); NULL = plain http */
    struct kh_tls *tls;
} adm_opts_t;

/** Bind strata.admin.listener and start serving on opts->loop. Every
 * borrowed pointer of opts must outlive the server.
 * @return 0 or an error (errbuf names the address). @thread opts->loop's */
ST_MUST_CHECK int
adm_server_new(const adm_opts_t *opts, adm_server_t **out, char *errbuf, size_t errbuf_len);

/** Mark the broker ready (every shard started): /v1/status/ready answers 200. */
void adm_server_set_ready(adm_server_t *s, bool is_ready);

/** Stop listening and close every connection; the loop's handles are gone
 * after the next loop turns. Call before rt_stop(). @thread the server's loop */
void adm_server_close(adm_server_t *s);

/** Free the server after adm_server_close() and after every shard thread was
 * joined (answers from shards may still arrive until then). NULL is a no-op. */
void adm_server_free(adm_server_t *s);

/** Apply the overrides persisted by PUT /v1/cluster/config
 * (DIR/cluster_config.yaml) to cfg, except keys set by the environment or the
 * command line, which take precedence. A missing file is not an error.
 * @return 0 or ST_E_CONFIG (errbuf says why). @blocking yes: call at start-up */
ST_MUST_CHECK int adm_config_load(cfg_t *cfg, const char *dir, char *errbuf, size_t errbuf_len);

#endif
