/* acl.c - ACL sets and Kafka's authorization decision (see acl.h).
 * Data path: called on the connection's shard for every request that names
 * a resource, so a decision is a few hash probes into an immutable sorted
 * array: the literal name, the literal "*", and one probe per distinct
 * length of the PREFIXED patterns of that resource type (the name's prefixes
 * are hashed on the way), then a binary search for the principal (and
 * User:*) inside each resource's run of entries.
 * Invariants: 1. entries are sorted by (type, pattern, name, principal,
 *                host, op, perm) and unique;
 *             2. prefix_lens[t] holds each distinct length of a PREFIXED
 *                name of type t once, ascending;
 *             3. slots maps each distinct (type, pattern, name) to its run. */
#include "core/acl.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define N_RES 8 /* resource types 0..ACL_RES_USER */

struct acl_set {
    _Atomic int refs;
    acl_entry_t *e; /* owned, with owned strings */
    int n;
    size_t *prefix_lens[N_RES]; /* owned */
    int n_prefix_lens[N_RES];
    /* owned: open-addressing table from (type, pattern, name) to the run of
     * entries [lo, hi) with that resource; n_slots is a power of two. */
    struct slot {
        uint64_t h;
        int lo, hi; /* hi == 0: empty slot */
    } * slots;
    size_t n_slots;
};

/* FNV-1a over the resource key, fed a byte at a time so that a name's
 * prefixes are hashed on the way (res_hash_end after each length). */
static uint64_t res_hash_start(int t, int p)
{
    return (14695981039346656037ull ^ (uint64_t)(t * 8 + p)) * 1099511628211ull;
}
static uint64_t res_hash_byte(uint64_t h, char c)
{
    return (h ^ (uint8_t)c) * 1099511628211ull;
}
static uint64_t res_hash_end(uint64_t h, size_t len)
{
    h ^= len;
    h ^= h >> 29;
    return h ? h : 1;
}

/* ---- Building ---- */

static int cmp_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

