/* cli_io.c - `strata topic produce` and `strata topic consume`.
 * Data path: produce reads stdin, cuts it into records with the -f format (default one
 * record per line), and sends them with a librdkafka producer, printing each delivery
 * report; consume assigns partitions at offsets resolved from -o (or joins a group with -g)
 * and prints each record as JSON or with a -f format (cli_record_print_*, which
 * `strata archive cat` shares).
 * Invariants: 1. produce exits 0 only if every record was acknowledged;
 *             2. consume without -g never commits offsets; with -o X:end it stops at the
 *                high watermarks read when it started. */
#include "tools/cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLI_MAX_HEADERS 64
#define CLI_MAX_PARTS   4096

static volatile sig_atomic_t cli_stop;

static void on_signal(int sig)
{
    cli_stop = 1;
}

/* ---- Formats: literals and %k %v %p %t ... fields ---- */

/* Compile a format (already unescaped) into literals and fields. Used by both commands;
 * `fields` lists the accepted field letters. @return 0 or -1 after printing. */
/* Compile the timestamp field at r ("%d{...}", rpk's modifiers): {unix_sec}, {unix_milli}
 * (the default), {unix_micro}, {unix_nano}, {strftime[FMT]} or {go[LAYOUT]} (UTC; FMT
 * and LAYOUT are copied to f->tbuf, they may hold '%' and '}'). @return the bytes used from r, or
 * -1 after a usage error. */
static int compile_time_field(const char *r, cli_fmt_t *f)
{
    static const struct {
        const char *name;
        char enc;
    } units[] = {{"unix_sec}", 's'}, {"unix_milli}", 0}, {"unix_micro}", 'u'}, {"unix_nano}", 'n'}};
    cli_fmt_item_t *it = &f->items[f->n];
    *it = (cli_fmt_item_t){'d', 0, NULL, 0};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (!strncmp(r + 3, units[i].name, strlen(units[i].name))) {
            it->enc = units[i].enc;
            f->n++;
            return 3 + (int)strlen(units[i].name);
        }
    bool is_go = !strncmp(r + 3, "go[", 3);
    /* start is formed only once the prefix matched: it stays inside the string */
    const char *start = is_go ? r + 6 : !strncmp(r + 3, "strftime[", 9) ? r + 12 : NULL;
    const char *end = start ? strstr(start, "]}") : NULL;
    if (!end)
        return cli_usage_err("bad timestamp format '%.24s': use %%%c{unix_sec}, {unix_milli}, "
                             "{unix_micro}, {unix_nano}, {strftime[FMT]} or {go[LAYOUT]}",
                             r, r[1]),
               -1;
    size_t len = (size_t)(end - start);
    if (!len || f->tbuf_used + len + 1 > sizeof(f->tbuf))
        return cli_usage_err("bad timestamp format '%.24s': empty or too long", r), -1;
    memcpy(f->tbuf + f->tbuf_used, start, len);
    f->tbuf[f->tbuf_used + len] = '\0';
    *it = (cli_fmt_item_t){'d', is_go ? 'g' : 'f', f->tbuf + f->tbuf_used, len};
    f->tbuf_used += len + 1;
    f->n++;
    return (int)(end + 2 - r);
}

/* Print a UTC time with a Go reference layout (rpk's %d{go[...]}: "2006-01-02T15:04:05.000Z07:00"):
 * Go's tokens, longest first; everything else is literal. ms: the milliseconds. */
static void put_go_time(const char *l, const struct tm *tm, int ms)
{
    static const char *const mon[] = {"January",   "February", "March",    "April",
                                      "May",       "June",     "July",     "August",
                                      "September", "October",  "November", "December"};
    static const char *const wday[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                       "Thursday", "Friday", "Saturday"};
    static const char *const zones[] = {"-07:00:00", "-07:00", "-0700", "-07",
                                        "Z07:00:00", "Z07:00", "Z0700", "Z07"};
    static const char *const utc[] = {"+00:00:00", "+00:00", "+0000", "+00", "Z", "Z", "Z", "Z"};
    int h12 = tm->tm_hour % 12 ? tm->tm_hour % 12 : 12;
    while (*l) {
        size_t z = 0;
        while (z < 8 && strncmp(l, zones[z], strlen(zones[z])))
            z++;
        if (z < 8) {
            fputs(utc[z], stdout);
            l += strlen(zones[z]);
        } else if (!strncmp(l, "Jan", 3)) {
            bool full = !strncmp(l, "January", 7);
            printf("%.*s", full ? 9 : 3, mon[tm->tm_mon]);
            l += full ? 7 : 3;
        } else if (!strncmp(l, "Mon", 3)) {
            bool full = !strncmp(l, "Monday", 6);
            printf("%.*s", full ? 9 : 3, wday[tm->tm_wday]);
            l += full ? 6 : 3;
        } else if (!strncmp(l, "MST", 3)) {
            fputs("UTC", stdout);
            l += 3;
        } else if (!strncmp(l, "2006", 4)) {
            printf("%04d", tm->tm_year + 1900);
            l += 4;
        } else if (!strncmp(l, "002", 3) || !strncmp(l, "__2", 3)) {
            printf(l[0] == '0' ? "%03d" : "%3d", tm->tm_yday + 1);
            l += 3;
        } else if (!strncmp(l, "_2", 2)) {
            printf("%2d", tm->tm_mday);
            l += 2;
        } else if (!strncmp(l, "15", 2)) {
            printf("%02d", tm->tm_hour);
            l += 2;
        } else if (l[0] == '0' && l[1] >= '1' && l[1] <= '6') {
            int v[] = {tm->tm_mon + 1, tm->tm_mday, h12, tm->tm_min, tm->tm_sec, tm->tm_year % 100};
            printf("%02d", v[l[1] - '1']);
            l += 2;
        } else if (*l == '1' || *l == '2' || *l == '3' || *l == '4' || *l == '5') {
            int v[] = {tm->tm_mon + 1, tm->tm_mday, h12, tm->tm_min, tm->tm_sec};
            printf("%d", v[*l - '1']);
            l++;
        } else if (!strncmp(l, "PM", 2) || !strncmp(l, "pm", 2)) {
            fputs(tm->tm_hour >= 12 ? (*l == 'P' ? "PM" : "pm") : (*l == 'P' ? "AM" : "am"),
                  stdout);
            l += 2;
        } else if ((*l == '.' || *l == ',') && (l[1] == '0' || l[1] == '9')) {
            size_t n = 1; /* .000 (fixed digits) or .999 (trailing zeros trimmed) */
            while (l[n] == l[1])
                n++;
            if (l[n] >= '0' && l[n] <= '9') { /* not a fraction: literal */
                putchar(*l++);
                continue;
            }
            char digits[16];
            snprintf(digits, sizeof(digits), "%03d000000", ms % 1000);
            size_t d = n - 1 > 9 ? 9 : n - 1;
            if (l[1] == '9')
                while (d && digits[d - 1] == '0')
                    d--;
            if (d)
                printf("%c%.*s", *l, (int)d, digits);
            l += n;
        } else {
            putchar(*l++);
        }
    }
}

