/* kh_limits.c - broker-wide limits of the Kafka server, shared by every shard:
 * connection counts (max.connections, max.connections.per.ip) and the memory
 * pool of queued requests (queued.max.request.bytes).
 * Data path: kh_conn's accept asks kh_limits_conn_admit() before a
 * connection is served (refused ones are closed at once) and releases it on
 * close; the connection layer adds to the pool the bytes of each request
 * read but not yet answered (its frame, decoded form and response) and stops
 * reading while the pool is full.
 * Invariants: 1. n_conns and every per-IP count equal the connections
 *                admitted and not yet released (the mutex guards both);
 *             2. an IP's entry exists only while its count is > 0;
 *             3. the pool is a plain atomic sum: a full pool pauses reading,
 *                it never fails an allocation. */
#include "kafka/kh.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define KH_LIMITS_BUCKETS 1024

typedef struct ip_key {
    uint8_t family; /* AF_INET or AF_INET6 (IPv4-mapped IPv6 counts as IPv4) */
    uint8_t addr[16];
} ip_key_t;

typedef struct ip_count {
    struct ip_count *next; /* the bucket's chain */
    ip_key_t key;
    int64_t n;
} ip_count_t;

struct kh_limits {
    int64_t max_conns;  /* max.connections; <= 0: no limit */
    int64_t max_per_ip; /* max.connections.per.ip; <= 0: no limit */
    int64_t queued_max; /* queued.max.request.bytes; <= 0: no limit */
    pthread_mutex_t mu; /* guards n_conns and buckets */
    int64_t n_conns;
    ip_count_t *buckets[KH_LIMITS_BUCKETS]; /* owned */
    _Atomic int64_t queued_bytes;
};

kh_limits_t *kh_limits_new(int64_t max_conns, int64_t max_per_ip, int64_t queued_max_bytes)
{
    kh_limits_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->max_conns = max_conns;
    l->max_per_ip = max_per_ip;
    l->queued_max = queued_max_bytes;
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->queued_bytes, 0);
    return l;
}

void kh_limits_free(kh_limits_t *l)
{
    if (!l)
        return;
    for (int i = 0; i < KH_LIMITS_BUCKETS; i++) {
        for (ip_count_t *e = l->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static ip_key_t key_of(const struct sockaddr *sa)
{
    ip_key_t k;
    memset(&k, 0, sizeof(k));
    if (sa->sa_family == AF_INET) {
        k.family = AF_INET;
        memcpy(k.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(a, mapped, sizeof(mapped))) {
            k.family = AF_INET;
            memcpy(k.addr, a + 12, 4);
        } else {
            k.family = AF_INET6;
            memcpy(k.addr, a, 16);
        }
    }
    return k;
}

static ip_count_t **find(kh_limits_t *l, const ip_key_t *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < sizeof(*k); i++)
        h = (h ^ ((const uint8_t *)k)[i]) * 16777619u;
    ip_count_t **pp = &l->buckets[h % KH_LIMITS_BUCKETS];
    while (*pp && memcmp(&(*pp)->key, k, sizeof(*k)) != 0)
        pp = &(*pp)->next;
    return pp;
}

kh_admit_t kh_limits_conn_admit(kh_limits_t *l, const struct sockaddr *sa)
{
    if (!l)
        return KH_ADMIT_OK;
    ip_key_t k = key_of(sa);
    kh_admit_t rc = KH_ADMIT_OK;
    pthread_mutex_lock(&l->mu);
    ip_count_t **pp = find(l, &k);
    if (l->max_conns > 0 && l->n_conns >= l->max_conns) {
        rc = KH_ADMIT_MAX_CONNS;
    } else if (l->max_per_ip > 0 && *pp && (*pp)->n >= l->max_per_ip) {
        rc = KH_ADMIT_MAX_PER_IP;
    } else if (!*pp && !(*pp = calloc(1, sizeof(**pp)))) {
        rc = KH_ADMIT_NOMEM;
    } else {
        (*pp)->key = k;
        (*pp)->n++;
        l->n_conns++;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void kh_limits_conn_release(kh_limits_t *l, const struct sockaddr *sa)
{
    if (!l)
        return;
    ip_key_t k = key_of(sa);
    pthread_mutex_lock(&l->mu);
    ip_count_t **pp = find(l, &k);
    if (*pp) {
        l->n_conns--;
        if (--(*pp)->n == 0) {
            ip_count_t *e = *pp;
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&l->mu);
}

int64_t kh_limits_conns(kh_limits_t *l, const struct sockaddr *sa)
{
    if (!l)
        return 0;
    pthread_mutex_lock(&l->mu);
    int64_t n = l->n_conns;
    if (sa) {
        ip_key_t k = key_of(sa);
        ip_count_t **pp = find(l, &k);
        n = *pp ? (*pp)->n : 0;
    }
    pthread_mutex_unlock(&l->mu);
    return n;
}

void kh_limits_mem_add(kh_limits_t *l, int64_t delta)
{
    if (l && delta)
        atomic_fetch_add_explicit(&l->queued_bytes, delta, memory_order_relaxed);
}

int64_t kh_limits_mem_used(const kh_limits_t *l)
{
    return l ? atomic_load_explicit(&l->queued_bytes, memory_order_relaxed) : 0;
}

bool kh_limits_mem_full(const kh_limits_t *l)
{
    return l && l->queued_max > 0 && kh_limits_mem_used(l) >= l->queued_max;
}