static int cmp_entry(const void *pa, const void *pb)
{
    const acl_entry_t *a = pa, *b = pb;
    int c;
    if (a->res_type != b->res_type)
        return a->res_type - b->res_type;
    if (a->pattern != b->pattern)
        return a->pattern - b->pattern;
    if ((c = cmp_str(a->name, b->name)) || (c = cmp_str(a->principal, b->principal)) ||
        (c = cmp_str(a->host, b->host)))
        return c;
    if (a->op != b->op)
        return a->op - b->op;
    return a->perm - b->perm;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

void acl_set_put(acl_set_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (int i = 0; i < s->n; i++) {
        free((char *)s->e[i].name);
        free((char *)s->e[i].principal);
        free((char *)s->e[i].host);
    }
    free(s->e);
    for (int t = 0; t < N_RES; t++)
        free(s->prefix_lens[t]);
    free(s->slots);
    free(s);
}

acl_set_t *acl_set_ref(acl_set_t *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

static int index_prefixes(acl_set_t *s)
{
    for (int i = 0; i < s->n; i++) {
        const acl_entry_t *e = &s->e[i];
        if (e->pattern != ACL_PAT_PREFIXED || e->res_type < 0 || e->res_type >= N_RES)
            continue;
        int t = e->res_type;
        size_t len = strlen(e->name);
        bool seen = false;
        for (int k = 0; k < s->n_prefix_lens[t] && !seen; k++)
            seen = s->prefix_lens[t][k] == len;
        if (seen)
            continue;
        size_t *n = realloc(s->prefix_lens[t], (size_t)(s->n_prefix_lens[t] + 1) * sizeof(*n));
        if (!n)
            return ST_E_NOMEM;
        n[s->n_prefix_lens[t]++] = len;
        s->prefix_lens[t] = n;
    }
    for (int t = 0; t < N_RES; t++)
        if (s->n_prefix_lens[t] > 1)
            qsort(s->prefix_lens[t], (size_t)s->n_prefix_lens[t], sizeof(size_t), cmp_size);
    return 0;
}

static uint64_t entry_hash(const acl_entry_t *e)
{
    uint64_t h = res_hash_start(e->res_type, e->pattern);
    size_t len = 0;
    for (; e->name[len]; len++)
        h = res_hash_byte(h, e->name[len]);
    return res_hash_end(h, len);
}

/* One slot per distinct resource, at most half the slots used. */
static int index_resources(acl_set_t *s)
{
    s->n_slots = 16;
    while (s->n_slots < (size_t)s->n * 2)
        s->n_slots *= 2;
    if (!(s->slots = calloc(s->n_slots, sizeof(*s->slots))))
        return ST_E_NOMEM;
    for (int lo = 0, hi; lo < s->n; lo = hi) {
        const acl_entry_t *e = &s->e[lo];
        for (hi = lo + 1; hi < s->n && s->e[hi].res_type == e->res_type &&
                          s->e[hi].pattern == e->pattern && !strcmp(s->e[hi].name, e->name);
             hi++)
            ;
        uint64_t h = entry_hash(e);
        size_t i = h & (s->n_slots - 1);
        while (s->slots[i].hi)
            i = (i + 1) & (s->n_slots - 1);
        s->slots[i] = (struct slot){h, lo, hi};
    }
    return 0;
}

acl_set_t *acl_set_new(const acl_entry_t *entries, int n)
{
    acl_set_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    if (n > 0 && !(s->e = calloc((size_t)n, sizeof(*s->e))))
        goto fail;
    for (int i = 0; i < n; i++) {
        acl_entry_t *d = &s->e[s->n++];
        *d = entries[i];
        d->name = strdup(entries[i].name ? entries[i].name : "");
        d->principal = strdup(entries[i].principal ? entries[i].principal : "");
        d->host = strdup(entries[i].host ? entries[i].host : "");
        if (!d->name || !d->principal || !d->host)
            goto fail;
    }
    if (s->n > 1) {
        qsort(s->e, (size_t)s->n, sizeof(*s->e), cmp_entry);
        int w = 1;
        for (int i = 1; i < s->n; i++) {
            if (cmp_entry(&s->e[w - 1], &s->e[i]) == 0) {
                free((char *)s->e[i].name);
                free((char *)s->e[i].principal);
                free((char *)s->e[i].host);
                continue;
            }
            s->e[w++] = s->e[i];
        }
        s->n = w;
    }
    if (index_prefixes(s) != 0 || index_resources(s) != 0)
        goto fail;
    return s;
fail:
    acl_set_put(s);
    return NULL;
}

const acl_entry_t *acl_set_entries(const acl_set_t *s, int *n)
{
    *n = s ? s->n : 0;
    return s ? s->e : NULL;
}

/* ---- Decisions ---- */

/* Compare an entry's (type, pattern, name) with a key; name is len bytes. */
static int cmp_key(const acl_entry_t *e, int t, int p, const char *name, size_t len)
{
    if (e->res_type != t)
        return e->res_type - t;
    if (e->pattern != p)
        return e->pattern - p;
    int c = strncmp(e->name, name, len);
    if (c != 0)
        return c;
    return e->name[len] != 0; /* e's name is longer */
}

bool acl_is_super(const acl_conf_t *conf, const char *principal)
{
    for (int i = 0; conf && i < conf->n_super_users; i++)
        if (!strcmp(conf->super_users[i], principal))
            return true;
    return false;
}

static bool entry_applies(const acl_entry_t *e, const char *principal, const char *host)
{
    return (!strcmp(e->principal, principal) || !strcmp(e->principal, ACL_ANY_USER)) &&
           (!strcmp(e->host, ACL_WILDCARD) || (host && !strcmp(e->host, host)));
}

/* Does an ALLOW entry of operation acl_op grant op? */
static bool op_grants(int acl_op, int op)
{
    if (acl_op == ACL_OP_ALL || acl_op == op)
        return true;
    if (op == ACL_OP_DESCRIBE)
        return acl_op == ACL_OP_READ || acl_op == ACL_OP_WRITE || acl_op == ACL_OP_DELETE ||
               acl_op == ACL_OP_ALTER;
    if (op == ACL_OP_DESCRIBE_CONFIGS)
        return acl_op == ACL_OP_ALTER_CONFIGS;
    return false;
}

typedef struct {
    bool any;   /* some ACL names the resource */
    bool deny;  /* a DENY applies */
    bool allow; /* an ALLOW applies */
} verdict_t;

/* Fold the entries of resource (t, p, name) that apply to principal (or to
 * User:*) from host into v: two binary searches, then only those entries. */
static void eval_key(const acl_set_t *s,
                     int t,
                     int p,
                     const char *name,
                     size_t len,
                     uint64_t h,
                     const char *principal,
                     const char *host,
                     int op,
                     verdict_t *v)
{
    int lo = -1, hi = 0;
    for (size_t i = h & (s->n_slots - 1); s->slots[i].hi; i = (i + 1) & (s->n_slots - 1))
        if (s->slots[i].h == h && cmp_key(&s->e[s->slots[i].lo], t, p, name, len) == 0) {
            lo = s->slots[i].lo;
            hi = s->slots[i].hi;
            break;
        }
    if (lo < 0)
        return; /* no ACL names this resource */
    v->any = true;
    const char *who[2] = {principal, ACL_ANY_USER};
    for (int k = 0; k < 2; k++) {
        if (k == 1 && !strcmp(principal, ACL_ANY_USER))
            break;
        int a = lo, b = hi; /* the run is sorted by principal: find who[k]'s */
        while (a < b) {
            int mid = a + (b - a) / 2;
            if (strcmp(s->e[mid].principal, who[k]) < 0)
                a = mid + 1;
            else
                b = mid;
        }
        for (int i = a; i < hi && !strcmp(s->e[i].principal, who[k]); i++) {
            const acl_entry_t *e = &s->e[i];
            if (strcmp(e->host, ACL_WILDCARD) != 0 && !(host && !strcmp(e->host, host)))
                continue;
            if (e->perm == ACL_PERM_DENY && (e->op == op || e->op == ACL_OP_ALL))
                v->deny = true;
            else if (e->perm == ACL_PERM_ALLOW && op_grants(e->op, op))
                v->allow = true;
        }
    }
}

bool acl_authorize(const acl_set_t *s,
                   const acl_conf_t *conf,
                   const char *principal,
                   const char *host,
                   int op,
                   int res_type,
                   const char *name,
                   size_t len)
{
    if (acl_is_super(conf, principal))
        return true;
    verdict_t v = {false, false, false};
    if (s && res_type >= 0 && res_type < N_RES) {
        uint64_t h = res_hash_start(res_type, ACL_PAT_LITERAL);
        for (size_t i = 0; i < len; i++)
            h = res_hash_byte(h, name[i]);
        eval_key(s, res_type, ACL_PAT_LITERAL, name, len, res_hash_end(h, len), principal, host, op,
                 &v);
        if (!(len == 1 && name[0] == '*')) {
            h = res_hash_end(res_hash_byte(res_hash_start(res_type, ACL_PAT_LITERAL), '*'), 1);
            eval_key(s, res_type, ACL_PAT_LITERAL, ACL_WILDCARD, 1, h, principal, host, op, &v);
        }
        h = res_hash_start(res_type, ACL_PAT_PREFIXED);
        size_t done = 0; /* bytes of name hashed into h */
        for (int k = 0; k < s->n_prefix_lens[res_type]; k++) {
            size_t pl = s->prefix_lens[res_type][k];
            if (pl > len)
                break;
            for (; done < pl; done++)
                h = res_hash_byte(h, name[done]);
            eval_key(s, res_type, ACL_PAT_PREFIXED, name, pl, res_hash_end(h, pl), principal, host,
                     op, &v);
        }
    }
    if (!v.any)
        return conf && conf->allow_if_no_acl;
    return !v.deny && v.allow; /* DENY wins */
}

/* Is the resource pattern of allow entry a denied as a whole for principal
 * by a DENY of op in s (same literal name, or a prefix covering it)? */
static bool
shadowed(const acl_set_t *s, const acl_entry_t *a, const char *principal, const char *host, int op)
{
    for (int i = 0; i < s->n; i++) {
        const acl_entry_t *d = &s->e[i];
        if (d->res_type != a->res_type || d->perm != ACL_PERM_DENY ||
            !(d->op == op || d->op == ACL_OP_ALL) || !entry_applies(d, principal, host))
            continue;
        if (d->pattern == ACL_PAT_LITERAL && !strcmp(d->name, ACL_WILDCARD))
            return true;
        if (d->pattern == ACL_PAT_PREFIXED && !strncmp(a->name, d->name, strlen(d->name)))
            return true;
        if (d->pattern == ACL_PAT_LITERAL && a->pattern == ACL_PAT_LITERAL &&
            !strcmp(d->name, a->name))
            return true;
    }
    return false;
}

bool acl_authorize_any(const acl_set_t *s,
                       const acl_conf_t *conf,
                       const char *principal,
                       const char *host,
                       int op,
                       int res_type)
{
    if (acl_is_super(conf, principal))
        return true;
    bool has_type = false;
    for (int i = 0; s && i < s->n; i++) {
        const acl_entry_t *e = &s->e[i];
        if (e->res_type != res_type)
            continue;
        has_type = true;
        if (e->perm == ACL_PERM_ALLOW && op_grants(e->op, op) &&
            entry_applies(e, principal, host) && !shadowed(s, e, principal, host, op))
            return true;
    }
    return !has_type && conf && conf->allow_if_no_acl;
}

/* ---- Configuration ---- */

int acl_conf_init(acl_conf_t *c, const char *super_users, bool allow_if_no_acl)
{
    memset(c, 0, sizeof(*c));
    c->allow_if_no_acl = allow_if_no_acl;
    size_t len = strlen(super_users), n = 1;
    for (size_t i = 0; i < len; i++)
        n += super_users[i] == ';';
    /* One block: the pointer array, then a copy of the list cut at ';'. */
    char **v = malloc(n * sizeof(char *) + len + 1);
    if (!v)
        return ST_E_NOMEM;
    char *buf = (char *)(v + n);
    memcpy(buf, super_users, len + 1);
    int k = 0;
    for (char *save = NULL, *t = strtok_r(buf, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        char *end = t + strlen(t);
        while (end > t && isspace((unsigned char)end[-1]))
            *--end = 0;
        if (*t)
            v[k++] = t;
    }
    c->super_users = (const char *const *)v;
    c->n_super_users = k;
    c->owned = v;
    return 0;
}

void acl_conf_fini(acl_conf_t *c)
{
    free(c->owned);
    memset(c, 0, sizeof(*c));
}

/* ---- Filters ---- */

bool acl_filter_matches(const acl_entry_t *f, const acl_entry_t *b)
{
    if (f->res_type != ACL_RES_ANY && f->res_type != b->res_type)
        return false;
    if (f->pattern != ACL_PAT_ANY && f->pattern != ACL_PAT_MATCH && f->pattern != b->pattern)
        return false;
    if (f->name) {
        if (f->pattern == ACL_PAT_ANY || f->pattern == b->pattern) {
            if (strcmp(f->name, b->name) != 0)
                return false;
        } else if (b->pattern == ACL_PAT_LITERAL) { /* MATCH */
            if (strcmp(f->name, b->name) != 0 && strcmp(b->name, ACL_WILDCARD) != 0)
                return false;
        } else if (b->pattern == ACL_PAT_PREFIXED) {
            if (strncmp(f->name, b->name, strlen(b->name)) != 0)
                return false;
        } else {
            return false;
        }
    }
    if (f->principal && strcmp(f->principal, b->principal) != 0)
        return false;
    if (f->host && strcmp(f->host, b->host) != 0)
        return false;
    if (f->op != ACL_OP_ANY && f->op != b->op)
        return false;
    return f->perm == ACL_PERM_ANY || f->perm == b->perm;
}

static const char *principal_invalid(const char *p)
{
    const char *colon = strchr(p, ':');
    if (!colon || colon == p || !colon[1])
        return "principal must be TYPE:NAME, e.g. User:alice";
    return NULL;
}

const char *acl_binding_invalid(const acl_entry_t *b)
{
    if (b->res_type != ACL_RES_TOPIC && b->res_type != ACL_RES_GROUP &&
        b->res_type != ACL_RES_CLUSTER && b->res_type != ACL_RES_TRANSACTIONAL_ID)
        return "resource type must be TOPIC, GROUP, CLUSTER or TRANSACTIONAL_ID";
    if (b->pattern != ACL_PAT_LITERAL && b->pattern != ACL_PAT_PREFIXED)
        return "pattern type must be LITERAL or PREFIXED";
    if (!b->name || !*b->name)
        return "resource name must not be empty";
    if (b->res_type == ACL_RES_CLUSTER &&
        (b->pattern != ACL_PAT_LITERAL || strcmp(b->name, ACL_CLUSTER_NAME) != 0))
        return "the CLUSTER resource is the literal name kafka-cluster";
    if (b->op < ACL_OP_ALL || b->op > ACL_OP_IDEMPOTENT_WRITE)
        return "operation is unknown or ANY";
    if (b->perm != ACL_PERM_ALLOW && b->perm != ACL_PERM_DENY)
        return "permission type must be ALLOW or DENY";
    if (!b->principal || principal_invalid(b->principal))
        return "principal must be TYPE:NAME, e.g. User:alice";
    if (!b->host || !*b->host)
        return "host must be * or an IP address";
    if (strlen(b->name) > ACL_FIELD_MAX || strlen(b->principal) > ACL_FIELD_MAX ||
        strlen(b->host) > ACL_FIELD_MAX)
        return "field longer than 1024 bytes";
    return NULL;
}

const char *acl_filter_invalid(const acl_entry_t *f)
{
    if (f->res_type <= ACL_RES_UNKNOWN || f->res_type > ACL_RES_USER)
        return "unknown resource type";
    if (f->pattern <= ACL_PAT_UNKNOWN || f->pattern > ACL_PAT_PREFIXED)
        return "unknown pattern type";
    if (f->op <= ACL_OP_UNKNOWN || f->op > ACL_OP_DESCRIBE_TOKENS)
        return "unknown operation";
    if (f->perm <= ACL_PERM_UNKNOWN || f->perm > ACL_PERM_ALLOW)
        return "unknown permission type";
    return NULL;
}

/* ---- Names ---- */

static const char *const k_ops[] = {"UNKNOWN",
                                    "ANY",
                                    "ALL",
                                    "READ",
                                    "WRITE",
                                    "CREATE",
                                    "DELETE",
                                    "ALTER",
                                    "DESCRIBE",
                                    "CLUSTER_ACTION",
                                    "DESCRIBE_CONFIGS",
                                    "ALTER_CONFIGS",
                                    "IDEMPOTENT_WRITE",
                                    "CREATE_TOKENS",
                                    "DESCRIBE_TOKENS"};
static const char *const k_res[] = {
    "UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"};
static const char *const k_pat[] = {"UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"};
static const char *const k_perm[] = {"UNKNOWN", "ANY", "DENY", "ALLOW"};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *t, int n, int v)
{
    return v >= 0 && v < n ? t[v] : "UNKNOWN";
}

/* Case-insensitive; '-' and '_' are the same (rpk writes describe-configs). */
static int parse_of(const char *const *t, int n, const char *s)
{
    for (int v = 0; s && v < n; v++) {
        size_t i = 0;
        for (; s[i] && t[v][i]; i++)
            if (toupper((unsigned char)(s[i] == '-' ? '_' : s[i])) != t[v][i])
                break;
        if (!s[i] && !t[v][i])
            return v;
    }
    return -1;
}

const char *acl_op_name(int op)
{
    return name_of(k_ops, N_OF(k_ops), op);
}
int acl_op_parse(const char *s)
{
    return parse_of(k_ops, N_OF(k_ops), s);
}
const char *acl_res_name(int t)
{
    return name_of(k_res, N_OF(k_res), t);
}
int acl_res_parse(const char *s)
{
    return parse_of(k_res, N_OF(k_res), s);
}
const char *acl_pattern_name(int p)
{
    return name_of(k_pat, N_OF(k_pat), p);
}
int acl_pattern_parse(const char *s)
{
    return parse_of(k_pat, N_OF(k_pat), s);
}
const char *acl_perm_name(int p)
{
    return name_of(k_perm, N_OF(k_perm), p);
}