/* Print a timestamp (epoch ms) as compiled by compile_time_field. */
static void put_time(int64_t ms, const cli_fmt_item_t *it)
{
    if (it->enc == 'g') {
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        if (gmtime_r(&secs, &tm))
            put_go_time(it->lit, &tm, (int)(ms - (int64_t)secs * 1000));
    } else if (it->enc == 'f') {
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        char out[512];
        /* The user's own format, as rpk's %d{strftime[...]}: strftime reads only tm. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        size_t n = gmtime_r(&secs, &tm) ? strftime(out, sizeof(out), it->lit, &tm) : 0;
#pragma GCC diagnostic pop
        fwrite(out, 1, n, stdout);
    } else if (it->enc == 's') {
        printf("%" PRId64, ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    } else {
        printf("%" PRId64, it->enc == 'u' ? ms * 1000 : it->enc == 'n' ? ms * 1000000 : ms);
    }
}

int cli_fmt_compile(char *s, const char *fields, cli_fmt_t *f)
{
    memset(f, 0, sizeof(*f));
    char *w = s, *lit_start = s;
    for (char *r = s; *r; r++) {
        if (*r != '%') {
            *w++ = *r;
            continue;
        }
        if (r[1] == '%') {
            *w++ = '%';
            r++;
            continue;
        }
        if (!r[1] || !strchr(fields, r[1]))
            return cli_usage_err("bad format field '%%%c': use %s", r[1] ? r[1] : ' ', fields), -1;
        if (f->n + 2 > 64)
            return cli_usage_err("format too long"), -1;
        if (w > lit_start)
            f->items[f->n++] = (cli_fmt_item_t){0, 0, lit_start, (size_t)(w - lit_start)};
        if ((r[1] == 'd' || r[1] == 'T') && r[2] == '{') { /* %d{unix_sec}, %d{strftime[%F]} */
            int used = compile_time_field(r, f);
            if (used < 0)
                return -1;
            r += used - 1;
            lit_start = w;
            continue;
        }
        char enc = 0;
        if ((r[1] == 'k' || r[1] == 'v') && r[2] == '{') { /* %v{hex}, %k{base64} */
            if (!strncmp(r + 3, "hex}", 4))
                enc = 'x';
            else if (!strncmp(r + 3, "base64}", 7))
                enc = 'b';
            else if (!strncmp(r + 3, "text}", 5))
                enc = 't';
            else
                return cli_usage_err("bad format encoding '%%%c%.10s': use {text}, {hex} or "
                                     "{base64}",
                                     r[1], r + 2),
                       -1;
        }
        f->items[f->n++] = (cli_fmt_item_t){r[1], enc == 't' ? 0 : enc, NULL, 0};
        r += 1 + (enc == 'x' ? 5 : enc == 'b' ? 8 : enc == 't' ? 6 : 0);
        lit_start = w;
    }
    if (w > lit_start)
        f->items[f->n++] = (cli_fmt_item_t){0, 0, lit_start, (size_t)(w - lit_start)};
    return 0;
}

/* Write bytes raw, as lowercase hex or as base64 (RFC 4648, padded). */
static void put_encoded(const char *p, size_t len, char enc)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *u = (const unsigned char *)p;
    if (enc == 'x') {
        for (size_t i = 0; i < len; i++)
            printf("%02x", u[i]);
    } else if (enc == 'b') {
        for (size_t i = 0; i < len; i += 3) {
            uint32_t v = (uint32_t)u[i] << 16 | (i + 1 < len ? (uint32_t)u[i + 1] << 8 : 0) |
                         (i + 2 < len ? u[i + 2] : 0);
            putchar(b64[v >> 18 & 63]);
            putchar(b64[v >> 12 & 63]);
            putchar(i + 1 < len ? b64[v >> 6 & 63] : '=');
            putchar(i + 2 < len ? b64[v & 63] : '=');
        }
    } else {
        fwrite(p, 1, len, stdout);
    }
}

