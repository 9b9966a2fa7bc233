#!/usr/bin/env python3
"""kpgen.py - generate the Kafka message codec from the vendored upstream JSON schemas.

Reads kafka/schema/*.json (Apache Kafka message schemas with // comment lines) and writes:
  kafka/kp_msg.h        structs, init/decode/encode prototypes, API and message tables
  kafka/kp_msg.c        the codecs (through the bounds-checked kp_reader_t / kp_writer_t)
  tests/unit/kp_fill.h  test-data filler (non-default values for every field of a version)
  tests/unit/kp_fill.c
The outputs are committed; the build never runs this script. Usage (from anywhere):
  python3 tools/kpgen.py            regenerate (runs clang-format on the outputs if found)
  python3 tools/kpgen.py --check    exit 1 if the committed outputs are stale
Stdlib only.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(ROOT, "kafka", "schema")
INF = 1 << 15  # one past the largest int16 version

PRIMS = {
    # type: (C type, reader, writer, fixed wire size)
    "bool": ("bool", "kp_read_bool", "kp_write_bool", 1),
    "int8": ("int8_t", "kp_read_i8", "kp_write_i8", 1),
    "int16": ("int16_t", "kp_read_i16", "kp_write_i16", 2),
    "uint16": ("uint16_t", "kp_read_u16", "kp_write_u16", 2),
    "int32": ("int32_t", "kp_read_i32", "kp_write_i32", 4),
    "uint32": ("uint32_t", "kp_read_u32", "kp_write_u32", 4),
    "int64": ("int64_t", "kp_read_i64", "kp_write_i64", 8),
    "float64": ("double", "kp_read_f64", "kp_write_f64", 8),
    "uuid": ("kp_uuid_t", "kp_read_uuid", None, 16),
}
VIEWS = {"string": "kp_str_t", "bytes": "kp_bytes_t", "records": "kp_bytes_t"}
INT_LIMITS = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
}


def die(msg):
    sys.stderr.write("kpgen: " + msg + "\n")
    sys.exit(1)


# ---- Versions ----


class VR:
    """A version range [lo, hi) (hi exclusive); empty when lo >= hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    @staticmethod
    def parse(s):
        s = (s or "none").strip()
        if s == "none":
            return VR(0, 0)
        if s.endswith("+"):
            return VR(int(s[:-1]), INF)
        if "-" in s:
            a, b = s.split("-")
            return VR(int(a), int(b) + 1)
        return VR(int(s), int(s) + 1)

    def empty(self):
        return self.lo >= self.hi

    def __and__(self, o):
        return VR(max(self.lo, o.lo), min(self.hi, o.hi))

    def contains(self, v):
        return self.lo <= v < self.hi

    def covers(self, o):
        return o.empty() or (self.lo <= o.lo and o.hi <= self.hi)

    def minus_suffix(self, o):
        """self without o, where o is empty or a suffix range 'N+'."""
        if o.empty():
            return self
        if o.hi != INF:
            die("taggedVersions must be open-ended")
        return VR(self.lo, min(self.hi, o.lo))

    def cond(self, ctx):
        """C condition for 'version in self' where version is known to be in ctx:
        '1' (always), '0' (never) or an expression."""
        r = self & ctx
        if r.empty():
            return "0"
        if self.covers(ctx):
            return "1"
        parts = []
        if r.lo > ctx.lo:
            parts.append("version >= %d" % r.lo)
        if r.hi < ctx.hi:
            parts.append("version <= %d" % (r.hi - 1))
        return " && ".join(parts)


def csel(cond, a, b):
    """C expression choosing a when cond holds, else b."""
    if cond == "1":
        return a
    if cond == "0":
        return b
    return "(%s) ? %s : %s" % (cond, a, b)


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def load(path):
    with open(path) as f:
        text = "\n".join(l for l in f.read().split("\n") if not l.strip().startswith("//"))
    return json.loads(text)


# ---- Model ----


class Field:
    def __init__(self, msg, d, owner):
        self.msg = msg
        self.name = d["name"]
        self.c = snake(self.name)
        self.type = d["type"]
        self.versions = VR.parse(d.get("versions"))
        self.nullable = VR.parse(d.get("nullableVersions"))
        self.tagged = VR.parse(d.get("taggedVersions"))
        self.tag = d.get("tag")
        self.default = d.get("default")
        self.ignorable = bool(d.get("ignorable", False))
        self.about = " ".join(str(d.get("about", "")).split())
        self.owner = owner
        if "flexibleVersions" in d:
            self.flex = VR.parse(d["flexibleVersions"])
        else:
            self.flex = msg.flex
        if (self.tag is None) != self.tagged.empty():
            die("%s.%s: tag and taggedVersions go together" % (msg.name, self.name))
        self.inline = self.versions.minus_suffix(self.tagged)
        self.is_array = self.type.startswith("[]")
        self.elem = self.type[2:] if self.is_array else self.type
        self.struct = None  # Struct for struct-typed fields and arrays of structs
        if self.elem not in PRIMS and self.elem not in VIEWS:
            self.struct = msg.struct_for(self.elem, d, self)
        # A nullable struct field is a pointer, NULL for null; on the wire an int8 marker
        # (-1 null, 1 present) precedes the struct. Only null defaults are supported.
        self.ptr = self.struct is not None and not self.is_array and not self.nullable.empty()
        if self.ptr and (self.default != "null" or self.tag is not None):
            die("%s.%s: a nullable struct must default to null and not be tagged" % (msg.name, self.name))

    def ctype(self):
        if self.struct is not None:
            return self.struct.ctype
        if self.elem in PRIMS:
            return PRIMS[self.elem][0]
        return VIEWS[self.elem]


