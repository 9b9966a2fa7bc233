/* cfg.c - configuration table, validation and sources (see cfg.h). */
#include "core/cfg.h"
#include "core/plog.h"
#include "core/st_log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

typedef struct {
    const char *name;
    cfg_type_t type;
    const char *def;
    int64_t min, max;
    bool reloadable;
    const char *doc;
} cfg_def_t;

static const cfg_def_t k_defs[CFG__COUNT] = {
#define CFG_DEF(id, name, type, def, min, max, reload, doc)                                        \
    {name, type, def, min, max, reload, doc},
    CFG_KEYS(CFG_DEF)
#undef CFG_DEF
};

static const char *const k_ignored[] = {CFG_IGNORED_KAFKA_KEYS};

/* A per-listener override: listener.name.<listener>.<key>, as Kafka. */
typedef struct cfg_lkv {
    struct cfg_lkv *next;
    char *listener; /* owned, as written (matched without case) */
    cfg_key_t k;
    char *value; /* owned */
} cfg_lkv_t;

struct cfg {
    int64_t ints[CFG__COUNT];
    char *strs[CFG__COUNT];    /* owned */
    char *origins[CFG__COUNT]; /* owned: where each value came from */
    cfg_lkv_t *lkvs;           /* owned list */
};

static int fail(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *buf, size_t len, const char *fmt, ...)
{
    if (buf && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return ST_E_CONFIG;
}

int cfg_lookup(const char *name, cfg_key_t *out)
{
    for (int i = 0; i < CFG__COUNT; i++) {
        if (strcmp(k_defs[i].name, name) == 0) {
            *out = (cfg_key_t)i;
            return 0;
        }
    }
    return ST_E_NOTFOUND;
}

const char *cfg_name(cfg_key_t k)
{
    return k_defs[k].name;
}

/* Integer with an optional binary size suffix. */
static int parse_int(const char *s, int64_t *out)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    int64_t mul = 1;
    if (*end) {
        char suf[8] = {0};
        size_t n = strlen(end);
        if (n >= sizeof(suf))
            return -1;
        for (size_t i = 0; i < n; i++)
            suf[i] = (char)tolower((unsigned char)end[i]);
        if (!strcmp(suf, "k") || !strcmp(suf, "kib") || !strcmp(suf, "kb"))
            mul = 1024;
        else if (!strcmp(suf, "m") || !strcmp(suf, "mib") || !strcmp(suf, "mb"))
            mul = 1024 * 1024;
        else if (!strcmp(suf, "g") || !strcmp(suf, "gib") || !strcmp(suf, "gb"))
            mul = 1024LL * 1024 * 1024;
        else
            return -1;
    }
    if (v > INT64_MAX / mul || v < INT64_MIN / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int cfg_parse_listener(
    const char *s, size_t len, char *name, size_t name_len, char *host, size_t host_len, int *port)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < len; i++) {
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            sep = s + i;
            break;
        }
    }
    size_t nl = sep ? (size_t)(sep - s) : 9;
    if (nl == 0 || nl >= name_len)
        return ST_E_INVAL;
    for (size_t i = 0; sep && i < nl; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return ST_E_INVAL;
    const char *src = sep ? s : "PLAINTEXT";
    for (size_t i = 0; i < nl; i++)
        name[i] = (char)toupper((unsigned char)src[i]);
    name[nl] = 0;
    if (sep) {
        len -= nl + 3;
        s = sep + 3;
    }
    char buf[300];
    if (len == 0 || len >= sizeof(buf))
        return ST_E_INVAL;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (sep && buf[0] == ':') { /* NAME://:PORT: every interface */
        char *end;
        long p = strtol(buf + 1, &end, 10);
        if (*end || end == buf + 1 || p < 0 || p > 65535 || host_len == 0)
            return ST_E_INVAL;
        host[0] = 0;
        *port = (int)p;
        return 0;
    }
    return cfg_parse_hostport(buf, host, host_len, port);
}

/* A comma-separated list of listeners with distinct names. */
static int check_listeners(const char *v)
{
    char names[16][64];
    int n = 0;
    for (const char *p = v;; p++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char host[256];
        int port;
        if (n == 16 ||
            cfg_parse_listener(p, len, names[n], sizeof(names[n]), host, sizeof(host), &port) != 0)
            return -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(names[i], names[n]))
                return -1;
        n++;
        if (!e)
            return 0;
        p = e;
    }
}

