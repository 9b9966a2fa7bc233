/* kh_tls.h - TLS for the Kafka listeners and the admin API (OpenSSL 3,
 * memory BIOs: the event loop moves ciphertext, OpenSSL never touches a socket).
 * Data path: a connection's loop reads ciphertext -> kh_tls_conn_read()
 * decrypts it into the connection's plaintext buffer (the handshake runs
 * there too) -> the request is framed as on a plaintext connection ->
 * responses go through kh_tls_conn_write() -> ciphertext is written by the
 * loop. A kh_tls_t is one server context, shared by every shard; reloading it
 * (SIGHUP, changed files) swaps the OpenSSL context for new connections while
 * the existing ones keep the one they started with. */
#ifndef KH_TLS_H
#define KH_TLS_H

#include "core/st_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cfg;
typedef struct kh_tls kh_tls_t;
typedef struct kh_tls_conn kh_tls_conn_t;

/* Settings of a server context, with Kafka's ssl.* names. Every string is
 * borrowed for kh_tls_new() (copied); NULL or "" means unset. */
typedef struct kh_tls_opts {
    const char *what;                /* names the context in messages ("listener SSL") */
    const char *keystore_type;       /* ssl.keystore.type: PEM or PKCS12 */
    const char *keystore_location;   /* ssl.keystore.location: key + chain file */
    const char *keystore_password;   /* ssl.keystore.password (PKCS12) */
    const char *keystore_chain;      /* ssl.keystore.certificate.chain: inline PEM */
    const char *keystore_key;        /* ssl.keystore.key: inline PEM */
    const char *key_password;        /* ssl.key.password: of an encrypted PEM key */
    const char *truststore_type;     /* ssl.truststore.type: PEM or PKCS12 */
    const char *truststore_location; /* ssl.truststore.location: CA file */
    const char *truststore_password; /* ssl.truststore.password (PKCS12) */
    const char *truststore_certs;    /* ssl.truststore.certificates: inline PEM */
    const char *client_auth;         /* ssl.client.auth: none, requested, required */
    const char *cipher_suites;       /* ssl.cipher.suites: IANA or OpenSSL names */
    const char *enabled_protocols;   /* ssl.enabled.protocols: TLSv1.2, TLSv1.3 */
    const char *cert_file;           /* PEM chain file apart from its key (admin API) */
    const char *key_file;            /* PEM key file of cert_file */
} kh_tls_opts_t;

/** The ssl.* settings of Kafka listener name from cfg: each key
 * listener.name.<name lower case>.ssl.* when set, else ssl.*. Strings are
 * borrowed from cfg. @param what  Caller storage for the context's name. */
void kh_tls_opts_from_cfg(
    const struct cfg *cfg, const char *listener, kh_tls_opts_t *out, char *what, size_t what_len);

/** Build a server context: load the key, chain and trust store and check
 * that the key matches the certificate. Reads files: not on a shard loop.
 * @return 0, or ST_E_CONFIG with the reason (naming the setting) in errbuf.
 * @thread any @blocking yes (file reads) */
ST_MUST_CHECK int
kh_tls_new(const kh_tls_opts_t *o, kh_tls_t **out, char *errbuf, size_t errbuf_len);
/** Load the files again (certificate rotation). New connections use the
 * new certificates; open connections keep theirs. On error the old context
 * stays in use. @thread any @blocking yes */
ST_MUST_CHECK int kh_tls_reload(kh_tls_t *t, char *errbuf, size_t errbuf_len);
/** Whether a file the context was loaded from changed since (mtime, size,
 * inode): the caller then reloads. @blocking yes (stat) */
bool kh_tls_files_changed(kh_tls_t *t);
/** How many times the context was (re)loaded, 1 after kh_tls_new. */
int kh_tls_generation(const kh_tls_t *t);
/** Free t; connections made from it keep working. kh_tls_free(NULL) is a no-op. */
void kh_tls_free(kh_tls_t *t);

/** A server session for one accepted connection (NULL when out of memory).
 * @thread the connection's loop */
kh_tls_conn_t *kh_tls_conn_new(kh_tls_t *t);
void kh_tls_conn_free(kh_tls_conn_t *tc);
/** Feed n bytes of ciphertext (in, borrowed) and append the plaintext they
 * yield to *buf (len bytes used, *cap allocated; realloc'd as needed). Runs
 * the handshake; its replies wait in kh_tls_conn_output().
 * @return plaintext bytes appended (>= 0); ST_E_CLOSED when the peer ended
 *         the session (close_notify: close quietly, as on EOF); or
 *         ST_E_MALFORMED / ST_E_NOMEM (the session failed:
 *         kh_tls_conn_error() says why; close it). */
ssize_t kh_tls_conn_read(
    kh_tls_conn_t *tc, const uint8_t *in, size_t n, uint8_t **buf, size_t len, size_t *cap);
/** Encrypt n plaintext bytes; the records wait in kh_tls_conn_output().
 * @return 0 or a negative st_err. */
ST_MUST_CHECK int kh_tls_conn_write(kh_tls_conn_t *tc, const uint8_t *plain, size_t n);
/** Take the ciphertext waiting to be sent (owned by the caller, free()) or
 * NULL/0 when there is none. @return 0 or ST_E_NOMEM. */
ST_MUST_CHECK int kh_tls_conn_output(kh_tls_conn_t *tc, uint8_t **out, size_t *out_len);
/** Whether the handshake finished. */
bool kh_tls_conn_is_ready(const kh_tls_conn_t *tc);
/** After the handshake: "User:<subject DN, RFC 2253>" of a verified client
 * certificate (Kafka's DefaultKafkaPrincipalBuilder), else NULL. Borrowed. */
const char *kh_tls_conn_principal(const kh_tls_conn_t *tc);
/** Why the session failed (static or owned by tc). */
const char *kh_tls_conn_error(const kh_tls_conn_t *tc);
/** Protocol and cipher in use ("TLSv1.3 TLS_AES_256_GCM_SHA384"). */
const char *kh_tls_conn_describe(const kh_tls_conn_t *tc, char *buf, size_t len);

#endif