int cli_record_format_arg(char *arg, cli_fmt_t *f, bool *has_fmt)
{
    if (!strcmp(arg, "json") || !strcmp(arg, "text")) {
        if (*has_fmt || (cli_opts.format && strcmp(cli_opts.format, arg)))
            return cli_usage_err("give one -f/--format (text, json or a record format)");
        cli_opts.format = !strcmp(arg, "json") ? "json" : "text";
        cli_opts.is_json = !strcmp(arg, "json");
        return 0;
    }
    if (*has_fmt || cli_opts.format)
        return cli_usage_err("give one -f/--format (text, json or a record format)");
    cli_unescape(arg);
    if (cli_fmt_compile(arg, "tkvopdThHKV", f))
        return CLI_EXIT_USAGE;
    bool has_field = false;
    for (int i = 0; i < f->n; i++)
        has_field |= f->items[i].field != 0;
    if (!has_field)
        return cli_usage_err("bad --format '%s': use text, json or a record format with %%v, "
                             "%%k ... fields such as '%%k %%v\\n'",
                             arg);
    *has_fmt = true;
    return 0;
}

const cli_fmt_t *cli_record_format(cli_fmt_t *f, bool has_fmt, bool default_json)
{
    static char text_fmt[] = "%v\n"; /* static: f points into it */
    if (has_fmt)
        return f;
    bool json = cli_opts.format ? cli_opts.is_json : default_json;
    if (json)
        return NULL;
    cli_fmt_compile(text_fmt, "v", f);
    return f;
}

/* ---- produce ---- */

static const char produce_help[] =
    "Usage: strata topic produce TOPIC [flags] < input\n"
    "Produce records read from stdin, one per line by default.\n\n"
    "Flags:\n"
    "  -k, --key KEY          key of every record\n"
    "  -H, --header K=V       header on every record (repeatable)\n"
    "  -p, --partition N      partition (default: by key hash, or sticky)\n"
    "  -z, --compression C    none, gzip, snappy, lz4 or zstd (default none)\n"
    "      --acks A           all (-1), 1 or 0 (default all)\n"
    "  -f, --format FMT       how to cut stdin into records (default '%v\\n'): %k key,\n"
    "                         %v value, %p partition, %t timestamp ms; \\n \\t escapes.\n"
    "                         'text' and 'json' choose the output instead (as everywhere)\n"
    "  -Z, --tombstone        produce an empty value as null (a tombstone: compaction\n"
    "                         removes the key)\n"
    "  -q, --quiet            do not print a line per record\n\n"
    "Output: one line per record: partition and offset (JSON with --format json).\n\n"
    "Examples:\n"
    "  echo hello | strata topic produce orders\n"
    "  printf 'k1 v1\\nk2 v2\\n' | strata topic produce orders -f '%k %v\\n'\n"
    "  strata topic produce orders -k user-7 -H source=cli -z zstd < records.txt\n"
    "  echo 'user-7 ' | strata topic produce users -f '%k %v\\n' -Z   # delete user-7\n";

typedef struct {
    int64_t n_ok;
    int64_t n_failed;
    bool is_quiet;
} produce_state_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    produce_state_t *st = opaque;
    if (m->err) {
        st->n_failed++;
        cli_err("record not produced to %s: %s", rd_kafka_topic_name(m->rkt),
                rd_kafka_err2str(m->err));
        return;
    }
    st->n_ok++;
    if (st->is_quiet)
        return;
    if (cli_opts.is_json) {
        fputs("{\"topic\":", stdout);
        cli_json_cstr(stdout, rd_kafka_topic_name(m->rkt));
        printf(",\"partition\":%d,\"offset\":%" PRId64 "}\n", (int)m->partition, m->offset);
    } else {
        printf("Produced to partition %d at offset %" PRId64 "\n", (int)m->partition, m->offset);
    }
}

typedef struct {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
    int32_t partition;
    int64_t ts_ms;
} rec_t;

/* Parse one record (without its delimiter) with the compiled format. @return 0 or -1. */
static int fmt_parse(const cli_fmt_t *f, const char *p, size_t len, rec_t *r)
{
    const char *end = p + len;
    int n = f->n;
    if (n && !f->items[n - 1].field && f->delim)
        n--; /* the delimiter was cut off already */
    for (int i = 0; i < n; i++) {
        const cli_fmt_item_t *it = &f->items[i];
        if (!it->field) {
            if ((size_t)(end - p) < it->lit_len || memcmp(p, it->lit, it->lit_len))
                return -1;
            p += it->lit_len;
            continue;
        }
        const char *stop = end;
        if (i + 1 < n) {
            const cli_fmt_item_t *nx = &f->items[i + 1];
            stop = memmem(p, (size_t)(end - p), nx->lit, nx->lit_len);
            if (!stop)
                return -1;
        }
        size_t fl = (size_t)(stop - p);
        char num[32];
        int64_t v;
        switch (it->field) {
        case 'k':
            r->key = p;
            r->key_len = fl;
            break;
        case 'v':
            r->val = p;
            r->val_len = fl;
            break;
        case 'p':
        case 't':
            if (fl == 0 || fl >= sizeof(num))
                return -1;
            memcpy(num, p, fl);
            num[fl] = '\0';
            if (cli_parse_i64(num, 0, it->field == 'p' ? INT32_MAX : INT64_MAX, &v))
                return -1;
            if (it->field == 'p')
                r->partition = (int32_t)v;
            else
                r->ts_ms = v;
            break;
        }
        p = stop;
    }
    return p == end ? 0 : -1;
}

typedef struct {
    const char *topic;
    const char *key;
    const char *codec; /* compression.codec */
    const char *acks;  /* "-1", "0" or "1" */
    int32_t partition;
    bool is_tombstone; /* -Z: an empty value goes out as null */
    char *hk[CLI_MAX_HEADERS];
    char *hv[CLI_MAX_HEADERS];
    int n_headers;
} produce_opts_t;