class Struct:
    def __init__(self, msg, name, fields_json, ctx):
        self.msg = msg
        self.name = name
        self.ctx = ctx
        self.ctype = msg.struct_ctype(name)
        self.cbase = self.ctype[: -len("_t")]
        self.fields_json = fields_json
        self.fields = None
        self.needs_is_default = False

    def build(self):
        if self.fields is None:
            self.fields = []
            for d in self.fields_json:
                self.fields.append(Field(self.msg, d, self))
            names = [f.c for f in self.fields]
            if len(set(names)) != len(names):
                die("%s: duplicate field names" % self.name)

    def tagged_fields(self):
        return sorted([f for f in self.fields if f.tag is not None], key=lambda f: f.tag)


class Message:
    def __init__(self, d):
        self.d = d
        self.name = d["name"]
        self.kind = d["type"]
        self.api_key = d.get("apiKey", -1)
        self.valid = VR.parse(d["validVersions"])
        self.flex = VR.parse(d.get("flexibleVersions"))
        self.unstable = bool(d.get("latestVersionUnstable", False))
        self.c = snake(self.name)
        self.api_name = re.sub(r"(Request|Response)$", "", self.name)
        self.common = {cs["name"]: cs for cs in d.get("commonStructs", [])}
        self.structs = {}  # name -> Struct
        self.order = []  # structs in definition order (children first)
        self.top = Struct(self, self.name, d["fields"], self.valid)
        self.top.ctype = "kp_%s_t" % self.c
        self.top.cbase = "kp_%s" % self.c
        self.top.build()
        self.order.append(self.top)

    def struct_ctype(self, name):
        short = name
        for pre in (self.name, self.api_name):
            if name.startswith(pre) and len(name) > len(pre) and name[len(pre)].isupper():
                short = name[len(pre):]
                break
        return "kp_%s_%s_t" % (self.c, snake(short))

    def struct_for(self, name, d, field):
        ctx = field.versions & field.owner.ctx
        if name in self.structs:
            s = self.structs[name]
            if "fields" in d:
                die("%s: struct %s defined twice" % (self.name, name))
            return s
        if "fields" in d:
            fj = d["fields"]
        elif name in self.common:
            fj = self.common[name]["fields"]
            ctx = self.valid
        else:
            die("%s: unknown type %s" % (self.name, name))
        s = Struct(self, name, fj, ctx)
        self.structs[name] = s
        if any(o.ctype == s.ctype for o in self.structs.values() if o is not s):
            die("%s: C name clash for %s" % (self.name, s.ctype))
        s.build()
        self.order.append(s)
        return s


# ---- Sizes ----


def min_size(f, v):
    """Smallest wire size of one field (inline) at version v."""
    flex = f.flex.contains(v)
    if f.is_array:
        return 1 if flex else 4
    if f.ptr:
        return 1
    if f.struct is not None:
        return struct_min_size(f.struct, v)
    if f.elem in PRIMS:
        return PRIMS[f.elem][3]
    if f.elem == "string":
        return 1 if flex else 2
    return 1 if flex else 4


def struct_min_size(s, v):
    n = 0
    for f in s.fields:
        if f.inline.contains(v):
            n += min_size(f, v)
    if s.msg.flex.contains(v):
        n += 1
    return n


def elem_min_size(f):
    """Lower bound of one array element's wire size over every version f can appear in."""
    ctx = f.versions & f.owner.ctx
    best = None
    for v in range(ctx.lo, min(ctx.hi, f.msg.valid.hi)):
        flex = f.flex.contains(v)
        if f.struct is not None:
            n = struct_min_size(f.struct, v)
        elif f.elem in PRIMS:
            n = PRIMS[f.elem][3]
        elif f.elem == "string":
            n = 1 if flex else 2
        else:
            n = 1 if flex else 4
        best = n if best is None else min(best, n)
    return best or 0


# ---- C literals ----


def int_lit(t, v):
    lo, hi = INT_LIMITS[t]
    if not lo <= v <= hi:
        die("default %d out of range for %s" % (v, t))
    if t == "int64":
        return "INT64_MIN" if v == lo else "INT64_C(%d)" % v
    if t == "int32" and v == lo:
        return "INT32_MIN"
    if t == "uint32":
        return "UINT32_C(%d)" % v
    return str(v)


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_expr(f):
    """C expression for the default of a scalar/view field (not arrays or structs)."""
    d = f.default
    t = f.elem
    if t == "bool":
        return "true" if str(d).lower() == "true" else "false"
    if t in INT_LIMITS:
        return int_lit(t, int(str(d), 0) if d not in (None, "") else 0)
    if t == "float64":
        return repr(float(d)) if d not in (None, "") else "0.0"
    if t == "uuid":
        return "(kp_uuid_t){{0}}"
    if t == "string":
        if d == "null":
            return "KP_STR_NULL"
        return "KP_STR_LIT(%s)" % c_string(d or "")
    if d == "null":
        return "KP_BYTES_NULL"
    return "(kp_bytes_t){NULL, 0}"


def not_default_cond(f, ref):
    """C condition: field at ref (e.g. 's->x') differs from its default."""
    if f.is_array:
        return "%s >= 0" % count_ref(f, ref) if f.default == "null" else "%s != 0" % count_ref(f, ref)
    if f.ptr:
        return "%s != NULL" % ref
    if f.struct is not None:
        f.struct.needs_is_default = True
        return "!is_default_%s(&%s)" % (f.struct.cbase, ref)
    t = f.elem
    if t == "uuid":
        return "!kp_uuid_is_zero(&%s)" % ref
    if t == "string":
        return "!kp_str_eq(%s, %s)" % (ref, default_expr(f))
    if t in ("bytes", "records"):
        return "%s.len >= 0" % ref if f.default == "null" else "%s.len != 0" % ref
    return "%s != %s" % (ref, default_expr(f))


def count_ref(f, ref):
    # ref is 's->x'; the count lives beside it as 's->n_x'
    head, _, tail = ref.rpartition("->")
    return "%s->n_%s" % (head, tail)


# ---- Code emission ----


class Out:
    def __init__(self):
        self.lines = []

    def __call__(self, s=""):
        self.lines.append(s)

    def text(self):
        return "\n".join(self.lines) + "\n"


