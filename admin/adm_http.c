/* adm_http.c - HTTP/1.1 request parser and response formatting of the admin API.
 * Data path: adm_server reads bytes from an admin connection -> adm_http_parse()
 * (here) cuts one request out of the buffer or says why it is refused ->
 * adm_route answers -> adm_http_format() (here) writes the response.
 * Invariants: 1. the parser reads only buf[0, len) and allocates nothing;
 *             2. a request is complete only when its head ended and all of its
 *                Content-Length body is in the buffer;
 *             3. anything we do not understand is refused with a 4xx/5xx and
 *                the connection closes (no guessing at message boundaries):
 *                Transfer-Encoding (501), folded headers, bad Content-Length. */
#include "admin/adm_int.h"

#include <string.h>
#include <strings.h>

/* tchar of RFC 9110: the characters of methods and header names. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool adm_str_eq(adm_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static bool str_ieq(adm_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

static int refuse(adm_http_req_t *out, int status, const char *why)
{
    out->error_status = status;
    out->error_why = why;
    return ST_E_MALFORMED;
}

/* Does the Connection header list `token` (comma-separated, any case)? */
static bool has_token(adm_str_t v, const char *token)
{
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t start = i;
        while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        adm_str_t t = {v.p + start, i - start};
        if (t.len && str_ieq(t, token))
            return true;
    }
    return false;
}

/* Next line of [p, end): returns its length without CR LF and sets *next,
 * or -1 when no LF is there yet. A bare CR inside a line is refused later. */
static long line_at(const char *p, const char *end, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf)
        return -1;
    *next = lf + 1;
    const char *e = lf;
    if (e > p && e[-1] == '\r')
        e--;
    return (long)(e - p);
}

static int parse_request_line(const char *p, size_t n, adm_http_req_t *out)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= 16 || i >= n || p[i] != ' ')
        return refuse(out, 400, "malformed request line (method)");
    out->method = (adm_str_t){p, i};
    size_t t0 = ++i;
    while (i < n && p[i] != ' ') {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f)
            return refuse(out, 400, "malformed request line (target)");
        i++;
    }
    if (i == t0 || i >= n)
        return refuse(out, 400, "malformed request line (target)");
    if (i - t0 > ADM_HTTP_MAX_TARGET)
        return refuse(out, 400, "request target too long");
    out->target = (adm_str_t){p + t0, i - t0};
    if (p[t0] != '/')
        return refuse(out, 400, "request target must be a path (origin-form)");
    const char *q = memchr(out->target.p, '?', out->target.len);
    out->path = (adm_str_t){out->target.p, q ? (size_t)(q - out->target.p) : out->target.len};
    out->query = q ? (adm_str_t){q + 1, out->target.len - out->path.len - 1} : (adm_str_t){q, 0};
    adm_str_t v = {p + i + 1, n - i - 1};
    if (v.len != 8 || memcmp(v.p, "HTTP/", 5) != 0 || v.p[6] != '.' || v.p[5] < '0' ||
        v.p[5] > '9' || v.p[7] < '0' || v.p[7] > '9')
        return refuse(out, 400, "malformed request line (version)");
    if (v.p[5] != '1')
        return refuse(out, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    out->version_minor = v.p[7] - '0';
    out->is_keep_alive = out->version_minor >= 1;
    return 0;
}

/* Refuse early a buffer that cannot become a request, instead of waiting
 * for ADM_HTTP_MAX_HEAD bytes of garbage. */
static bool bad_prefix(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ')
            return i == 0;
        if (!is_tchar((unsigned char)p[i]))
            return true;
    }
    return false;
}

static int parse_content_length(adm_str_t v, uint64_t *out)
{
    if (v.len == 0 || v.len > 18)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(v.p[i] - '0');
    }
    *out = x;
    return 0;
}

