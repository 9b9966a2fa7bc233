/* obj_xml.c - just enough XML for S3 replies and request bodies.
 * Data path: obj_s3.c reads ListObjectsV2 / CreateMultipartUpload /
 * CompleteMultipartUpload / DeleteObjects replies and error bodies with
 * obj__xml_next() + obj__xml_text(), and escapes keys into DeleteObjects and
 * CompleteMultipartUpload bodies with obj__xml_escape().
 * Invariants: 1. matching ignores namespaces and attributes (s3rver, MinIO and
 *                AWS differ there) and never reads past `end`;
 *             2. entity decoding covers the five XML entities and numeric
 *                character references; anything else is kept verbatim. */
#include <stdlib.h>
#include <string.h>

#include "tiering/obj_int.h"

bool obj__xml_next(const char **pp, const char *end, const char *tag, const char **v, size_t *vn)
{
    size_t tl = strlen(tag);
    const char *p = *pp;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt || (size_t)(end - lt) < tl + 2)
            return false;
        if (!strncmp(lt + 1, tag, tl) &&
            (lt[tl + 1] == '>' || lt[tl + 1] == ' ' || lt[tl + 1] == '/')) {
            const char *gt = memchr(lt, '>', (size_t)(end - lt));
            if (!gt)
                return false;
            if (gt[-1] == '/') { /* <tag/> */
                *v = gt;
                *vn = 0;
                *pp = gt + 1;
                return true;
            }
            const char *q = gt + 1;
            while (q < end) {
                const char *c = memchr(q, '<', (size_t)(end - q));
                if (!c || (size_t)(end - c) < tl + 3)
                    return false;
                if (c[1] == '/' && !strncmp(c + 2, tag, tl) && c[tl + 2] == '>') {
                    *v = gt + 1;
                    *vn = (size_t)(c - (gt + 1));
                    *pp = c + tl + 3;
                    return true;
                }
                q = c + 1;
            }
            return false;
        }
        p = lt + 1;
    }
    return false;
}

static void put_utf8(char **o, unsigned long cp)
{
    char *p = *o;
    if (cp < 0x80) {
        *p++ = (char)cp;
    } else if (cp < 0x800) {
        *p++ = (char)(0xC0 | (cp >> 6));
        *p++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *p++ = (char)(0xE0 | (cp >> 12));
        *p++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *p++ = (char)(0xF0 | (cp >> 18));
        *p++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *p++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *p++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = p;
}

char *obj__xml_text(const char *v, size_t n)
{
    char *o = malloc(n + 1), *w = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n;) {
        if (v[i] != '&') {
            *w++ = v[i++];
            continue;
        }
        const char *semi = memchr(v + i, ';', n - i);
        size_t el = semi ? (size_t)(semi - (v + i)) + 1 : 0;
        static const struct {
            const char *e;
            char c;
        } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        for (size_t k = 0; semi && k < sizeof ents / sizeof ents[0]; k++) {
            if (el == strlen(ents[k].e) && !strncmp(v + i, ents[k].e, el)) {
                *w++ = ents[k].c;
                done = true;
            }
        }
        if (!done && semi && el > 3 && v[i + 1] == '#') {
            bool hex = v[i + 2] == 'x' || v[i + 2] == 'X';
            unsigned long cp = strtoul(v + i + (hex ? 3 : 2), NULL, hex ? 16 : 10);
            if (cp > 0 && cp <= 0x10FFFF) {
                put_utf8(&w, cp);
                done = true;
            }
        }
        if (done) {
            i += el;
        } else {
            *w++ = v[i++];
        }
    }
    *w = '\0';
    return o;
}

int obj__xml_escape(obj__str_t *o, const char *s)
{
    int rc = 0;
    for (; *s && !rc; s++) {
        switch (*s) {
        case '&':
            rc = obj__str_add(o, "&amp;", 5);
            break;
        case '<':
            rc = obj__str_add(o, "&lt;", 4);
            break;
        case '>':
            rc = obj__str_add(o, "&gt;", 4);
            break;
        case '"':
            rc = obj__str_add(o, "&quot;", 6);
            break;
        case '\'':
            rc = obj__str_add(o, "&apos;", 6);
            break;
        default:
            rc = obj__str_add(o, s, 1);
        }
    }
    return rc;
}