def read_scalar(f, R, lval, ctx, o, elem=False):
    """Statements reading one non-array, non-struct value of f's type into lval."""
    t = f.elem
    flex = f.flex.cond(ctx)
    if t in PRIMS:
        o("%s = %s(%s);" % (lval, PRIMS[t][1], R))
        return
    if t == "string":
        o("%s = %s;" % (lval, csel(flex, "kp_read_compact_str(%s)" % R, "kp_read_str(%s)" % R)))
    else:
        o("%s = %s;" % (lval, csel(flex, "kp_read_compact_bytes(%s)" % R, "kp_read_bytes(%s)" % R)))
    nc = "0" if elem else f.nullable.cond(ctx)  # elements of an array are never null
    if nc != "1":
        neg = "" if nc == "0" else " && !(%s)" % nc
        o("if (%s.len < 0%s)" % (lval, neg))
        o("    kp_reader_fail(%s, ST_E_MALFORMED);" % R)


def write_scalar(f, W, ref, ctx, o, elem=False):
    t = f.elem
    where = c_string("%s.%s" % (f.owner.name, f.name))
    flex = f.flex.cond(ctx)
    if t == "uuid":
        o("kp_write_uuid(%s, &%s);" % (W, ref))
        return
    if t in PRIMS:
        o("%s(%s, %s);" % (PRIMS[t][2], W, ref))
        return
    nc = "0" if elem else f.nullable.cond(ctx)  # elements of an array are never null
    if nc != "1":
        neg = "" if nc == "0" else " && !(%s)" % nc
        o("if (%s.len < 0%s)" % (ref, neg))
        o("    kp_writer_fail_at(%s, ST_E_INVAL, %s);" % (W, where))
    if t == "string":
        fn = csel(flex, "kp_write_compact_str", "kp_write_str")
    else:
        fn = csel(flex, "kp_write_compact_bytes", "kp_write_bytes")
    if flex not in ("0", "1"):
        o("if (%s)" % flex)
        o("    kp_write_%s(%s, %s);" % ("compact_str" if t == "string" else "compact_bytes", W, ref))
        o("else")
        o("    kp_write_%s(%s, %s);" % ("str" if t == "string" else "bytes", W, ref))
    else:
        o("%s(%s, %s);" % (fn, W, ref))


def read_field(f, R, ref, ctx, o):
    """Statements decoding field f (already known present) into ref, reading from R."""
    if f.is_array:
        flex = f.flex.cond(ctx)
        mn = elem_min_size(f)
        o("{")
        o("int32_t n = %s;" % csel(
            flex,
            "kp_read_compact_array_len(%s, %d, KP_MAX_ARRAY_LEN)" % (R, mn),
            "kp_read_array_len(%s, %d, KP_MAX_ARRAY_LEN)" % (R, mn)))
        nc = f.nullable.cond(ctx)
        if nc != "1":
            neg = "" if nc == "0" else " && !(%s)" % nc
            o("if (n < 0%s)" % neg)
            o("    kp_reader_fail(%s, ST_E_MALFORMED);" % R)
        cnt = count_ref(f, ref)
        o("%s = kp_reader_ok(%s) ? n : 0;" % (cnt, R))
        o("%s = NULL;" % ref)
        o("if (%s > 0) {" % cnt)
        o("%s = kp_arena_calloc(a, (size_t)%s, sizeof(*%s));" % (ref, cnt, ref))
        o("if (%s == NULL) {" % ref)
        o("kp_reader_fail(%s, ST_E_NOMEM);" % R)
        o("%s = 0;" % cnt)
        o("}")
        o("for (int32_t i = 0; i < %s && kp_reader_ok(%s); i++) {" % (cnt, R))
        el = "%s[i]" % ref
        if f.struct is not None:
            o("%s_init(&%s);" % (f.struct.cbase, el))
            o("dec_%s(%s, version, &%s, a);" % (f.struct.cbase, R, el))
        else:
            read_scalar(f, R, el, ctx, o, elem=True)
        o("}")
        o("}")
        o("}")
    elif f.ptr:
        nc = f.nullable.cond(ctx)
        o("%s = NULL;" % ref)
        o("if (kp_read_i8(%s) < 0) {" % R)
        if nc != "1":
            o("if (!(%s))" % nc if nc != "0" else "{")
            o("    kp_reader_fail(%s, ST_E_MALFORMED);" % R)
            if nc == "0":
                o("}")
        o("} else if (kp_reader_ok(%s)) {" % R)
        o("%s = kp_arena_alloc(a, sizeof(*%s));" % (ref, ref))
        o("if (%s == NULL) {" % ref)
        o("kp_reader_fail(%s, ST_E_NOMEM);" % R)
        o("} else {")
        o("%s_init(%s);" % (f.struct.cbase, ref))
        o("dec_%s(%s, version, %s, a);" % (f.struct.cbase, R, ref))
        o("}")
        o("}")
    elif f.struct is not None:
        o("%s_init(&%s);" % (f.struct.cbase, ref))
        o("dec_%s(%s, version, &%s, a);" % (f.struct.cbase, R, ref))
    else:
        read_scalar(f, R, ref, ctx, o)


def write_field(f, W, ref, ctx, o):
    if f.is_array:
        flex = f.flex.cond(ctx)
        cnt = count_ref(f, ref)
        nc = f.nullable.cond(ctx)
        if nc != "1":
            neg = "" if nc == "0" else " && !(%s)" % nc
            o("if (%s < 0%s)" % (cnt, neg))
            o("    kp_writer_fail_at(%s, ST_E_INVAL, %s);" % (W, c_string("%s.%s" % (f.owner.name, f.name))))
        if flex not in ("0", "1"):
            o("if (%s)" % flex)
            o("    kp_write_compact_array_len(%s, %s);" % (W, cnt))
            o("else")
            o("    kp_write_array_len(%s, %s);" % (W, cnt))
        else:
            o("%s(%s, %s);" % (csel(flex, "kp_write_compact_array_len", "kp_write_array_len"), W, cnt))
        o("for (int32_t i = 0; i < %s; i++) {" % cnt)
        el = "%s[i]" % ref
        if f.struct is not None:
            o("enc_%s(%s, version, &%s);" % (f.struct.cbase, W, el))
        else:
            write_scalar(f, W, el, ctx, o, elem=True)
        o("}")
    elif f.ptr:
        nc = f.nullable.cond(ctx)
        if nc != "1":
            neg = "" if nc == "0" else " && !(%s)" % nc
            o("if (%s == NULL%s)" % (ref, neg))
            o("    kp_writer_fail_at(%s, ST_E_INVAL, %s);" % (W, c_string("%s.%s" % (f.owner.name, f.name))))
        o("kp_write_i8(%s, %s == NULL ? -1 : 1);" % (W, ref))
        o("if (%s != NULL)" % ref)
        o("    enc_%s(%s, version, %s);" % (f.struct.cbase, W, ref))
    elif f.struct is not None:
        o("enc_%s(%s, version, &%s);" % (f.struct.cbase, W, ref))
    else:
        write_scalar(f, W, ref, ctx, o)


