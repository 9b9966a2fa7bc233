/* cfg.h - broker configuration: defaults < YAML file < STRATA_* environment
 * < command-line flags. Every key is validated when set, with a message that
 * names the key and where the value came from; unknown keys are errors.
 * Data path: read once at start-up by stratad (and on reload by the admin
 * API); shards copy what they need, so lookups need no lock. */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cfg_keys.h"
#include "core/st_err.h"

typedef enum { CFG_INT, CFG_BOOL, CFG_STR } cfg_type_t;

typedef enum {
#define CFG_ENUM(id, name, type, def, min, max, reload, doc) CFG_##id,
    CFG_KEYS(CFG_ENUM)
#undef CFG_ENUM
        CFG__COUNT
} cfg_key_t;

typedef struct cfg cfg_t;

/** A config holding every default. @return 0 or ST_E_NOMEM. */
ST_MUST_CHECK int cfg_new(cfg_t **out);
void cfg_free(cfg_t *c);

/** Set key from text. @param origin  names the source in messages ("--set",
 * "config.yaml:3", "STRATA_LOG_DIR"). @return 0 or ST_E_CONFIG (errbuf says why). */
ST_MUST_CHECK int cfg_set(cfg_t *c,
                          const char *key,
                          const char *value,
                          const char *origin,
                          char *errbuf,
                          size_t errbuf_len);
/** Load a YAML mapping; nested mappings join their keys with '.'
 * (`log: {segment.bytes: 1}` is `log.segment.bytes`). */
ST_MUST_CHECK int cfg_load_yaml(cfg_t *c, const char *path, char *errbuf, size_t errbuf_len);
/** Apply STRATA_<KEY> variables (dots as underscores, upper case): STRATA_LOG_DIR. */
ST_MUST_CHECK int cfg_load_env(cfg_t *c, char *const *envp, char *errbuf, size_t errbuf_len);

int64_t cfg_int(const cfg_t *c, cfg_key_t k);
bool cfg_bool(const cfg_t *c, cfg_key_t k);
const char *cfg_str(const cfg_t *c, cfg_key_t k);
/** The value of string key k for Kafka listener `listener`: its
 * listener.name.<listener>.<key> override (name matched without case) when
 * set, else cfg_str(c, k). Borrowed: valid until the key is set again. */
const char *cfg_listener_str(const cfg_t *c, const char *listener, cfg_key_t k);
/** Key id by name. @return 0 or ST_E_NOTFOUND. */
ST_MUST_CHECK int cfg_lookup(const char *name, cfg_key_t *out);
const char *cfg_name(cfg_key_t k);
/** Where the current value of k came from: the origin given to cfg_set
 * ("default", "FILE:LINE", "STRATA_<KEY>", "command line", ...). Borrowed:
 * valid until k is set again. */
const char *cfg_origin(const cfg_t *c, cfg_key_t k);
/** Whether k's value is a secret (CFG_SENSITIVE_KEYS, or a name ending in
 * ".password"): never shown nor logged. */
bool cfg_sensitive(cfg_key_t k);
/** Whether k may change while the broker runs (the table's reloadable flag). */
bool cfg_reloadable(cfg_key_t k);
cfg_type_t cfg_type(cfg_key_t k);
/** The default value as text, and the one-line description (static). */
const char *cfg_default(cfg_key_t k);
const char *cfg_doc(cfg_key_t k);

/** Parse "HOST:PORT" or "PLAINTEXT://HOST:PORT". @return 0 or ST_E_INVAL. */
ST_MUST_CHECK int cfg_parse_hostport(const char *s, char *host, size_t host_len, int *port);

/** Parse one listener of a `listeners` list: "NAME://HOST:PORT" or "HOST:PORT"
 * (name PLAINTEXT). s is not NUL-terminated: len bytes. An empty HOST
 * ("SSL://:9093") gives host "". NAME is returned upper-cased.
 * @return 0 or ST_E_INVAL. @thread any */
ST_MUST_CHECK int cfg_parse_listener(
    const char *s, size_t len, char *name, size_t name_len, char *host, size_t host_len, int *port);

/** Write the key table as Markdown (docs) to fd. */
void cfg_write_docs(int fd);

#endif