static int produce_one(rd_kafka_t *rk, const produce_opts_t *o, const rec_t *r)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (o->n_headers) {
        hdrs = rd_kafka_headers_new((size_t)o->n_headers);
        for (int i = 0; i < o->n_headers; i++)
            rd_kafka_header_add(hdrs, o->hk[i], -1, o->hv[i], -1);
    }
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(r->key, r->key_len),
            RD_KAFKA_V_VALUE(o->is_tombstone && !r->val_len ? NULL : (void *)r->val, r->val_len),
            RD_KAFKA_V_PARTITION(r->partition), RD_KAFKA_V_TIMESTAMP(r->ts_ms),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 100);
            continue;
        }
        if (err) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            return cli_err("cannot produce to %s: %s", o->topic, rd_kafka_err2str(err));
        }
        break;
    }
    rd_kafka_poll(rk, 0);
    return 0;
}

/* Read stdin and produce each record cut by the format. @return 0 or CLI_EXIT_*. */
static int produce_stdin(rd_kafka_t *rk, const produce_opts_t *o, const cli_fmt_t *f)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return cli_err("out of memory");
    bool eof = false;
    int rc = 0;
    while (!rc && !cli_stop) {
        size_t start = 0;
        for (;;) {
            const char *cut = NULL;
            if (f->delim_len)
                cut = memmem(buf + start, len - start, f->delim, f->delim_len);
            size_t rec_len;
            if (cut)
                rec_len = (size_t)(cut - (buf + start));
            else if (eof && len > start)
                rec_len = len - start;
            else
                break;
            rec_t r = {
                .key = o->key, .key_len = o->key ? strlen(o->key) : 0, .partition = o->partition};
            if (fmt_parse(f, buf + start, rec_len, &r)) {
                rc = cli_err("input does not match the format: '%.*s'", (int)rec_len, buf + start);
                break;
            }
            if ((rc = produce_one(rk, o, &r)))
                break;
            start += rec_len + (cut ? f->delim_len : 0);
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (eof || rc)
            break;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = cli_err("out of memory: record larger than %zu bytes", cap);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
        if (n < 0) {
            if (cli_stop)
                break;
            rc = cli_err("cannot read stdin");
        } else if (n == 0) {
            eof = true;
        } else {
            len += (size_t)n;
        }
        rd_kafka_poll(rk, 0);
    }
    free(buf);
    return rc;
}

/* Compile and check a produce format (NULL: one record per line). @return 0 or CLI_EXIT_USAGE. */
static int produce_format(char *format, cli_fmt_t *f)
{
    static char deffmt[] = "%v\\n"; /* static: f points into it after we return */
    char *fs = format ? format : deffmt;
    cli_unescape(fs);
    if (cli_fmt_compile(fs, "kvpt", f))
        return CLI_EXIT_USAGE;
    for (int i = 0; i < f->n; i++)
        if (f->items[i].enc)
            return cli_usage_err("bad --format: {hex} and {base64} apply to consume output");
    if (!f->n || f->items[f->n - 1].field)
        return cli_usage_err("bad --format: it must end with a delimiter such as \\n");
    f->delim = f->items[f->n - 1].lit;
    f->delim_len = f->items[f->n - 1].lit_len;
    for (int i = 0; i + 1 < f->n; i++)
        if (f->items[i].field && f->items[i + 1].field)
            return cli_usage_err("bad --format: two fields need text between them");
    return 0;
}

/* Create the producer, check the cluster, produce stdin, flush. @return exit code. */
static int produce_run(const produce_opts_t *o, const cli_fmt_t *f, produce_state_t *st)
{
    const char *extra[] = {"compression.codec",        o->codec, "acks", o->acks, "linger.ms", "5",
                           "allow.auto.create.topics", "true",   NULL};
    rd_kafka_conf_t *conf = cli_conf_new(extra);
    if (!conf)
        return CLI_EXIT_FAIL;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_t *rk = cli_client_from_conf(RD_KAFKA_PRODUCER, conf);
    if (!rk)
        return CLI_EXIT_FAIL;
    /* Fail fast and clearly when the cluster cannot be reached. */
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    rd_kafka_metadata_destroy(md);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = produce_stdin(rk, o, f);
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, cli_opts.timeout_ms + 30000);
    if (ferr && !rc)
        rc = cli_err("records still not delivered after the timeout: %s", rd_kafka_err2str(ferr));
    rd_kafka_destroy(rk);
    if (!rc && st->n_failed)
        rc = CLI_EXIT_FAIL;
    return rc;
}