def gen_typedef(s, o):
    o("/** %s%s */" % (s.name, " (versions %s)" % s.msg.d["validVersions"] if s is s.msg.top else ""))
    o("typedef struct %s {" % s.cbase)
    for f in s.fields:
        desc = "%s %s, versions %s" % (f.name, f.type, fmt_vr(f.versions))
        if not f.nullable.empty():
            desc += ", nullable %s" % fmt_vr(f.nullable)
        if f.tag is not None:
            desc += ", tag %d in %s" % (f.tag, fmt_vr(f.tagged))
        if f.default is not None:
            desc += ", default %s" % f.default
        if f.ignorable:
            desc += ", ignorable"
        if f.about:
            desc += ". " + f.about.replace("*/", "* /").rstrip(".") + "."
        if f.is_array:
            o("    /* %s Decoded: borrowed from the arena. */" % desc)
            o("    %s *%s;" % (f.ctype(), f.c))
            o("    /* element count of %s, -1 = null */" % f.c)
            o("    int32_t n_%s;" % f.c)
        elif f.ptr:
            o("    /* %s NULL = null. Decoded: borrowed from the arena. */" % desc)
            o("    %s *%s;" % (f.ctype(), f.c))
        else:
            if f.elem in VIEWS:
                desc += " Decoded: borrowed from the input buffer."
            o("    /* %s */" % desc)
            o("    %s %s;" % (f.ctype(), f.c))
    if not s.fields:
        o("    /* no fields: keeps the struct non-empty */")
        o("    char unused_;")
    o("} %s;" % s.ctype)
    o()


def fmt_vr(v):
    if v.empty():
        return "none"
    if v.hi == INF:
        return "%d+" % v.lo
    if v.hi == v.lo + 1:
        return "%d" % v.lo
    return "%d-%d" % (v.lo, v.hi - 1)


def gen_init(s, o, static):
    o("void %s_init(%s *s)" % (s.cbase, s.ctype))
    o("{")
    o("memset(s, 0, sizeof(*s));")
    for f in s.fields:
        ref = "s->%s" % f.c
        if f.is_array:
            if f.default == "null":
                o("%s = -1;" % count_ref(f, ref))
        elif f.ptr:
            pass  # NULL (memset)
        elif f.struct is not None:
            o("%s_init(&%s);" % (f.struct.cbase, ref))
        else:
            e = default_expr(f)
            if e not in ("0", "false", "(kp_uuid_t){{0}}", "0.0", "(kp_bytes_t){NULL, 0}"):
                o("%s = %s;" % (ref, e))
    o("}")
    o()


def gen_is_default(s, o):
    o("static bool is_default_%s(const %s *s)" % (s.cbase, s.ctype))
    o("{")
    conds = [not_default_cond(f, "s->%s" % f.c) for f in s.fields]
    if not conds:
        o("(void)s;")
        o("return true;")
    else:
        o("return !(%s);" % " || ".join("(%s)" % c for c in conds))
    o("}")
    o()


def gen_decode(s, o):
    ctx = s.ctx & s.msg.valid
    o("static void dec_%s(kp_reader_t *r, int16_t version, %s *s, kp_arena_t *a)" % (s.cbase, s.ctype))
    o("{")
    o("(void)version;")
    o("(void)a;")
    o("(void)s;")
    for f in s.fields:
        c = f.inline.cond(ctx)
        if c == "0":
            continue
        if c != "1":
            o("if (%s) {" % c)
        else:
            o("{")
        o('r->field = "%s.%s";' % (s.name, f.name))
        read_field(f, "r", "s->%s" % f.c, ctx & f.inline, o)
        o("}")
    fc = s.msg.flex.cond(ctx)
    if fc != "0":
        tagged = [f for f in s.tagged_fields() if f.tagged.cond(ctx) != "0"]
        o("if (%s) {" % fc)
        if not tagged:
            o('r->field = "%s._tagged_fields";' % s.name)
            o("kp_skip_tags(r);")
        else:
            o('r->field = "%s._tagged_fields";' % s.name)
            o("uint32_t n_tags = kp_read_uvarint(r);")
            o("for (uint32_t ti = 0; ti < n_tags && kp_reader_ok(r); ti++) {")
            o("uint32_t tag = kp_read_uvarint(r);")
            o("uint32_t size = kp_read_uvarint(r);")
            o("kp_reader_t sub_, *sub = &sub_;")
            o("if (!kp_reader_sub(r, size, sub))")
            o("    break;")
            o("switch (tag) {")
            for f in tagged:
                tctx = ctx & f.tagged
                o("case %d:" % f.tag)
                tc = f.tagged.cond(ctx)
                o("if (%s) {" % tc if tc != "1" else "{")
                o('sub->field = "%s.%s";' % (s.name, f.name))
                read_field(f, "sub", "s->%s" % f.c, tctx, o)
                o("kp_reader_join(r, sub, true);")
                o("}")
                o("break;")
            o("default:")
            o("break;")
            o("}")
            o("}")
        o("}")
    o("}")
    o()