int adm_http_parse(const char *buf, size_t len, adm_http_req_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = buf, *end = buf + len;
    /* RFC 9112 2.2: ignore empty lines before the request line. */
    while (p < end && (*p == '\r' || *p == '\n') && p - buf < 16)
        p++;
    const char *next;
    long n = line_at(p, end, &next);
    if (n < 0) {
        size_t have = (size_t)(end - p);
        if (bad_prefix(p, have < 16 ? have : 16))
            return refuse(out, 400, "not an HTTP request");
        return len >= ADM_HTTP_MAX_HEAD ? refuse(out, 431, "request head too large") : ST_E_AGAIN;
    }
    if (memchr(p, '\r', (size_t)n) || memchr(p, '\0', (size_t)n))
        return refuse(out, 400, "control character in request line");
    int rc = parse_request_line(p, (size_t)n, out);
    if (rc != 0)
        return rc;
    uint64_t content_length = 0;
    bool has_length = false;
    for (p = next;;) {
        n = line_at(p, end, &next);
        if (n < 0)
            return len >= ADM_HTTP_MAX_HEAD ? refuse(out, 431, "request head too large")
                                            : ST_E_AGAIN;
        if ((size_t)(next - buf) > ADM_HTTP_MAX_HEAD)
            return refuse(out, 431, "request head too large");
        if (n == 0)
            break;
        if (*p == ' ' || *p == '\t')
            return refuse(out, 400, "folded header lines are not supported");
        if (++out->n_headers > ADM_HTTP_MAX_HEADERS)
            return refuse(out, 431, "too many header fields");
        size_t i = 0;
        while (i < (size_t)n && is_tchar((unsigned char)p[i]))
            i++;
        if (i == 0 || i >= (size_t)n || p[i] != ':')
            return refuse(out, 400, "malformed header field");
        adm_str_t name = {p, i};
        i++;
        while (i < (size_t)n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t vend = (size_t)n;
        while (vend > i && (p[vend - 1] == ' ' || p[vend - 1] == '\t'))
            vend--;
        for (size_t j = i; j < vend; j++) {
            unsigned char c = (unsigned char)p[j];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return refuse(out, 400, "control character in header value");
        }
        adm_str_t value = {p + i, vend - i};
        if (str_ieq(name, "content-length")) {
            uint64_t cl;
            if (parse_content_length(value, &cl) != 0)
                return refuse(out, 400, "invalid Content-Length");
            if (has_length && cl != content_length)
                return refuse(out, 400, "conflicting Content-Length fields");
            has_length = true;
            content_length = cl;
        } else if (str_ieq(name, "transfer-encoding")) {
            return refuse(out, 501, "Transfer-Encoding is not supported; send Content-Length");
        } else if (str_ieq(name, "connection")) {
            if (has_token(value, "close"))
                out->is_keep_alive = false;
            else if (has_token(value, "keep-alive"))
                out->is_keep_alive = true;
        } else if (str_ieq(name, "authorization")) {
            out->authorization = value;
        } else if (str_ieq(name, "content-type")) {
            out->content_type = value;
        }
        p = next;
    }
    if (content_length > ADM_HTTP_MAX_BODY)
        return refuse(out, 413, "request body too large");
    size_t head = (size_t)(next - buf);
    if (len - head < content_length)
        return ST_E_AGAIN;
    out->body = next;
    out->body_len = (size_t)content_length;
    out->total_len = head + (size_t)content_length;
    return 0;
}

/* ---- Responses ---- */

const char *adm_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

void adm_http_format(st_mtext_t *t,
                     int status,
                     const char *content_type,
                     const char *extra_headers,
                     const char *body,
                     size_t body_len,
                     bool is_keep_alive)
{
    st_mtext_printf(t,
                    "HTTP/1.1 %d %s\r\nServer: strata/%s\r\nContent-Type: %s\r\n"
                    "Content-Length: %zu\r\nCache-Control: no-store\r\n%s%s\r\n",
                    status, adm_http_reason(status), STRATA_VERSION, content_type, body_len,
                    is_keep_alive ? "" : "Connection: close\r\n",
                    extra_headers ? extra_headers : "");
    if (t->is_oom || body_len == 0)
        return;
    /* The body may hold NUL bytes: copy it rather than printf it. */
    st_mtext_printf(t, "%*s", (int)body_len, "");
    if (!t->is_oom)
        memcpy(t->p + t->len - body_len, body, body_len);
}
