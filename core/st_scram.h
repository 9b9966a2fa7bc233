/* st_scram.h - SCRAM (RFC 5802, RFC 7677) arithmetic and message parsing,
 * pure functions over caller buffers: no I/O, no state, no allocation.
 * Data path: kafka/kh_sasl.c parses a client's SCRAM messages here and checks
 * its proof against the stored keys of a user (core/meta_users.c); PLAIN
 * logins and the admin API's HTTP Basic derive the stored key from the
 * password with st_scram_derive() and compare it in constant time.
 * Invariants: 1. the server keeps StoredKey and ServerKey only, never the
 *                password nor the salted password;
 *             2. every comparison of secret bytes is constant time
 *                (st_scram_ct_eq);
 *             3. the parsers never read outside [msg, msg + len) whatever
 *                the bytes are (fuzzed: tests/fuzz/scram_fuzz.c). */
#ifndef ST_SCRAM_H
#define ST_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/st_err.h"

/* Kafka's ScramMechanism enum (AlterUserScramCredentials' int8). */
#define ST_SCRAM_SHA_256 1
#define ST_SCRAM_SHA_512 2

#define ST_SCRAM_HASH_MAX       64    /* bytes of the largest digest (SHA-512) */
#define ST_SCRAM_SALT_MAX       64    /* bytes of salt accepted and stored */
#define ST_SCRAM_MIN_ITERATIONS 4096  /* Kafka's minimum (RFC 7677 recommends 4096+) */
#define ST_SCRAM_MAX_ITERATIONS 16384 /* Kafka's maximum */
#define ST_SCRAM_USER_MAX       256   /* bytes of a user name */
#define ST_SCRAM_NONCE_MAX      256   /* bytes of a client nonce accepted */

/** The mechanism's SASL name ("SCRAM-SHA-256"), or NULL for an unknown id. */
const char *st_scram_mech_name(int mech);
/** Mechanism id of a SASL name (len bytes), or 0 when unknown. */
int st_scram_mech_of(const char *name, size_t len);
/** Digest length in bytes (32 or 64), or 0 for an unknown mechanism. */
size_t st_scram_hash_len(int mech);

/** SaltedPassword = Hi(password, salt, iterations) (PBKDF2-HMAC).
 * @param out  st_scram_hash_len(mech) bytes.
 * @return 0 or ST_E_INVAL. @thread any @blocking CPU: ~1 ms per 4096 iterations */
ST_MUST_CHECK int st_scram_salted_password(int mech,
                                           const char *password,
                                           size_t password_len,
                                           const uint8_t *salt,
                                           size_t salt_len,
                                           int iterations,
                                           uint8_t *out);
/** StoredKey = H(HMAC(salted, "Client Key")), ServerKey = HMAC(salted, "Server Key").
 * @param salted  The salted password (normally st_scram_hash_len(mech) bytes,
 *                as AlterUserScramCredentials carries it).
 * @param stored_key, server_key  st_scram_hash_len(mech) bytes each. */
ST_MUST_CHECK int st_scram_keys(
    int mech, const uint8_t *salted, size_t salted_len, uint8_t *stored_key, uint8_t *server_key);
/** Both keys straight from a password (salted password wiped after use). */
ST_MUST_CHECK int st_scram_derive(int mech,
                                  const char *password,
                                  size_t password_len,
                                  const uint8_t *salt,
                                  size_t salt_len,
                                  int iterations,
                                  uint8_t *stored_key,
                                  uint8_t *server_key);
/** HMAC(key, msg) with the mechanism's hash; out gets st_scram_hash_len bytes. */
ST_MUST_CHECK int st_scram_hmac(
    int mech, const uint8_t *key, size_t key_len, const void *msg, size_t msg_len, uint8_t *out);
/** Server side of the final check: ClientKey = proof XOR HMAC(StoredKey,
 * auth_message); true when H(ClientKey) == stored_key (constant time). */
bool st_scram_verify_proof(int mech,
                           const uint8_t *stored_key,
                           const char *auth_message,
                           size_t auth_len,
                           const uint8_t *proof,
                           size_t proof_len);
/** Constant-time equality of n bytes. */
bool st_scram_ct_eq(const void *a, const void *b, size_t n);

/** Standard base64 with padding. @param out  4 * ((n + 2) / 3) + 1 bytes
 * (NUL-terminated). @return the encoded length. */
size_t st_b64_encode(const uint8_t *in, size_t n, char *out);
/** Strict standard base64 (padding required, no blanks).
 * @return the decoded length, or ST_E_MALFORMED / ST_E_TOO_LARGE (cap). */
int st_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* ---- Messages (RFC 5802 section 7) ---- */

/* A parsed client-first-message. Pointers borrow the parsed message. */
typedef struct {
    const char *gs2_header; /* "n,," or "y,,": c= of the final message is its base64 */
    size_t gs2_len;
    const char *bare; /* client-first-message-bare: part of AuthMessage */
    size_t bare_len;
    const char *nonce; /* printable, no ',' */
    size_t nonce_len;
    char
        user[ST_SCRAM_USER_MAX + 1]; /* decoded saslname (=2C -> ',', =3D -> '='), NUL-terminated */
    size_t user_len;
    bool has_authzid; /* a= was given (Kafka: must equal the user) */
    char authzid[ST_SCRAM_USER_MAX + 1];
    bool has_extensions; /* attributes after r= (tokenauth=...): not supported */
} st_scram_client_first_t;

/* A parsed client-final-message. */
typedef struct {
    const char *channel_binding; /* the c= value (base64 of the gs2 header) */
    size_t channel_binding_len;
    const char *nonce; /* the r= value: client + server nonce */
    size_t nonce_len;
    size_t without_proof_len;         /* bytes of client-final-message-without-proof */
    uint8_t proof[ST_SCRAM_HASH_MAX]; /* decoded p= */
    size_t proof_len;
} st_scram_client_final_t;

/** Parse a client-first-message. Channel binding ("p=") is refused.
 * @return 0 or ST_E_MALFORMED. @thread any */
ST_MUST_CHECK int
st_scram_parse_client_first(const char *msg, size_t len, st_scram_client_first_t *out);
/** Parse a client-final-message. @return 0 or ST_E_MALFORMED. */
ST_MUST_CHECK int
st_scram_parse_client_final(const char *msg, size_t len, st_scram_client_final_t *out);

/** Parse a PLAIN message (RFC 4616: [authzid] NUL authcid NUL passwd).
 * Pointers borrow msg. @return 0 or ST_E_MALFORMED (empty user or password,
 * wrong NUL count). */
ST_MUST_CHECK int st_sasl_parse_plain(const char *msg,
                                      size_t len,
                                      const char **authzid,
                                      size_t *authzid_len,
                                      const char **user,
                                      size_t *user_len,
                                      const char **password,
                                      size_t *password_len);

#endif