def gen_encode(s, o):
    ctx = s.ctx & s.msg.valid
    o("static void enc_%s(kp_writer_t *w, int16_t version, const %s *s)" % (s.cbase, s.ctype))
    o("{")
    o("(void)version;")
    o("(void)s;")
    for f in s.fields:
        present = f.versions.cond(ctx)
        if present != "1" and not f.ignorable:
            # As upstream: a non-ignorable field may not carry a non-default value at a version
            # that lacks it (the receiver would silently lose it).
            cond = not_default_cond(f, "s->%s" % f.c)
            if present != "0":
                cond = "!(%s) && %s" % (present, cond)
            o("if (%s)" % cond)
            o("    kp_writer_fail_at(w, ST_E_INVAL, %s);" % c_string("%s.%s" % (s.name, f.name)))
        c = f.inline.cond(ctx)
        if c == "0":
            continue
        o("if (%s) {" % c if c != "1" else "{")
        write_field(f, "w", "s->%s" % f.c, ctx & f.inline, o)
        o("}")
    fc = s.msg.flex.cond(ctx)
    if fc != "0":
        tagged = [f for f in s.tagged_fields() if f.tagged.cond(ctx) != "0"]
        o("if (%s) {" % fc)
        if not tagged:
            o("kp_write_uvarint(w, 0);")
        else:
            o("uint32_t n_tags = 0;")
            for f in tagged:
                tc = f.tagged.cond(ctx)
                cond = not_default_cond(f, "s->%s" % f.c)
                if tc != "1":
                    cond = "(%s) && %s" % (tc, cond)
                o("bool has_tag_%d = %s;" % (f.tag, cond))
                o("n_tags += has_tag_%d;" % f.tag)
            o("kp_write_uvarint(w, n_tags);")
            for f in tagged:
                o("if (has_tag_%d) {" % f.tag)
                o("kp_write_uvarint(w, %d);" % f.tag)
                o("size_t mark = w->len;")
                write_field(f, "w", "s->%s" % f.c, ctx & f.tagged, o)
                o("kp_writer_insert_size(w, mark);")
                o("}")
        o("}")
    o("}")
    o()


def gen_fill(s, o):
    """Test filler: every field present at version gets a non-default value (variant 0), or
    null / empty where allowed (variant 1)."""
    ctx = s.ctx & s.msg.valid
    o("static void fill_%s(%s *s, int16_t version, kp_arena_t *a, int variant, uint32_t *seq)" % (s.cbase, s.ctype))
    o("{")
    o("(void)version;")
    o("(void)a;")
    o("(void)variant;")
    o("(void)seq;")
    o("(void)s;")
    for f in s.fields:
        c = f.versions.cond(ctx)
        if c == "0":
            continue
        o("if (%s) {" % c if c != "1" else "{")
        fctx = ctx & f.versions
        ref = "s->%s" % f.c
        nc = f.nullable.cond(fctx)
        if f.is_array:
            cnt = count_ref(f, ref)
            o("if (variant == 1) {")
            if nc == "0":
                o("%s = 0;" % cnt)
            elif nc == "1":
                o("%s = -1;" % cnt)
            else:
                o("%s = (%s) ? -1 : 0;" % (cnt, nc))
            o("%s = NULL;" % ref)
            o("} else {")
            o("%s = 2;" % cnt)
            o("%s = kp_arena_calloc(a, 2, sizeof(*%s));" % (ref, ref))
            o("for (int32_t i = 0; %s != NULL && i < 2; i++) {" % ref)
            fill_value(f, "%s[i]" % ref, fctx, o)
            o("}")
            o("}")
        elif f.ptr:
            null = "variant == 1" if nc == "1" else ("0" if nc == "0" else "variant == 1 && (%s)" % nc)
            o("%s = (%s) ? NULL : kp_arena_alloc(a, sizeof(*%s));" % (ref, null, ref))
            o("if (%s != NULL) {" % ref)
            o("%s_init(%s);" % (f.struct.cbase, ref))
            o("fill_%s(%s, version, a, variant, seq);" % (f.struct.cbase, ref))
            o("}")
        else:
            fill_value(f, ref, fctx, o, nc)
        o("}")
    o("}")
    o()


def fill_value(f, ref, ctx, o, nc="0"):
    t = f.elem
    if f.struct is not None:
        o("%s_init(&%s);" % (f.struct.cbase, ref))
        o("fill_%s(&%s, version, a, variant, seq);" % (f.struct.cbase, ref))
    elif t == "bool":
        o("%s = !%s;" % (ref, default_expr(f) if not f.is_array else "false"))
    elif t in INT_LIMITS:
        d = default_expr(f) if not f.is_array else "0"
        o("%s = (%s)kp_fill_int(seq, %s);" % (ref, PRIMS[t][0], d))
    elif t == "float64":
        o("%s = 0.5 + (double)(*seq)++;" % ref)
    elif t == "uuid":
        o("kp_fill_uuid(&%s, seq);" % ref)
    else:
        getter = "kp_fill_str" if t == "string" else "kp_fill_bytes"
        if nc == "1":
            null = "1"
        elif nc == "0":
            null = "0"
        else:
            null = "(%s)" % nc
        o("%s = %s(a, seq, variant, %s);" % (ref, getter, null))


def all_messages():
    msgs = []
    for p in sorted(glob.glob(os.path.join(SCHEMA_DIR, "*.json"))):
        msgs.append(Message(load(p)))
    order = {"header": 0, "request": 1, "response": 2, "data": 3}
    msgs.sort(key=lambda m: (order[m.kind], m.api_key, m.name))
    return msgs