static bool is_protocol(const char *s, size_t len)
{
    static const char *const k[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"};
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
        if (strlen(k[i]) == len && !strncasecmp(k[i], s, len))
            return true;
    return false;
}

/* NAME:PROTOCOL[,NAME:PROTOCOL...] (may be empty). */
static int check_protocol_map(const char *v)
{
    if (!*v)
        return 0;
    for (const char *p = v;; p++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (!colon || colon == p || !is_protocol(colon + 1, len - (size_t)(colon - p) - 1))
            return -1;
        if (!e)
            return 0;
        p = e;
    }
}

/* listener.name.<listener>.<ssl.* or sasl.* key>: a string key of one listener. */
static int set_listener_value(cfg_t *c,
                              const char *key,
                              const char *value,
                              const char *origin,
                              char *errbuf,
                              size_t errbuf_len)
{
    const char *name = key + strlen("listener.name.");
    const char *dot = strchr(name, '.');
    cfg_key_t k;
    if (!dot || dot == name || cfg_lookup(dot + 1, &k) != 0 || k_defs[k].type != CFG_STR ||
        (strncmp(dot + 1, "ssl.", 4) != 0 && strncmp(dot + 1, "sasl.", 5) != 0))
        return fail(errbuf, errbuf_len,
                    "%s: unknown configuration key '%s' (listener.name.<listener>. takes ssl.* "
                    "and sasl.* keys)",
                    origin, key);
    cfg_lkv_t *e = NULL;
    for (cfg_lkv_t *x = c->lkvs; x && !e; x = x->next)
        if (x->k == k && strlen(x->listener) == (size_t)(dot - name) &&
            !strncasecmp(x->listener, name, (size_t)(dot - name)))
            e = x;
    char *v = strdup(value);
    if (!v)
        return ST_E_NOMEM;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e || !(e->listener = strndup(name, (size_t)(dot - name)))) {
            free(e);
            free(v);
            return ST_E_NOMEM;
        }
        e->k = k;
        e->next = c->lkvs;
        c->lkvs = e;
    }
    free(e->value);
    e->value = v;
    return 0;
}

const char *cfg_listener_str(const cfg_t *c, const char *listener, cfg_key_t k)
{
    for (const cfg_lkv_t *x = c->lkvs; x; x = x->next)
        if (x->k == k && !strcasecmp(x->listener, listener))
            return x->value;
    return cfg_str(c, k);
}

