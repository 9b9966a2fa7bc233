/* kh_listen.c - the Kafka listeners of the configuration: names, security
 * protocols and advertised addresses.
 * Data path: stratad builds the listeners once at start (here) and attaches
 * a TLS context to the SSL/SASL_SSL ones -> every shard binds each listener
 * (kh_conn.c) -> each connection remembers its listener, so Metadata,
 * FindCoordinator and DescribeCluster answer with that listener's advertised
 * address, and SASL/ACL code can read the listener's security protocol.
 * Invariants: 1. names are distinct and upper case;
 *             2. every listener has a security protocol (its name, or the
 *                listener.security.protocol.map entry for a custom name). */
#include "core/cfg.h"
#include "kafka/kh.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *const k_proto_names[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"};

const char *kh_sec_proto_name(kh_sec_proto_t p)
{
    return (unsigned)p < 4 ? k_proto_names[p] : "?";
}

bool kh_sec_proto_is_tls(kh_sec_proto_t p)
{
    return p == KH_SEC_SSL || p == KH_SEC_SASL_SSL;
}

bool kh_sec_proto_is_sasl(kh_sec_proto_t p)
{
    return p == KH_SEC_SASL_PLAINTEXT || p == KH_SEC_SASL_SSL;
}

static int proto_parse(const char *s, size_t len, kh_sec_proto_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strlen(k_proto_names[i]) == len && !strncasecmp(k_proto_names[i], s, len)) {
            *out = (kh_sec_proto_t)i;
            return 0;
        }
    }
    return -1;
}

/* The protocol of listener name: its listener.security.protocol.map entry,
 * else the name itself when it is a protocol. */
static int proto_of(const char *map, const char *name, kh_sec_proto_t *out)
{
    size_t nl = strlen(name);
    for (const char *p = map; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon && (size_t)(colon - p) == nl && !strncasecmp(p, name, nl))
            return proto_parse(colon + 1, len - nl - 1, out);
        if (!e)
            break;
        p = e + 1;
    }
    return proto_parse(name, nl, out);
}

/* Apply advertised.listeners: NAME://HOST:PORT entries, or one bare
 * HOST:PORT meaning the first listener (the form before named listeners). */
static int
apply_advertised(const char *adv, kh_listener_t *ls, int n, char *errbuf, size_t errbuf_len)
{
    if (!*adv)
        return 0;
    bool bare = strstr(adv, "://") == NULL;
    for (const char *p = adv;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[64], host[256];
        int port;
        if (cfg_parse_listener(p, len, name, sizeof(name), host, sizeof(host), &port) != 0) {
            snprintf(errbuf, errbuf_len, "advertised.listeners: '%.*s' is not NAME://HOST:PORT",
                     (int)len, p);
            return ST_E_CONFIG;
        }
        kh_listener_t *l = NULL;
        for (int i = 0; i < n && !l; i++)
            if (bare || !strcmp(ls[i].name, name))
                l = &ls[i];
        if (!l) {
            snprintf(errbuf, errbuf_len,
                     "advertised.listeners: '%s' is not the name of a listener in listeners", name);
            return ST_E_CONFIG;
        }
        if (*host)
            snprintf(l->adv_host, sizeof(l->adv_host), "%s", host);
        l->adv_port = port;
        if (!e)
            return 0;
        p = e + 1;
    }
}

int kh_listeners_from_cfg(
    const struct cfg *cfg, kh_listener_t *out, int *n_out, char *errbuf, size_t errbuf_len)
{
    const char *list = cfg_str(cfg, CFG_LISTENERS);
    const char *map = cfg_str(cfg, CFG_LISTENER_PROTOCOL_MAP);
    int n = 0;
    for (const char *p = list;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n == KH_MAX_LISTENERS) {
            snprintf(errbuf, errbuf_len, "listeners: more than %d listeners", KH_MAX_LISTENERS);
            return ST_E_CONFIG;
        }
        kh_listener_t *l = &out[n];
        memset(l, 0, sizeof(*l));
        if (cfg_parse_listener(p, len, l->name, sizeof(l->name), l->host, sizeof(l->host),
                               &l->port) != 0) {
            snprintf(errbuf, errbuf_len, "listeners: '%.*s' is not NAME://HOST:PORT", (int)len, p);
            return ST_E_CONFIG;
        }
        if (proto_of(map, l->name, &l->proto) != 0) {
            snprintf(errbuf, errbuf_len,
                     "listeners: listener %s has no security protocol: name it PLAINTEXT, SSL, "
                     "SASL_PLAINTEXT or SASL_SSL, or map it in listener.security.protocol.map",
                     l->name);
            return ST_E_CONFIG;
        }
        for (int i = 0; i < n; i++) {
            if (!strcmp(out[i].name, l->name) || out[i].port == l->port) {
                snprintf(errbuf, errbuf_len, "listeners: %s and %s: %s", out[i].name, l->name,
                         out[i].port == l->port ? "same port" : "same name");
                return ST_E_CONFIG;
            }
        }
        if (!*l->host)
            snprintf(l->host, sizeof(l->host), "0.0.0.0");
        /* By default a listener advertises its own address; a wildcard bind
         * address means nothing to a client, so the host name stands in. */
        snprintf(l->adv_host, sizeof(l->adv_host), "%s", l->host);
        l->adv_port = l->port;
        if (!strcmp(l->adv_host, "0.0.0.0") || !strcmp(l->adv_host, "::"))
            gethostname(l->adv_host, sizeof(l->adv_host));
        n++;
        if (!e)
            break;
        p = e + 1;
    }
    int rc = apply_advertised(cfg_str(cfg, CFG_ADVERTISED_LISTENERS), out, n, errbuf, errbuf_len);
    if (rc != 0)
        return rc;
    *n_out = n;
    return 0;
}