def gen_h(msgs):
    o = Out()
    o("/* kp_msg.h - generated Kafka message structs and codecs (included by kafka/kp.h).")
    o(" * Generated by tools/kpgen.py from kafka/schema/ (JSON): do not edit; regenerate.")
    o(" * Data path: kp_<msg>_decode() turns a frame body into a struct whose strings/bytes are")
    o(" * views into the frame and whose arrays live in the request's arena; kp_<msg>_encode()")
    o(" * appends the wire form of a struct to a writer.")
    o(" * Contract for every message <msg>:")
    o(" *   void kp_<msg>_init(kp_<msg>_t *m);  every field to its schema default.")
    o(" *   int kp_<msg>_decode(kp_reader_t *r, int16_t version, kp_<msg>_t *m, kp_arena_t *a);")
    o(" *     Initialises *m, then reads the body at version from r (r keeps any bytes left).")
    o(" *     @return 0, ST_E_INVAL (version not generated), ST_E_MALFORMED, ST_E_NOMEM; r->err")
    o(" *     holds the same and r->err_field/err_offset say where. On error *m is unspecified.")
    o(" *   int kp_<msg>_encode(kp_writer_t *w, int16_t version, const kp_<msg>_t *m);")
    o(" *     @return 0 or w->err: ST_E_TOO_LARGE, ST_E_NOMEM, or ST_E_INVAL for a version not")
    o(" *     generated, a null where the version does not allow it, or (as upstream) a")
    o(" *     non-default value in a field the version lacks unless the schema marks it")
    o(" *     ignorable; w->err_field then names the field. Tagged fields are written only when")
    o(" *     they differ from their default; ignorable fields absent from the version are dropped.")
    o(" *   @thread any (no shared state)   @blocking no */")
    o("#ifndef KP_MSG_H")
    o("#define KP_MSG_H")
    o()
    o("#include <stdbool.h>")
    o("#include <stddef.h>")
    o("#include <stdint.h>")
    o()
    o('#include "kafka/kp.h"')
    o()
    o("/* ---- Message and API tables ---- */")
    o()
    o("typedef enum kp_msg_kind {")
    o("    KP_MSG_HEADER,")
    o("    KP_MSG_REQUEST,")
    o("    KP_MSG_RESPONSE,")
    o("    KP_MSG_DATA,")
    o("} kp_msg_kind_t;")
    o()
    o("/** One generated message, with type-erased entry points (tests, fuzzing, dispatch). */")
    o("typedef struct kp_msg_desc {")
    o("    /* schema name, e.g. \"MetadataRequest\" */")
    o("    const char *name;")
    o("    /* header, request, response or data */")
    o("    kp_msg_kind_t kind;")
    o("    /* API key, -1 for headers and data */")
    o("    int16_t api_key;")
    o("    /* lowest and highest generated version */")
    o("    int16_t min_version;")
    o("    int16_t max_version;")
    o("    /* first flexible version, or -1 when none is */")
    o("    int16_t flexible_min_version;")
    o("    /* sizeof the struct */")
    o("    size_t struct_size;")
    o("    void (*init)(void *m);")
    o("    int (*decode)(kp_reader_t *r, int16_t version, void *m, kp_arena_t *a);")
    o("    int (*encode)(kp_writer_t *w, int16_t version, const void *m);")
    o("} kp_msg_desc_t;")
    o()
    o("/** One API key we generate. */")
    o("typedef struct kp_api {")
    o("    /* API key */")
    o("    int16_t api_key;")
    o("    /* upstream name, e.g. \"Metadata\" */")
    o("    const char *name;")
    o("    /* lowest and highest generated version */")
    o("    int16_t min_version;")
    o("    int16_t max_version;")
    o("    /* highest version that upstream marks stable (latestVersionUnstable) */")
    o("    int16_t max_stable_version;")
    o("    /* first flexible version (request header v2, response header v1), -1 if none */")
    o("    int16_t flexible_min_version;")
    o("    /* the request and response messages */")
    o("    const kp_msg_desc_t *request;")
    o("    const kp_msg_desc_t *response;")
    o("} kp_api_t;")
    o()
    o("/** Every generated message: headers, requests, responses, data. */")
    o("extern const kp_msg_desc_t kp_msg_descs[];")
    o("extern const size_t kp_n_msg_descs;")
    o("/** Every generated API, in ascending api_key order. */")
    o("extern const kp_api_t kp_apis[];")
    o("extern const size_t kp_n_apis;")
    o()
    o("/** The API entry for api_key, or NULL when we generate none. */")
    o("const kp_api_t *kp_api_get(int16_t api_key);")
    o("/** Request header version for a request: 2 when api_version is flexible, else 1 (also for")
    o(" * unknown keys, so the correlation id and client id can still be read). */")
    o("int16_t kp_request_header_version(int16_t api_key, int16_t api_version);")
    o("/** Response header version: 1 when flexible, else 0; ApiVersions always 0 (KIP-511). */")
    o("int16_t kp_response_header_version(int16_t api_key, int16_t api_version);")
    o()
    o("enum {")
    for m in msgs:
        if m.kind == "request":
            o("    KP_API_%s = %d," % (snake(m.api_name).upper(), m.api_key))
    o("};")
    o()
    for m in msgs:
        o("/* ---- %s ---- */" % m.name)
        o()
        for s in topo(m):
            gen_typedef(s, o)
        for s in topo(m):
            if s is not m.top:
                o("void %s_init(%s *s);" % (s.cbase, s.ctype))
        o("void %s_init(%s *m);" % (m.top.cbase, m.top.ctype))
        o("ST_MUST_CHECK int %s_decode(kp_reader_t *r, int16_t version, %s *m, kp_arena_t *a);" % (m.top.cbase, m.top.ctype))
        o("ST_MUST_CHECK int %s_encode(kp_writer_t *w, int16_t version, const %s *m);" % (m.top.cbase, m.top.ctype))
        o()
    o("#endif")
    return o.text()


def topo(m):
    """Structs of m, each after the structs its fields embed or point to."""
    done, out = set(), []

    def visit(s):
        if s.name in done:
            return
        done.add(s.name)
        for f in s.fields:
            if f.struct is not None:
                visit(f.struct)
        out.append(s)

    visit(m.top)
    return out