static int set_value(cfg_t *c,
                     const char *key,
                     const char *value,
                     const char *origin,
                     char *errbuf,
                     size_t errbuf_len)
{
    cfg_key_t k;
    if (!strncmp(key, "listener.name.", 14))
        return set_listener_value(c, key, value, origin, errbuf, errbuf_len);
    if (cfg_lookup(key, &k) != 0) {
        for (size_t i = 0; i < sizeof(k_ignored) / sizeof(k_ignored[0]); i++) {
            if (strcmp(key, k_ignored[i]) == 0) {
                ST_WARN("cfg", "ignoring Kafka key with no meaning in Strata key=%s origin=%s", key,
                        origin);
                return 0;
            }
        }
        return fail(errbuf, errbuf_len, "%s: unknown configuration key '%s'", origin, key);
    }
    const cfg_def_t *d = &k_defs[k];
    switch (d->type) {
    case CFG_INT: {
        int64_t v;
        if (parse_int(value, &v) != 0)
            return fail(errbuf, errbuf_len, "%s: %s: '%s' is not an integer", origin, key, value);
        if (v < d->min || v > d->max)
            return fail(errbuf, errbuf_len, "%s: %s: %lld is out of range [%lld, %lld]", origin,
                        key, (long long)v, (long long)d->min, (long long)d->max);
        c->ints[k] = v;
        return 0;
    }
    case CFG_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
            c->ints[k] = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
            c->ints[k] = 0;
        else
            return fail(errbuf, errbuf_len, "%s: %s: '%s' is not true or false", origin, key,
                        value);
        return 0;
    case CFG_STR:
        break;
    }
    /* Per-key checks for strings. */
    if (k == CFG_LOG_LEVEL) {
        st_log_level_t lv;
        if (st_log_parse_level(value, &lv) != 0)
            return fail(errbuf, errbuf_len,
                        "%s: %s: '%s' is not one of error, warn, info, debug, trace", origin, key,
                        value);
    } else if (k == CFG_ADMIN_LISTENER) {
        char host[256];
        int port;
        if (cfg_parse_hostport(value, host, sizeof(host), &port) != 0)
            return fail(errbuf, errbuf_len, "%s: %s: '%s' is not HOST:PORT", origin, key, value);
    } else if (k == CFG_LISTENERS || (k == CFG_ADVERTISED_LISTENERS && *value)) {
        if (check_listeners(value) != 0)
            return fail(errbuf, errbuf_len,
                        "%s: %s: '%s' is not HOST:PORT or a list of NAME://HOST:PORT", origin, key,
                        value);
    } else if (k == CFG_LISTENER_PROTOCOL_MAP && check_protocol_map(value) != 0) {
        return fail(errbuf, errbuf_len,
                    "%s: %s: '%s' is not a list of NAME:PROTOCOL (PLAINTEXT, SSL, "
                    "SASL_PLAINTEXT, SASL_SSL)",
                    origin, key, value);
    } else if (k == CFG_CLEANUP_POLICY && plog_cleanup_policy_parse(value, NULL, NULL) != 0) {
        return fail(errbuf, errbuf_len, "%s: %s: '%s' is not delete, compact or compact,delete",
                    origin, key, value);
    } else if (k == CFG_CLEANER_MIN_RATIO && plog_ratio_parse(value, NULL) != 0) {
        return fail(errbuf, errbuf_len, "%s: %s: '%s' is not a number between 0 and 1", origin, key,
                    value);
    } else if (k == CFG_LOG_DIR && !*value) {
        return fail(errbuf, errbuf_len, "%s: %s: must not be empty", origin, key);
    } else if (k == CFG_ARCHIVE_URL && *value && strncmp(value, "file://", 7) != 0 &&
               strncmp(value, "s3://", 5) != 0) {
        return fail(errbuf, errbuf_len, "%s: %s: '%s' must start with file:// or s3://", origin,
                    key, value);
    }
    char *dup = strdup(value);
    if (!dup)
        return ST_E_NOMEM;
    free(c->strs[k]);
    c->strs[k] = dup;
    return 0;
}

int cfg_set(cfg_t *c,
            const char *key,
            const char *value,
            const char *origin,
            char *errbuf,
            size_t errbuf_len)
{
    int rc = set_value(c, key, value, origin, errbuf, errbuf_len);
    cfg_key_t k;
    if (rc == 0 && cfg_lookup(key, &k) == 0) {
        char *dup = strdup(origin);
        if (!dup)
            return ST_E_NOMEM;
        free(c->origins[k]);
        c->origins[k] = dup;
    }
    return rc;
}

const char *cfg_origin(const cfg_t *c, cfg_key_t k)
{
    return c->origins[k] ? c->origins[k] : "default";
}

bool cfg_sensitive(cfg_key_t k)
{
    static const char *const names[] = {CFG_SENSITIVE_KEYS};
    const char *n = cfg_name(k);
    size_t len = strlen(n);
    if (len >= 9 && !strcmp(n + len - 9, ".password"))
        return true;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(n, names[i]))
            return true;
    return false;
}

bool cfg_reloadable(cfg_key_t k)
{
    return k_defs[k].reloadable;
}

cfg_type_t cfg_type(cfg_key_t k)
{
    return k_defs[k].type;
}

const char *cfg_default(cfg_key_t k)
{
    return k_defs[k].def;
}

const char *cfg_doc(cfg_key_t k)
{
    return k_defs[k].doc;
}

int cfg_new(cfg_t **out)
{
    cfg_t *c = calloc(1, sizeof(*c));
    if (!c)
        return ST_E_NOMEM;
    for (int i = 0; i < CFG__COUNT; i++) {
        char err[256];
        if (cfg_set(c, k_defs[i].name, k_defs[i].def, "default", err, sizeof(err)) != 0) {
            /* Only reachable through a broken table: fail loudly in tests. */
            ST_ERROR("cfg", "bad default: %s", err);
            cfg_free(c);
            return ST_E_CONFIG;
        }
    }
    *out = c;
    return 0;
}

void cfg_free(cfg_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < CFG__COUNT; i++) {
        free(c->strs[i]);
        free(c->origins[i]);
    }
    for (cfg_lkv_t *x = c->lkvs, *next; x; x = next) {
        next = x->next;
        free(x->listener);
        free(x->value);
        free(x);
    }
    free(c);
}

int64_t cfg_int(const cfg_t *c, cfg_key_t k)
{
    return c->ints[k];
}