int cli_produce(int argc, char **argv)
{
    static const struct option longs[] = {{"key", required_argument, NULL, 'k'},
                                          {"header", required_argument, NULL, 'H'},
                                          {"partition", required_argument, NULL, 'p'},
                                          {"compression", required_argument, NULL, 'z'},
                                          {"acks", required_argument, NULL, 'a'},
                                          {"format", required_argument, NULL, 'f'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"tombstone", no_argument, NULL, 'Z'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    produce_opts_t o = {.partition = RD_KAFKA_PARTITION_UA, .codec = "none", .acks = "-1"};
    char *format = NULL;
    produce_state_t st = {0};
    int64_t v;
    int c;
    while ((c = cli_getopt(argc, argv, "k:H:p:z:f:qZh", longs)) != -1) {
        switch (c) {
        case 'k':
            o.key = optarg;
            break;
        case 'H':
            if (o.n_headers == CLI_MAX_HEADERS ||
                cli_split_kv(optarg, &o.hk[o.n_headers], &o.hv[o.n_headers]))
                return cli_usage_err("bad --header '%s': use KEY=VALUE", optarg);
            o.n_headers++;
            break;
        case 'p':
            if (cli_parse_i64(optarg, 0, INT32_MAX, &v))
                return cli_usage_err("bad --partition '%s': use a partition number", optarg);
            o.partition = (int32_t)v;
            break;
        case 'z':
            if (strcmp(optarg, "none") && strcmp(optarg, "gzip") && strcmp(optarg, "snappy") &&
                strcmp(optarg, "lz4") && strcmp(optarg, "zstd"))
                return cli_usage_err("bad --compression '%s': use none, gzip, snappy, lz4 or "
                                     "zstd",
                                     optarg);
            o.codec = optarg;
            break;
        case 'a':
            if (strcmp(optarg, "all") && strcmp(optarg, "-1") && strcmp(optarg, "0") &&
                strcmp(optarg, "1"))
                return cli_usage_err("bad --acks '%s': use all, -1, 0 or 1", optarg);
            o.acks = strcmp(optarg, "all") ? optarg : "-1";
            break;
        case 'f':
            if (!strcmp(optarg, "json") || !strcmp(optarg, "text")) {
                cli_opts.format = optarg;
                cli_opts.is_json = !strcmp(optarg, "json");
                break;
            }
            if (format)
                return cli_usage_err("give one -f/--format record format");
            format = optarg;
            break;
        case 'q':
            st.is_quiet = true;
            break;
        case 'Z':
            o.is_tombstone = true;
            break;
        case 'h':
            fputs(produce_help, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != 1)
        return cli_usage_err("topic produce needs exactly one TOPIC");
    o.topic = argv[optind];
    cli_fmt_t f;
    int rc = produce_format(format, &f);
    return rc ? rc : produce_run(&o, &f, &st);
}

/* ---- consume ---- */

static const char consume_help[] =
    "Usage: strata topic consume TOPIC... [flags]\n"
    "Consume records and print them, one JSON object per record by default.\n\n"
    "Flags:\n"
    "  -o, --offset SPEC      where to start: start, end, +N (N after the start), -N (N\n"
    "                         before the end), @TIME (epoch ms, 2024-01-31, 2024-01-31T12:00:00\n"
    "                         UTC, or @-10m relative), or an exact offset (default start).\n"
    "                         START:STOP stops before STOP in each partition: :end (the\n"
    "                         current end), an offset (10:20), or a time (@T1:T2, @:T2);\n"
    "                         START: is START alone, :STOP starts at start (rpk's grammar)\n"
    "  -n, --num N            stop after N records\n"
    "  -p, --partitions LIST  comma-separated partitions (default: all)\n"
    "      --read-committed   records of committed transactions only (default)\n"
    "      --read-uncommitted also records of open and aborted transactions\n"
    "  -g, --group GROUP      consume as a member of GROUP, committing offsets; -o may only\n"
    "                         be start or end (used when the group has no offset)\n"
    "  -f, --format FMT       json (default: one JSON object per record), text (each\n"
    "                         value on its own line) or a record format: %t topic, %k key,\n"
    "                         %v value, %o offset, %p partition, %d or %T timestamp ms,\n"
    "                         %h headers (k=v,...), %H header count, %K key length,\n"
    "                         %V value length, %% percent; \\n \\t escapes; %k{hex}\n"
    "                         %v{base64}: encoded; %d{unix_sec} (also unix_milli,\n"
    "                         unix_micro, unix_nano), %d{strftime[%F %T]} or\n"
    "                         %d{go[2006-01-02T15:04:05Z07:00]}: UTC time\n"
    "      --meta-only        print each record without its key and value (JSON: sizes,\n"
    "                         header count, topic, partition, offset, timestamp)\n\n"
    "Examples:\n"
    "  strata topic consume orders -n 10\n"
    "  strata topic consume orders -o -3:end -f '%k => %v\\n'\n"
    "  strata topic consume orders -f '%d{strftime[%FT%TZ]} %H %v\\n'\n"
    "  strata topic consume orders -o @2024-01-31 -p 0\n"
    "  strata topic consume orders -g billing -o start\n";

static void print_headers_text(const cli_record_t *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        const cli_header_t *h = &r->headers[i];
        printf("%s%.*s=%.*s", i ? "," : "", (int)h->key_len, h->key, (int)h->value_len,
               h->value ? h->value : "");
    }
}

void cli_record_print_json(const cli_record_t *r)
{
    fputs("{\"topic\":", stdout);
    cli_json_cstr(stdout, r->topic);
    fputs(",\"key\":", stdout);
    cli_json_str(stdout, r->key, r->key_len);
    fputs(",\"value\":", stdout);
    cli_json_str(stdout, r->value, r->value_len);
    fputs(",\"headers\":[", stdout);
    for (size_t i = 0; i < r->n_headers; i++) {
        printf("%s{\"key\":", i ? "," : "");
        cli_json_str(stdout, r->headers[i].key, r->headers[i].key_len);
        fputs(",\"value\":", stdout);
        cli_json_str(stdout, r->headers[i].value, r->headers[i].value_len);
        putchar('}');
    }
    printf("],\"timestamp\":%" PRId64 ",\"partition\":%d,\"offset\":%" PRId64 "}\n", r->timestamp,
           (int)r->partition, r->offset);
}

void cli_record_print_fmt(const cli_fmt_t *f, const cli_record_t *r)
{
    for (int i = 0; i < f->n; i++) {
        const cli_fmt_item_t *it = &f->items[i];
        switch (it->field) {
        case 0:
            fwrite(it->lit, 1, it->lit_len, stdout);
            break;
        case 't':
            fputs(r->topic, stdout);
            break;
        case 'k':
            if (r->key)
                put_encoded(r->key, r->key_len, it->enc);
            break;
        case 'v':
            if (r->value)
                put_encoded(r->value, r->value_len, it->enc);
            break;
        case 'o':
            printf("%" PRId64, r->offset);
            break;
        case 'p':
            printf("%d", (int)r->partition);
            break;
        case 'd':
        case 'T':
            put_time(r->timestamp, it);
            break;
        case 'H':
            printf("%zu", r->n_headers);
            break;
        case 'h':
            print_headers_text(r);
            break;
        case 'K':
            printf("%zu", r->key ? r->key_len : (size_t)0);
            break;
        case 'V':
            printf("%zu", r->value ? r->value_len : (size_t)0);
            break;
        }
    }
}

/* --meta-only: one JSON object per record without its key and value. */
static void print_meta(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hs = NULL;
    size_t n_headers = !rd_kafka_message_headers(m, &hs) && hs ? rd_kafka_header_cnt(hs) : 0;
    rd_kafka_timestamp_type_t tt;
    fputs("{\"topic\":", stdout);
    cli_json_cstr(stdout, rd_kafka_topic_name(m->rkt));
    printf(",\"partition\":%d,\"offset\":%" PRId64 ",\"timestamp\":%" PRId64
           ",\"key_size\":%zu,\"value_size\":%zu,\"headers\":%zu}\n",
           (int)m->partition, m->offset, rd_kafka_message_timestamp(m, &tt),
           m->key ? m->key_len : 0, m->payload ? m->len : 0, n_headers);
}

/* Print a consumed message as JSON or with the format f (NULL: JSON). */
static void print_message(const cli_fmt_t *f, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hs = NULL;
    const char *name;
    const void *val;
    size_t size, n = 0;
    if (!rd_kafka_message_headers(m, &hs) && hs)
        while (!rd_kafka_header_get_all(hs, n, &name, &val, &size))
            n++;
    cli_header_t *h = n ? calloc(n, sizeof(*h)) : NULL;
    if (!h)
        n = 0; /* out of memory: print the record without its headers */
    for (size_t i = 0; i < n && !rd_kafka_header_get_all(hs, i, &name, &val, &size); i++)
        h[i] = (cli_header_t){name, strlen(name), val, size};
    rd_kafka_timestamp_type_t tt;
    cli_record_t r = {.topic = rd_kafka_topic_name(m->rkt),
                      .partition = m->partition,
                      .offset = m->offset,
                      .timestamp = rd_kafka_message_timestamp(m, &tt),
                      .key = m->key,
                      .key_len = m->key_len,
                      .value = m->payload,
                      .value_len = m->len,
                      .headers = h,
                      .n_headers = n};
    if (f)
        cli_record_print_fmt(f, &r);
    else
        cli_record_print_json(&r);
    free(h);
}

typedef struct {
    const char *spec;      /* start offset spec */
    bool to_end;           /* stop at `stop_spec`, resolved per partition when starting */
    const char *stop_spec; /* "end" (the current end), an offset, or @TIME (exclusive) */
    char spec_buf[2][128]; /* storage of rewritten start/stop specs */
    int64_t num;           /* records to print, 0 = no limit */
    const char *group;
    int32_t parts[CLI_MAX_PARTS];
    int n_parts;
    cli_fmt_t fmt;
    bool has_fmt;
    const cli_fmt_t *out;  /* &fmt, or NULL for JSON lines */
    const char *isolation; /* isolation.level: read_committed (default) or read_uncommitted */
    bool is_meta_only;     /* --meta-only: no key nor value */
} consume_opts_t;

/* Build the assignment: every selected partition of every topic at its resolved offset;
 * with to_end, only partitions with records before their high watermark, whose
 * watermarks go to `stop_at`. @return 0 or CLI_EXIT_*. */
static int build_assignment(rd_kafka_t *rk,
                            const rd_kafka_metadata_t *md,
                            char **topics,
                            int n_topics,
                            const consume_opts_t *o,
                            rd_kafka_topic_partition_list_t *assign,
                            rd_kafka_topic_partition_list_t *stop_at)
{
    int32_t *parts = malloc(sizeof(int32_t) * CLI_MAX_PARTS);
    int64_t *offs = malloc(sizeof(int64_t) * CLI_MAX_PARTS);
    int rc = parts && offs ? 0 : cli_err("out of memory");
    for (int ti = 0; !rc && ti < n_topics; ti++) {
        const rd_kafka_metadata_topic_t *t = cli_md_topic(md, topics[ti]);
        if (!t) {
            rc = cli_err("unknown topic '%s'", topics[ti]);
            break;
        }
        int n = 0;
        if (o->n_parts) {
            for (int i = 0; i < o->n_parts; i++) {
                if (o->parts[i] >= t->partition_cnt) {
                    rc = cli_err("unknown partition %s/%d (the topic has %d)", t->topic,
                                 (int)o->parts[i], t->partition_cnt);
                    break;
                }
                parts[n++] = o->parts[i];
            }
        } else {
            for (int i = 0; i < t->partition_cnt && n < CLI_MAX_PARTS; i++)
                parts[n++] = t->partitions[i].id;
        }
        if (rc || (rc = cli_resolve_offsets(rk, t->topic, parts, n, o->spec, offs)))
            break;
        int64_t *stops = NULL;
        if (o->to_end) {
            stops = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
            if (!stops) {
                rc = cli_err("out of memory");
                break;
            }
            rc = cli_resolve_stop_offsets(rk, t->topic, parts, n, o->stop_spec, stops);
        }
        for (int i = 0; !rc && i < n; i++) {
            if (o->to_end) {
                if (offs[i] >= stops[i])
                    continue;
                rd_kafka_topic_partition_list_add(stop_at, t->topic, parts[i])->offset = stops[i];
            }
            rd_kafka_topic_partition_list_add(assign, t->topic, parts[i])->offset = offs[i];
        }
        free(stops);
        if (rc)
            break;
    }
    free(parts);
    free(offs);
    return rc;
}

/* A partition reached its end at offset m->offset: done when that is at or past its stop.
 * @return partitions left. */
static int note_eof(rd_kafka_topic_partition_list_t *stop_at, const rd_kafka_message_t *m)
{
    int left = 0;
    for (int i = 0; i < stop_at->cnt; i++) {
        rd_kafka_topic_partition_t *p = &stop_at->elems[i];
        if (p->partition == m->partition && !strcmp(p->topic, rd_kafka_topic_name(m->rkt)) &&
            m->offset >= p->offset)
            p->offset = -1;
        if (p->offset >= 0)
            left++;
    }
    return left;
}

/* Whether m is at or after its partition's stop offset (or the partition is done). */
static bool past_stop(const rd_kafka_topic_partition_list_t *stop_at, const rd_kafka_message_t *m)
{
    for (int i = 0; i < stop_at->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &stop_at->elems[i];
        if (p->partition == m->partition && !strcmp(p->topic, rd_kafka_topic_name(m->rkt)))
            return p->offset < 0 || m->offset >= p->offset;
    }
    return true; /* not assigned with a stop: skipped at the start */
}

/* Mark a partition done once its message reaches the stop offset. @return partitions left. */
static int note_progress(rd_kafka_topic_partition_list_t *stop_at, const rd_kafka_message_t *m)
{
    int left = 0;
    for (int i = 0; i < stop_at->cnt; i++) {
        rd_kafka_topic_partition_t *p = &stop_at->elems[i];
        if (p->partition == m->partition && !strcmp(p->topic, rd_kafka_topic_name(m->rkt)) &&
            m->offset + 1 >= p->offset)
            p->offset = -1;
        if (p->offset >= 0)
            left++;
    }
    return left;
}

static int
consume_loop(rd_kafka_t *rk, const consume_opts_t *o, rd_kafka_topic_partition_list_t *stop)
{
    int64_t n = 0;
    int rc = 0;
    if (o->to_end && stop->cnt == 0)
        return 0;
    while (!cli_stop && (!o->num || n < o->num)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && o->to_end) {
            /* The end of what this consumer may read: with a transaction's markers or
             * aborted records last, no record ever reaches stop - 1. */
            int left = note_eof(stop, m);
            rd_kafka_message_destroy(m);
            if (!left)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                const char *what = rd_kafka_message_errstr(m);
                if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                    m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                    m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                    m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
                    rc = cli_err("consume failed: %s", what);
                    rd_kafka_message_destroy(m);
                    break;
                }
                if (cli_opts.is_verbose)
                    fprintf(stderr, "strata: %s\n", what);
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (o->to_end && past_stop(stop, m)) {
            /* a partition done, or a record at/after its stop (the stop was in a gap) */
            int left = note_progress(stop, m);
            rd_kafka_message_destroy(m);
            if (!left)
                break;
            continue;
        }
        if (o->is_meta_only)
            print_meta(m);
        else
            print_message(o->out, m);
        fflush(stdout);
        n++;
        int left = o->to_end ? note_progress(stop, m) : 1;
        rd_kafka_message_destroy(m);
        if (!left)
            break;
    }
    return rc;
}

/* Whether s is a stop: "end", an offset or a time (after '@' when `at`). */
static bool is_stop_spec(const char *s, bool at)
{
    int64_t v;
    if (at)
        return !cli_parse_timestamp_ms(s, &v) || !strcmp(s, "end");
    return !strcmp(s, "end") || !cli_parse_i64(s, 0, INT64_MAX, &v) ||
           (s[0] == '@' && !cli_parse_timestamp_ms(s + 1, &v));
}

/* -o: START, START:, :STOP, START:STOP, @T1:T2, @T1:, @:T2 (STOP exclusive). A time may
 * hold ':' itself (2024-01-31T12:00:00): the split is the one whose halves both parse.
 * @return 0 (o->spec, o->to_end, o->stop_spec set) or -1. */
static int split_offset_spec(char *arg, consume_opts_t *o)
{
    o->to_end = false;
    o->stop_spec = NULL;
    if (!cli_check_offset_spec(arg)) {
        o->spec = arg;
        return 0;
    }
    bool at = arg[0] == '@';
    char *body = at ? arg + 1 : arg;
    for (char *colon = strchr(body, ':'); colon; colon = strchr(colon + 1, ':')) {
        size_t left_len = (size_t)(colon - body);
        const char *right = colon + 1;
        char left[128];
        if (left_len >= sizeof(left) - 2 || strlen(right) >= sizeof(o->spec_buf[1]) - 2)
            return -1;
        snprintf(left, sizeof(left), "%s%.*s", at ? "@" : "", (int)left_len, body);
        bool left_ok = left_len == 0 || !cli_check_offset_spec(left);
        bool right_ok = !*right || is_stop_spec(right, at);
        if (!left_ok || !right_ok)
            continue;
        snprintf(o->spec_buf[0], sizeof(o->spec_buf[0]), "%s", left_len ? left : "start");
        o->spec = o->spec_buf[0];
        if (*right) {
            snprintf(o->spec_buf[1], sizeof(o->spec_buf[1]), "%s%s",
                     at && strcmp(right, "end") ? "@" : "", right);
            o->stop_spec = o->spec_buf[1];
            o->to_end = true;
        }
        return 0;
    }
    return -1;
}

static int consume_parse(int argc, char **argv, consume_opts_t *o)
{
    static const struct option longs[] = {{"offset", required_argument, NULL, 'o'},
                                          {"num", required_argument, NULL, 'n'},
                                          {"partitions", required_argument, NULL, 'p'},
                                          {"group", required_argument, NULL, 'g'},
                                          {"format", required_argument, NULL, 'f'},
                                          {"read-committed", no_argument, NULL, 'C'},
                                          {"read-uncommitted", no_argument, NULL, 'U'},
                                          {"meta-only", no_argument, NULL, 'M'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int c;
    while ((c = cli_getopt(argc, argv, "o:n:p:g:f:h", longs)) != -1) {
        switch (c) {
        case 'o':
            if (split_offset_spec(optarg, o))
                return cli_usage_err("bad --offset '%s': use START, START:STOP, :STOP, @T1:T2 "
                                     "or @:T2 with START start, end, +N, -N, @TIME or an "
                                     "offset, and STOP end, an offset or a time",
                                     optarg);
            break;
        case 'n':
            if (cli_parse_i64(optarg, 1, INT64_MAX, &o->num))
                return cli_usage_err("bad --num '%s': use a positive number", optarg);
            break;
        case 'p':
            if ((o->n_parts = cli_parse_partitions(optarg, o->parts, CLI_MAX_PARTS)) < 0)
                return cli_usage_err("bad --partitions '%s': use e.g. 0,1,2", optarg);
            break;
        case 'g':
            o->group = optarg;
            break;
        case 'C':
            o->isolation = "read_committed";
            break;
        case 'U':
            o->isolation = "read_uncommitted";
            break;
        case 'M':
            o->is_meta_only = true;
            break;
        case 'f':
            if (cli_record_format_arg(optarg, &o->fmt, &o->has_fmt))
                return CLI_EXIT_USAGE;
            break;
        case 'h':
            fputs(consume_help, stdout);
            return -1;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind < 1)
        return cli_usage_err("topic consume needs at least one TOPIC");
    o->out = cli_record_format(&o->fmt, o->has_fmt, true);
    if (o->is_meta_only && o->has_fmt)
        return cli_usage_err("--meta-only prints JSON: no record format with it");
    if (o->group && (o->to_end || o->n_parts ||
                     (strcmp(o->spec, "start") && strcmp(o->spec, "end") &&
                      strcmp(o->spec, "oldest") && strcmp(o->spec, "newest"))))
        return cli_usage_err("with --group, --offset may only be start or end and "
                             "--partitions is not allowed (use 'strata group seek')");
    return 0;
}

int cli_consume(int argc, char **argv)
{
    consume_opts_t *o = calloc(1, sizeof(*o));
    if (!o)
        return cli_err("out of memory");
    o->spec = "start";
    o->isolation = "read_committed";
    int rc = consume_parse(argc, argv, o);
    if (rc) {
        free(o);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    char **topics = argv + optind;
    int n_topics = argc - optind;
    bool from_start = !strcmp(o->spec, "start") || !strcmp(o->spec, "oldest");
    const char *extra_group[] = {"group.id",
                                 o->group,
                                 "auto.offset.reset",
                                 from_start ? "earliest" : "latest",
                                 "enable.auto.commit",
                                 "true",
                                 "isolation.level",
                                 o->isolation,
                                 NULL};
    /* librdkafka's assign() needs a group.id; nothing is ever committed for it. EOF events
     * end a START:STOP read whose stop no record reaches (transaction markers). */
    const char *extra_plain[] = {"group.id",
                                 "strata-cli",
                                 "enable.auto.commit",
                                 "false",
                                 "enable.auto.offset.store",
                                 "false",
                                 "enable.partition.eof",
                                 o->to_end ? "true" : "false",
                                 "isolation.level",
                                 o->isolation,
                                 NULL};
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_CONSUMER, o->group ? extra_group : extra_plain);
    if (!rk) {
        free(o);
        return CLI_EXIT_FAIL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(16);
    rd_kafka_topic_partition_list_t *stop = rd_kafka_topic_partition_list_new(16);
    rc = CLI_EXIT_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md)
        goto out;
    if (o->group) {
        for (int i = 0; i < n_topics; i++) {
            if (!cli_md_topic(md, topics[i])) {
                rc = cli_err("unknown topic '%s'", topics[i]);
                goto out;
            }
            rd_kafka_topic_partition_list_add(assign, topics[i], RD_KAFKA_PARTITION_UA);
        }
        rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, assign);
        if (err) {
            rc = cli_err("cannot join group '%s': %s", o->group, rd_kafka_err2str(err));
            goto out;
        }
        /* Progress on a terminal only: the first join of a new group may wait for
         * group.initial.rebalance.delay.ms (3 s by default) before any record comes. */
        if (isatty(STDERR_FILENO) && !cli_opts.is_json)
            fprintf(stderr,
                    "strata: joining group '%s' (a new group waits up to "
                    "group.initial.rebalance.delay.ms for more members)...\n",
                    o->group);
    } else {
        if ((rc = build_assignment(rk, md, topics, n_topics, o, assign, stop)))
            goto out;
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, assign);
        if (err) {
            rc = cli_err("cannot assign partitions: %s", rd_kafka_err2str(err));
            goto out;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = consume_loop(rk, o, stop);
    if (o->group && !rc) {
        rd_kafka_resp_err_t err = rd_kafka_commit(rk, NULL, 0);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            rc =
                cli_err("cannot commit offsets of group '%s': %s", o->group, rd_kafka_err2str(err));
    }
out:
    rd_kafka_consumer_close(rk);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(assign);
    rd_kafka_topic_partition_list_destroy(stop);
    rd_kafka_destroy(rk);
    free(o);
    return rc;
}