def gen_c(msgs):
    o = Out()
    o("/* kp_msg.c - generated Kafka message codecs; see kafka/kp_msg.h for the contract.")
    o(" * Generated by tools/kpgen.py from kafka/schema/ (JSON): do not edit; regenerate.")
    o(" * Data path: connection frame -> kp_<msg>_decode() (here, through kp_reader_t) -> handler")
    o(" * -> kp_<msg>_encode() (here, through kp_writer_t) -> connection.")
    o(" * Invariants: 1. every read goes through kp_reader_t, so decoding never over-reads;")
    o(" *             2. arrays are allocated from the arena only after kp_read_array_len() has")
    o(" *                checked the count against the bytes left;")
    o(" *             3. tagged fields are decoded from a sub-reader bounded by their size, and")
    o(" *                unknown tags are skipped. */")
    o('#include "kafka/kp.h"')
    o()
    o("#include <string.h>")
    o()
    for m in msgs:
        o("/* ---- %s ---- */" % m.name)
        o()
        structs = topo(m)
        # prototypes for the static helpers (structs may reference each other in any order)
        for s in structs:
            o("static void dec_%s(kp_reader_t *r, int16_t version, %s *s, kp_arena_t *a);" % (s.cbase, s.ctype))
            o("static void enc_%s(kp_writer_t *w, int16_t version, const %s *s);" % (s.cbase, s.ctype))
        o()
        body = Out()
        for s in structs:
            if s is not m.top:
                gen_init(s, body, True)
            gen_decode(s, body)
            gen_encode(s, body)
        for s in reversed(structs):
            if s.needs_is_default:
                gen_is_default(s, Out())
        for s in structs:
            if s.needs_is_default:
                gen_is_default(s, o)
        o.lines.extend(body.lines)
        gen_init(m.top, o, False)
        top = m.top
        v = m.valid
        o("int %s_decode(kp_reader_t *r, int16_t version, %s *m, kp_arena_t *a)" % (top.cbase, top.ctype))
        o("{")
        o("%s_init(m);" % top.cbase)
        o('r->field = "%s";' % m.name)
        o("if (version < %d || version > %d)" % (v.lo, v.hi - 1))
        o("    return kp_reader_fail(r, ST_E_INVAL);")
        o("dec_%s(r, version, m, a);" % top.cbase)
        o("return r->err;")
        o("}")
        o()
        o("int %s_encode(kp_writer_t *w, int16_t version, const %s *m)" % (top.cbase, top.ctype))
        o("{")
        o("if (version < %d || version > %d)" % (v.lo, v.hi - 1))
        o("    return kp_writer_fail(w, ST_E_INVAL);")
        o("enc_%s(w, version, m);" % top.cbase)
        o("return w->err;")
        o("}")
        o()
        o("static void erased_init_%s(void *m)" % m.c)
        o("{")
        o("%s_init(m);" % top.cbase)
        o("}")
        o()
        o("static int erased_decode_%s(kp_reader_t *r, int16_t version, void *m, kp_arena_t *a)" % m.c)
        o("{")
        o("return %s_decode(r, version, m, a);" % top.cbase)
        o("}")
        o()
        o("static int erased_encode_%s(kp_writer_t *w, int16_t version, const void *m)" % m.c)
        o("{")
        o("return %s_encode(w, version, m);" % top.cbase)
        o("}")
        o()
    o("/* ---- Tables ---- */")
    o()
    o("const kp_msg_desc_t kp_msg_descs[] = {")
    idx = {}
    for i, m in enumerate(msgs):
        idx[m.name] = i
        kind = {"header": "KP_MSG_HEADER", "request": "KP_MSG_REQUEST", "response": "KP_MSG_RESPONSE",
                "data": "KP_MSG_DATA"}[m.kind]
        fmin = m.flex.lo if not m.flex.empty() else -1
        o('    {"%s", %s, %d, %d, %d, %d, sizeof(%s), erased_init_%s, erased_decode_%s, erased_encode_%s},'
          % (m.name, kind, m.api_key, m.valid.lo, m.valid.hi - 1, fmin, m.top.ctype, m.c, m.c, m.c))
    o("};")
    o("const size_t kp_n_msg_descs = sizeof(kp_msg_descs) / sizeof(kp_msg_descs[0]);")
    o()
    o("const kp_api_t kp_apis[] = {")
    apis = []
    for m in msgs:
        if m.kind != "request":
            continue
        resp = [x for x in msgs if x.kind == "response" and x.api_key == m.api_key]
        if len(resp) != 1:
            die("%s: no response schema" % m.name)
        r = resp[0]
        if r.valid.lo != m.valid.lo or r.valid.hi != m.valid.hi or r.flex.lo != m.flex.lo or r.flex.empty() != m.flex.empty():
            die("%s: request and response versions differ" % m.api_name)
        fmin = m.flex.lo if not m.flex.empty() else -1
        stable = m.valid.hi - 1 - (1 if m.unstable else 0)
        apis.append(m.api_key)
        o('    {%d, "%s", %d, %d, %d, %d, &kp_msg_descs[%d], &kp_msg_descs[%d]},'
          % (m.api_key, m.api_name, m.valid.lo, m.valid.hi - 1, stable, fmin, idx[m.name], idx[r.name]))
    o("};")
    o("const size_t kp_n_apis = sizeof(kp_apis) / sizeof(kp_apis[0]);")
    o()
    o("const kp_api_t *kp_api_get(int16_t api_key)")
    o("{")
    o("for (size_t i = 0; i < kp_n_apis; i++)")
    o("    if (kp_apis[i].api_key == api_key)")
    o("        return &kp_apis[i];")
    o("return NULL;")
    o("}")
    o()
    o("int16_t kp_request_header_version(int16_t api_key, int16_t api_version)")
    o("{")
    o("const kp_api_t *api = kp_api_get(api_key);")
    o("if (api != NULL && api->flexible_min_version >= 0 && api_version >= api->flexible_min_version)")
    o("    return 2;")
    o("return 1;")
    o("}")
    o()
    o("int16_t kp_response_header_version(int16_t api_key, int16_t api_version)")
    o("{")
    o("const kp_api_t *api = kp_api_get(api_key);")
    o("if (api_key == KP_API_API_VERSIONS)")
    o("    return 0;")
    o("if (api != NULL && api->flexible_min_version >= 0 && api_version >= api->flexible_min_version)")
    o("    return 1;")
    o("return 0;")
    o("}")
    if apis != sorted(apis):
        die("api keys not sorted")
    return o.text()


