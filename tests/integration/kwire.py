"""Minimal Kafka wire helpers for tests that must send exact bytes: request
frames, record batches v2 (with CRC-32C) and Produce v3 requests."""
import socket
import struct

_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _T.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _T[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def varint(n):
    return uvarint((n << 1) ^ (n >> 63))


def record_batch(values, producer_id=-1, epoch=-1, base_seq=-1, ts=1700000000000):
    recs = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        recs += varint(len(body)) + body
    n = len(values)
    after_crc = struct.pack(">hiqqqhii", 0, n - 1, ts, ts, producer_id, epoch, base_seq, n) + recs
    crc = crc32c(after_crc)
    head = struct.pack(">ibI", 0, 2, crc)  # partitionLeaderEpoch, magic, crc
    batch_len = len(head) + len(after_crc)
    return struct.pack(">qi", 0, batch_len) + head + after_crc


def frame(api, ver, corr, body=b"", client=b"raw"):
    hdr = struct.pack(">hhih", api, ver, corr, len(client)) + client
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


def produce_v3(topic, partition, batch, acks=-1, corr=1):
    t = topic.encode()
    body = (struct.pack(">hhi", -1, acks, 10000) + struct.pack(">i", 1)
            + struct.pack(">h", len(t)) + t + struct.pack(">i", 1)
            + struct.pack(">ii", partition, len(batch)) + batch)
    return frame(0, 3, corr, body)


def parse_produce_v3(data):
    """(error_code, base_offset) of the single partition of a Produce v3 response."""
    off = 8  # size, correlation id
    n_topics = struct.unpack(">i", data[off:off + 4])[0]
    assert n_topics == 1
    off += 4
    nlen = struct.unpack(">h", data[off:off + 2])[0]
    off += 2 + nlen + 4
    _, err, base = struct.unpack(">ihq", data[off:off + 14])
    return err, base


def recv_frame(s):
    """One size-prefixed response from socket s (plain or TLS), with its size."""
    data = bytearray()  # appends in place: a 50 MB response is not copied per chunk
    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return bytes(data)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)

    def call(self, payload):
        self.s.sendall(payload)
        return recv_frame(self.s)

    def close(self):
        self.s.close()


def delete_records_v1(topic, partition, offset, corr=1):
    t = topic.encode()
    body = (struct.pack(">i", 1) + struct.pack(">h", len(t)) + t + struct.pack(">i", 1)
            + struct.pack(">iq", partition, offset) + struct.pack(">i", 10000))
    return frame(21, 1, corr, body)


def parse_delete_records_v1(data):
    """(low_watermark, error_code) of the single partition of the response."""
    off = 8 + 4  # size, correlation id, throttle
    off += 4
    nlen = struct.unpack(">h", data[off:off + 2])[0]
    off += 2 + nlen + 4
    _, low, err = struct.unpack(">iqh", data[off:off + 14])
    return low, err


def kstr(s):
    """A Kafka STRING (int16 length) from str or bytes."""
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def produce_v7(topics, acks=-1, corr=1):
    """A Produce v7 frame. topics: [(name, [(partition, records bytes or None)])],
    or (name, count, blob) for a pre-encoded partition array of count entries."""
    body = [struct.pack(">hhi", -1, acks, 10000) + struct.pack(">i", len(topics))]
    for t in topics:
        if len(t) == 3:
            name, count, blob = t
        else:
            name, parts = t
            count = len(parts)
            blob = b"".join(struct.pack(">i", p) + (struct.pack(">i", -1) if r is None else
                                                    struct.pack(">i", len(r)) + r)
                            for p, r in parts)
        body.append(kstr(name) + struct.pack(">i", count) + blob)
    return frame(0, 7, corr, b"".join(body))


def delete_records_v1_many(topics, corr=1):
    """A DeleteRecords v1 frame. topics: [(name, count, blob of (int32 partition, int64 offset))]."""
    body = [struct.pack(">i", len(topics))]
    for name, count, blob in topics:
        body.append(kstr(name) + struct.pack(">i", count) + blob)
    return frame(21, 1, corr, b"".join(body) + struct.pack(">i", 10000))


def read_frame(sock):
    """One response frame (with its size prefix), or b"" when the broker closed.
    Reads exactly one frame, so pipelined responses can be read one by one."""
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            return b""
        data += chunk
    want = 4 + struct.unpack(">i", data[:4])[0]
    while len(data) < want:
        chunk = sock.recv(min(65536, want - len(data)))
        if not chunk:
            return b""
        data += chunk
    return data


class Reader:
    """Reads a response body from offset pos: fixed-size fields (struct
    formats), varints, classic (int16/int32 length) and compact (flexible
    version) strings and arrays, tagged fields."""

    def __init__(self, data, pos=0):
        self.d, self.o = data, pos

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)
        self.o += struct.calcsize(fmt)
        return v[0]

    def raw(self, n):
        v = self.d[self.o:self.o + n]
        self.o += n
        return v

    def uvarint(self):
        n = shift = 0
        while True:
            b = self.d[self.o]
            self.o += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def str16(self):
        """A STRING / NULLABLE_STRING (int16 length); None when null."""
        n = self.take(">h")
        return None if n < 0 else self.raw(n).decode()

    def bytes32(self):
        """BYTES (int32 length); None when null."""
        n = self.take(">i")
        return None if n < 0 else self.raw(n)

    def cstr(self):
        """A COMPACT_(NULLABLE_)STRING; None when null."""
        n = self.uvarint() - 1
        return None if n < 0 else self.raw(n).decode()

    def array(self, fn):
        """A COMPACT_ARRAY of fn() items (empty when null)."""
        return [fn() for _ in range(self.uvarint() - 1)]

    def tags(self):
        """Skips a tagged-fields section."""
        for _ in range(self.uvarint()):
            self.uvarint()
            self.o += self.uvarint()