bool cfg_bool(const cfg_t *c, cfg_key_t k)
{
    return c->ints[k] != 0;
}

const char *cfg_str(const cfg_t *c, cfg_key_t k)
{
    return c->strs[k] ? c->strs[k] : "";
}

int cfg_parse_hostport(const char *s, char *host, size_t host_len, int *port)
{
    if (!strncmp(s, "PLAINTEXT://", 12))
        s += 12;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return ST_E_INVAL;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && colon[-1] == ']') { /* [::1]:9092 */
        s++;
        hl -= 2;
    }
    if (hl == 0 || hl >= host_len)
        return ST_E_INVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return ST_E_INVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = (int)p;
    return 0;
}

/* ---- YAML ---- */

static int walk(cfg_t *c,
                yaml_document_t *doc,
                yaml_node_t *node,
                const char *prefix,
                const char *path,
                char *errbuf,
                size_t errbuf_len)
{
    if (node->type != YAML_MAPPING_NODE)
        return fail(errbuf, errbuf_len, "%s:%zu: expected a mapping of configuration keys", path,
                    node->start_mark.line + 1);
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE)
            return fail(errbuf, errbuf_len, "%s: keys must be plain strings", path);
        char key[512];
        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
                 (const char *)k->data.scalar.value);
        char origin[600];
        snprintf(origin, sizeof(origin), "%s:%zu", path, k->start_mark.line + 1);
        int rc;
        if (v->type == YAML_MAPPING_NODE)
            rc = walk(c, doc, v, key, path, errbuf, errbuf_len);
        else if (v->type == YAML_SCALAR_NODE)
            rc = cfg_set(c, key, (const char *)v->data.scalar.value, origin, errbuf, errbuf_len);
        else
            rc = fail(errbuf, errbuf_len, "%s: %s: lists are not supported here", origin, key);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int cfg_load_yaml(cfg_t *c, const char *path, char *errbuf, size_t errbuf_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(errbuf, errbuf_len, "cannot read config file %s: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = fail(errbuf, errbuf_len, "%s:%zu: YAML error: %s", path, parser.problem_mark.line + 1,
                  parser.problem ? parser.problem : "unknown");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root && !(root->type == YAML_SCALAR_NODE && !*root->data.scalar.value))
            rc = walk(c, &doc, root, "", path, errbuf, errbuf_len);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

int cfg_load_env(cfg_t *c, char *const *envp, char *errbuf, size_t errbuf_len)
{
    for (int i = 0; i < CFG__COUNT; i++) {
        char var[128] = "STRATA_";
        size_t n = 7;
        for (const char *p = k_defs[i].name; *p && n < sizeof(var) - 1; p++)
            var[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
        var[n] = 0;
        for (char *const *e = envp; *e; e++) {
            if (!strncmp(*e, var, n) && (*e)[n] == '=') {
                int rc = cfg_set(c, k_defs[i].name, *e + n + 1, var, errbuf, errbuf_len);
                if (rc != 0)
                    return rc;
            }
        }
    }
    return 0;
}

void cfg_write_docs(int fd)
{
    dprintf(fd,
            "# Broker configuration keys\n\n"
            "Generated by `stratad --help-config` from `core/cfg_keys.h`; do not edit by hand.\n"
            "Set them in a YAML file (`--config`), as `STRATA_<KEY>` environment variables (dots "
            "as\nunderscores, upper case) or with `-X key=value`. Integers accept k/m/g "
            "(KiB/MiB/GiB) suffixes.\n"
            "Each `ssl.*` and `sasl.*` key may be set for one listener as\n"
            "`listener.name.<listener>.<key>` (Kafka's form, e.g.\n"
            "`listener.name.internal.ssl.client.auth`); it then wins over the plain key.\n\n");
    dprintf(fd, "| key | type | default | range | live | meaning |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < CFG__COUNT; i++) {
        const cfg_def_t *d = &k_defs[i];
        char range[64] = "";
        if (d->type == CFG_INT)
            snprintf(range, sizeof(range), "%lld .. %lld", (long long)d->min, (long long)d->max);
        dprintf(fd, "| `%s` | %s | `%s` | %s | %s | %s |\n", d->name,
                d->type == CFG_INT    ? "int"
                : d->type == CFG_BOOL ? "bool"
                                      : "string",
                d->def, range, d->reloadable ? "yes" : "no", d->doc);
    }
}