def gen_fill_h(msgs):
    o = Out()
    o("/* kp_fill.h - test-data filler for every generated Kafka message (tests only).")
    o(" * Generated by tools/kpgen.py from kafka/schema/ (JSON): do not edit; regenerate.")
    o(" * Data path: none; unit tests and the corpus generator fill structs, encode and decode. */")
    o("#ifndef KP_FILL_H")
    o("#define KP_FILL_H")
    o()
    o('#include "kafka/kp.h"')
    o()
    o("/** Fill *m (a struct described by d, already initialised) for version: variant 0 gives")
    o(" * every field present at version a non-default value (arrays hold 2 elements); variant 1")
    o(" * makes nullable fields null and other arrays/strings empty; variant 2 leaves defaults.")
    o(" * Strings, bytes and arrays come from a. */")
    o("void kp_fill_msg(const kp_msg_desc_t *d, void *m, int16_t version, kp_arena_t *a, int variant);")
    o()
    o("#endif")
    return o.text()


def gen_fill_c(msgs):
    o = Out()
    o("/* kp_fill.c - test-data filler for every generated Kafka message (tests only).")
    o(" * Generated by tools/kpgen.py from kafka/schema/ (JSON): do not edit; regenerate.")
    o(" * Data path: none. Invariant: variant 0 sets every field present at the version to a")
    o(" * value different from its default, so every tagged field is written. */")
    o('#include "tests/unit/kp_fill.h"')
    o()
    o("#include <stdio.h>")
    o("#include <string.h>")
    o()
    o("static int64_t kp_fill_int(uint32_t *seq, int64_t def)")
    o("{")
    o("int64_t v = (int64_t)((*seq)++ % 100) + 1;")
    o("return v == def ? v + 1 : v;")
    o("}")
    o()
    o("static void kp_fill_uuid(kp_uuid_t *u, uint32_t *seq)")
    o("{")
    o("for (size_t i = 0; i < sizeof(u->b); i++)")
    o("    u->b[i] = (uint8_t)(*seq + i + 1);")
    o("(*seq)++;")
    o("}")
    o()
    o("static kp_str_t kp_fill_str(kp_arena_t *a, uint32_t *seq, int variant, int nullable)")
    o("{")
    o("if (variant == 1)")
    o("    return nullable ? KP_STR_NULL : KP_STR_LIT(\"\");")
    o("char *p = kp_arena_alloc(a, 16);")
    o("if (p == NULL)")
    o("    return KP_STR_LIT(\"\");")
    o("int n = snprintf(p, 16, \"s%u\", (unsigned)(*seq)++);")
    o("return (kp_str_t){p, n};")
    o("}")
    o()
    o("static kp_bytes_t kp_fill_bytes(kp_arena_t *a, uint32_t *seq, int variant, int nullable)")
    o("{")
    o("if (variant == 1)")
    o("    return nullable ? KP_BYTES_NULL : (kp_bytes_t){NULL, 0};")
    o("uint8_t *p = kp_arena_alloc(a, 3);")
    o("if (p == NULL)")
    o("    return (kp_bytes_t){NULL, 0};")
    o("p[0] = (uint8_t)*seq;")
    o("p[1] = 0;")
    o("p[2] = 0xff;")
    o("(*seq)++;")
    o("return (kp_bytes_t){p, 3};")
    o("}")
    o()
    for m in msgs:
        o("/* ---- %s ---- */" % m.name)
        o()
        structs = topo(m)
        for s in structs:
            o("static void fill_%s(%s *s, int16_t version, kp_arena_t *a, int variant, uint32_t *seq);" % (s.cbase, s.ctype))
        o()
        for s in structs:
            gen_fill(s, o)
    o("void kp_fill_msg(const kp_msg_desc_t *d, void *m, int16_t version, kp_arena_t *a, int variant)")
    o("{")
    o("uint32_t seq = 1;")
    o("if (variant == 2)")
    o("    return;")
    for m in msgs:
        o("if (d == &kp_msg_descs[%d]) {" % msgs.index(m))
        o("fill_%s(m, version, a, variant, &seq);" % m.top.cbase)
        o("return;")
        o("}")
    o("}")
    return o.text()


def clang_format(text, rel):
    """text formatted with the repository's .clang-format (found from rel's directory)."""
    cf = shutil.which("clang-format")
    if cf is None:
        return None
    return subprocess.run([cf, "--assume-filename=" + os.path.join(ROOT, rel)], input=text,
                          capture_output=True, text=True, check=True).stdout


def main():
    check = "--check" in sys.argv[1:]
    msgs = all_messages()
    outputs = {
        "kafka/kp_msg.h": gen_h(msgs),
        "kafka/kp_msg.c": gen_c(msgs),
        "tests/unit/kp_fill.h": gen_fill_h(msgs),
        "tests/unit/kp_fill.c": gen_fill_c(msgs),
    }
    stale = []
    for rel, text in outputs.items():
        new = clang_format(text, rel)
        if new is None:
            if check:
                print("kpgen: clang-format not found; cannot check")
                sys.exit(77)
            sys.stderr.write("kpgen: clang-format not found; %s left unformatted\n" % rel)
            new = text
        dst = os.path.join(ROOT, rel)
        old = None
        if os.path.exists(dst):
            with open(dst) as f:
                old = f.read()
        if old != new:
            stale.append(rel)
            if not check:
                with open(dst, "w") as f:
                    f.write(new)
    if check:
        if stale:
            print("kpgen: stale (run python3 tools/kpgen.py): " + " ".join(stale))
            sys.exit(1)
        print("kpgen: up to date")
    else:
        print("kpgen: %d messages; wrote %s" % (len(msgs), " ".join(stale) or "nothing (up to date)"))


if __name__ == "__main__":
    main()
