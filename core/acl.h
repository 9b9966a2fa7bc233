/* acl.h - Kafka's authorization model: ACL entries, immutable indexed ACL
 * sets, the authorize decision and the filters of DescribeAcls/DeleteAcls.
 * Data path: every Kafka request -> kh_acl (kafka/) asks acl_authorize()
 * against the current set (a refcounted snapshot published by core/meta.c
 * after each CreateAcls/DeleteAcls): pure memory lookups, no I/O, no locks.
 * Invariants: 1. a published acl_set_t never changes;
 *             2. enum values are Kafka's wire values (int8 on the wire). */
#ifndef ACL_H
#define ACL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/st_err.h"

/* ResourceType (org.apache.kafka.common.resource.ResourceType). */
enum {
    ACL_RES_UNKNOWN = 0,
    ACL_RES_ANY = 1,
    ACL_RES_TOPIC = 2,
    ACL_RES_GROUP = 3,
    ACL_RES_CLUSTER = 4,
    ACL_RES_TRANSACTIONAL_ID = 5,
    ACL_RES_DELEGATION_TOKEN = 6,
    ACL_RES_USER = 7,
};

/* PatternType. MATCH and ANY appear only in filters. */
enum {
    ACL_PAT_UNKNOWN = 0,
    ACL_PAT_ANY = 1,
    ACL_PAT_MATCH = 2,
    ACL_PAT_LITERAL = 3,
    ACL_PAT_PREFIXED = 4,
};

/* AclOperation. ANY appears only in filters. */
enum {
    ACL_OP_UNKNOWN = 0,
    ACL_OP_ANY = 1,
    ACL_OP_ALL = 2,
    ACL_OP_READ = 3,
    ACL_OP_WRITE = 4,
    ACL_OP_CREATE = 5,
    ACL_OP_DELETE = 6,
    ACL_OP_ALTER = 7,
    ACL_OP_DESCRIBE = 8,
    ACL_OP_CLUSTER_ACTION = 9,
    ACL_OP_DESCRIBE_CONFIGS = 10,
    ACL_OP_ALTER_CONFIGS = 11,
    ACL_OP_IDEMPOTENT_WRITE = 12,
    ACL_OP_CREATE_TOKENS = 13,
    ACL_OP_DESCRIBE_TOKENS = 14,
};

/* AclPermissionType. ANY appears only in filters. */
enum {
    ACL_PERM_UNKNOWN = 0,
    ACL_PERM_ANY = 1,
    ACL_PERM_DENY = 2,
    ACL_PERM_ALLOW = 3,
};

#define ACL_CLUSTER_NAME "kafka-cluster" /* the only CLUSTER resource name */
#define ACL_WILDCARD     "*"             /* any resource name / any host */
#define ACL_ANY_USER     "User:*"        /* the wildcard principal */
#define ACL_ANONYMOUS    "User:ANONYMOUS"
#define ACL_FIELD_MAX    1024 /* longest principal, host or resource name stored */

/** One ACL binding (resource pattern + entry). In an acl_set_t the strings
 * are owned by the set; in filters and requests they are borrowed. */
typedef struct acl_entry {
    int8_t res_type;
    int8_t pattern; /* LITERAL or PREFIXED in a binding; any in a filter */
    int8_t op;
    int8_t perm;
    const char *name;      /* resource name; NULL in a filter = any */
    const char *principal; /* "User:alice"; NULL in a filter = any */
    const char *host;      /* "*" or an IP; NULL in a filter = any */
} acl_entry_t;

/** How decisions are made (broker config, fixed at start). */
typedef struct {
    bool allow_if_no_acl;           /* allow.everyone.if.no.acl.found */
    const char *const *super_users; /* principals allowed everything */
    int n_super_users;
    void *owned; /* acl_conf_init's storage of super_users, or NULL */
} acl_conf_t;

/** Fill c from super.users ("User:a;User:b", blanks trimmed, empty items
 * skipped) and allow.everyone.if.no.acl.found. Release with acl_conf_fini.
 * @return 0 or ST_E_NOMEM. */
ST_MUST_CHECK int acl_conf_init(acl_conf_t *c, const char *super_users, bool allow_if_no_acl);
void acl_conf_fini(acl_conf_t *c);

typedef struct acl_set acl_set_t;

/** Build an immutable set from n entries (copied; duplicates kept once).
 * @return an owned set (refs = 1) or NULL when out of memory. @thread any */
acl_set_t *acl_set_new(const acl_entry_t *entries, int n);
/** Take / drop a reference; the last put frees. NULL is a no-op. @thread any */
acl_set_t *acl_set_ref(acl_set_t *s);
void acl_set_put(acl_set_t *s);
/** Entries of the set, sorted by (type, pattern, name, principal, host, op,
 * perm); borrowed while the caller holds a reference. */
const acl_entry_t *acl_set_entries(const acl_set_t *s, int *n);

/** Kafka's authorize(principal, host, op, resource):
 * super users are allowed; with no ACL on the resource (literal name,
 * literal "*", or a prefix of name) allow_if_no_acl decides; else a matching
 * DENY (principal or User:*, host or *, op or ALL) refuses; else a matching
 * ALLOW of op, ALL, or an operation implying op (READ, WRITE, DELETE, ALTER
 * imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows.
 * @param s     Borrowed; NULL = an empty set.
 * @param name  len bytes, not NUL-terminated.  @thread any  @blocking no */
bool acl_authorize(const acl_set_t *s,
                   const acl_conf_t *conf,
                   const char *principal,
                   const char *host,
                   int op,
                   int res_type,
                   const char *name,
                   size_t len);
/** Kafka's authorizeByResourceType: may the principal do op on at least one
 * resource of res_type (e.g. WRITE on some topic for InitProducerId)? */
bool acl_authorize_any(const acl_set_t *s,
                       const acl_conf_t *conf,
                       const char *principal,
                       const char *host,
                       int op,
                       int res_type);
/** Whether principal is one of conf's super users. */
bool acl_is_super(const acl_conf_t *conf, const char *principal);

/** Whether binding b matches filter f (Kafka's AclBindingFilter.matches,
 * with MATCH: literal name, literal "*" and prefixes of the filter's name). */
bool acl_filter_matches(const acl_entry_t *f, const acl_entry_t *b);
/** Why binding b cannot be created, or NULL when it is valid. */
const char *acl_binding_invalid(const acl_entry_t *b);
/** Why filter f is not a valid DescribeAcls/DeleteAcls filter, or NULL. */
const char *acl_filter_invalid(const acl_entry_t *f);

/** Names of the enums as Kafka (and rpk) spell them, and back (case-
 * insensitive; '-' and '_' are the same). *_parse returns -1 if unknown. */
const char *acl_op_name(int op);
int acl_op_parse(const char *s);
const char *acl_res_name(int res_type);
int acl_res_parse(const char *s);
const char *acl_pattern_name(int pattern);
int acl_pattern_parse(const char *s);
const char *acl_perm_name(int perm);

#endif
