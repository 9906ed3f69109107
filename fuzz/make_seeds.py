#!/usr/bin/env python3
"""Writes the seed inputs of the binary fuzz targets into corpus/<name>/.

Seeds are valid and near-valid messages in the layouts of docs/tasks.md and
libs/prism/codec.h. The service targets' seeds (REST and NATS messages) are
text files written by hand. Run it again after changing a layout:
    python3 fuzz/make_seeds.py
Regression inputs (crash-*) in the corpus directories are kept as they are."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SELF = b"owner:0123456789abcdef0123456789abcdef"
OTHER = b"owner:fedcba9876543210fedcba9876543210"


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def s(b): return u32(len(b)) + b


OID = bytes(range(20))
OID2 = bytes(range(20, 40))
TID = bytes(range(16))

# values (codec.c): kind, then its body
NULL = u8(0)
def JSON(t): return u8(1) + s(t)
def BYTES(b): return u8(2) + u64(len(b)) + b
def TENSOR(dtype, shape, data, pos=0):
    head = u8(3) + u8(dtype) + u8(len(shape)) + b"".join(u64(d) for d in shape) + u64(len(data))
    at = pos + len(head) + 1
    pad = (16 - at % 16) % 16
    return head + u8(pad) + bytes(pad) + data
def LIST(*items): return u8(4) + u32(len(items)) + b"".join(items)
def REF(oid, owner): return u8(5) + oid + s(owner)
def ERROR(task, msg): return u8(6) + s(task) + s(msg)


def inline(v): return u8(1) + u32(len(v)) + v
def stored(): return u8(2) + OID + s(b"n" * 32) + s(b"/tmp/store.sock") + s(b"http://127.0.0.1:1") + u64(4096)
def error_slot(): return u8(3) + u8(11) + s(b"pkg/fn") + s(b"boom")


def frame(t, payload): return u32(len(payload) + 1) + u8(t) + payload


def write(name, items):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for label, data in items:
        h = hashlib.sha1(data).hexdigest()[:12]
        with open(os.path.join(d, "seed-%s-%s" % (label, h)), "wb") as f:
            f.write(data)


def codec():
    values = [
        ("null", NULL), ("json", JSON(b'{"a": [1, 2.5, "x"]}')), ("json-bad", JSON(b'{"a":')),
        ("bytes", BYTES(b"hello")), ("bytes-empty", BYTES(b"")),
        ("tensor", TENSOR(1, [2, 2], bytes(16))), ("tensor-u8", TENSOR(5, [3], b"abc")),
        ("tensor-short", TENSOR(4, [4], bytes(8))), ("tensor-0d", TENSOR(2, [], bytes(8))),
        ("list", LIST(NULL, JSON(b"1"), REF(OID, OTHER), LIST(BYTES(b"x")))),
        ("ref-mine", REF(OID, SELF)), ("ref", REF(OID2, OTHER)), ("error", ERROR(b"pkg/fn", b"it failed")),
        ("deep", LIST(LIST(LIST(LIST(LIST(NULL)))))), ("list-long", u8(4) + u32(0xffffffff) + NULL),
    ]
    items = []
    for label, v in values:
        for flags in (0, 1, 3):
            items.append(("%s-%d" % (label, flags), u8(flags) + v))
    write("codec", items)


def wire():
    hello = frame(1, s(b"0" * 32) + s(SELF))
    push = frame(2, TID + s(b"builtin") + s(b"add") + u16(1) + u32(2) + inline(JSON(b"1")) + inline(JSON(b"2")))
    push_stored = frame(2, TID + s(b"builtin") + s(b"echo") + u16(1) + u32(1) + stored())
    done = frame(3, TID + u16(2) + inline(JSON(b"3")) + u32(1) + OID + s(OTHER) + error_slot() + u32(0))
    cancel = frame(4, TID)
    create = frame(5, TID + s(b"builtin") + s(b"Counter") + u16(1) + u32(1) + inline(JSON(b"0")))
    kill = frame(6, TID)
    write("wire", [
        ("hello-push", hello + push), ("push-stored", push_stored), ("done", done),
        ("cancel", cancel), ("actor", create + kill + frame(7, TID)),
        ("short", push[:-3]), ("bad-length", u32(0) + u8(2)), ("big-length", u32(0xfffffff0) + u8(3)),
    ])


def owner():
    def req(op, frm, wait, items):
        return u8(op) + s(frm) + u32(wait) + u32(len(items)) + b"".join(o + u32(c) for o, c in items)
    # first byte: 0 = a request on prism.owner.HEX, 1 = an answer on .r, 2 = a DONE for a task
    oids = [bytes([i]) * 20 for i in range(6)]
    reqs = [
        ("get", req(1, OTHER, 0, [(oids[0], 0)])), ("get-wait", req(1, OTHER, 2000, [(oids[1], 0)])),
        ("add", req(2, OTHER, 0, [(oids[0], 1), (oids[2], 2)])),
        ("remove", req(3, OTHER, 0, [(oids[0], 1)])), ("ping", req(4, OTHER, 0, [])),
        ("add-many", req(2, OTHER, 0, [(o, 3) for o in oids])),
        ("remove-neg", req(3, OTHER, 0, [(oids[2], 0xffffffff)])),
        ("n-big", u8(2) + s(OTHER) + u32(0) + u32(0x10000000)),
        ("holds", req(5, b"store:n1", 0, [(o, 0) for o in oids[:3]])),
    ]
    answers = [
        ("inline", u8(1) + oids[3] + u32(len(JSON(b"7"))) + JSON(b"7")),
        ("stored", u8(2) + oids[4] + s(b"n" * 32) + s(b"/tmp/s.sock") + s(b"http://x") + u64(10)),
        ("failed", u8(3) + oids[3] + u8(11) + u32(len(ERROR(b"t", b"m"))) + ERROR(b"t", b"m")),
        ("pending", u8(4) + oids[4]), ("unknown", u8(5) + oids[3]), ("short", u8(1) + oids[3] + u32(100)),
    ]
    dones = [
        ("done", u16(1) + inline(JSON(b"3")) + u32(0)),
        ("done-refs", u16(1) + inline(LIST(REF(oids[0], SELF), REF(oids[5], OTHER))) + u32(2) + oids[0] + s(SELF) + oids[5] + s(OTHER)),
        ("done-stored", u16(1) + stored() + u32(0)),
        ("done-error", u16(1) + error_slot() + u32(0)),
        ("done-two", u16(2) + inline(NULL) + u32(0) + inline(NULL) + u32(0)),
    ]
    write("owner", [(l, u8(0) + d) for l, d in reqs] + [(l, u8(1) + d) for l, d in answers] +
          [(l, u8(2) + d) for l, d in dones])


def store_proto():
    # psp_hdr: u32 len, u16 type, u16 flags (host order: little-endian here)
    def msg(t, body, flags=0): return u32(len(body)) + u16(t) + u16(flags) + body
    hello = msg(1, u32(2) + u32(1234))  # protocol version 2
    OWNER = bytes(range(1, 17))
    create = msg(2, OID + u32(4) + u32(0) + u64(100) + OWNER + b"meta")
    put = msg(5, OID2 + u32(2) + u32(0) + u64(5) + bytes(16) + b"mt" + b"hello", 2)
    write("store_proto", [
        ("hello", hello), ("create-seal", hello + create + msg(3, OID)),
        ("put-get", hello + put + msg(6, OID2 + u32(0)) + msg(7, OID2)),
        ("abort", hello + create + msg(4, OID)),
        ("misc", hello + put + msg(9, OID2) + msg(10, OID2) + msg(11, OID2) + msg(12, b"") + msg(8, OID2)),
        ("noreply", hello + msg(12, b"", 1)), ("no-hello", create),
        ("bad-len", hello + msg(3, OID + b"x")), ("big-create", hello + msg(2, OID + u32(0) + u32(0) + u64(1 << 62) + OWNER)),
        ("get-wait", hello + msg(6, OID + struct.pack("<i", 5))),
    ])


# blocks (docs/datasets.md, "Blocks"): written here from the format's
# description, independently of libs/data, so the seeds check the document too.
BLOCK_TYPES = {"bool": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "uint8": 6, "uint16": 7,
               "uint32": 8, "uint64": 9, "float32": 10, "float64": 11, "utf8": 12, "binary": 13,
               "tensor": 14}
BLOCK_NUM = {"int8": "b", "int16": "h", "int32": "i", "int64": "q", "uint8": "B", "uint16": "H",
             "uint32": "I", "uint64": "Q", "float32": "f", "float64": "d"}


def align64(n): return (n + 63) & ~63


def bitmap(flags):
    out = bytearray((len(flags) + 7) // 8)
    for i, f in enumerate(flags):
        if f:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def block(columns, rows=None):
    """columns: (name, type, values) or (name, "tensor", values, elem, shape); None is null."""
    if rows is None:
        rows = len(columns[0][2]) if columns else 0
    records, bufs = [], []
    schema_len = sum(64 + 8 * (len(c[4]) if c[1] == "tensor" else 0) + ((len(c[0].encode()) + 7) & ~7)
                     for c in columns)
    pos = align64(64 + schema_len)
    for c in columns:
        name, t, values = c[0].encode(), c[1], c[2]
        elem, shape = (c[3], c[4]) if t == "tensor" else (None, [])
        nulls = sum(v is None for v in values)
        validity = bitmap([v is not None for v in values]) if nulls else b""
        data = b""
        if t == "bool":
            vals = bitmap([bool(v) for v in values])
        elif t in BLOCK_NUM:
            vals = b"".join(struct.pack("<" + BLOCK_NUM[t], v or 0) for v in values)
        elif t in ("utf8", "binary"):
            offs, data = [0], b""
            for v in values:
                data += (v.encode() if isinstance(v, str) else v) if v is not None else b""
                offs.append(len(data))
            vals = b"".join(struct.pack("<i", o) for o in offs)
        else:
            per = 1
            for d in shape:
                per *= d
            vals = b"".join(struct.pack("<%d%s" % (per, BLOCK_NUM[elem]), *(v if v is not None else [0] * per))
                            for v in values)
        slots = []
        for b in (validity, vals, data):
            if b:
                slots.append((pos, len(b)))
                bufs.append((pos, b))
                pos = align64(pos + len(b))
            else:
                slots.append((0, 0))
        rec = u8(BLOCK_TYPES[t]) + u8(BLOCK_TYPES[elem] if elem else 0) + u8(len(shape)) + u8(0)
        rec += u32(len(name)) + u64(nulls) + b"".join(u64(o) + u64(n) for o, n in slots)
        rec += b"".join(u64(d) for d in shape) + name + bytes((8 - len(name) % 8) % 8)
        records.append(rec)
    total = pos
    header = b"PRISMBLK" + u16(1) + u16(0) + u32(len(columns)) + u64(rows) + u64(total) + u32(schema_len)
    out = bytearray(total)
    out[:64] = header + bytes(64 - len(header))
    body = b"".join(records)
    assert len(body) == schema_len
    out[64:64 + schema_len] = body
    for at, b in bufs:
        out[at:at + len(b)] = b
    return bytes(out)


def block_seeds():
    every = [
        ("b", "bool", [True, False, None, True, False]),
        ("i8", "int8", [-128, 127, None, 0, 5]), ("i16", "int16", [-1, 2, 3, None, 5]),
        ("i32", "int32", [1, 2, 3, 4, 5]), ("i64", "int64", [-(1 << 63), (1 << 63) - 1, None, 0, 1]),
        ("u8", "uint8", [255, 0, 1, 2, None]), ("u16", "uint16", [1, 2, 3, 4, 5]),
        ("u32", "uint32", [4294967295, 0, 1, 2, 3]), ("u64", "uint64", [1, 2, None, 4, 5]),
        ("f32", "float32", [0.5, -1.25, None, 3.0, float("nan")]),
        ("f64", "float64", [0.1, float("inf"), None, -0.0, 1e300]),
        ("s", "utf8", ["", "h\u00e9llo", None, "a\"b\\c\n", "x\0y"]),
        ("bin", "binary", [b"\xff\x00", b"", None, b"abc", b"\x80"]),
        ("t", "tensor", [[1, 2, 3, 4, 5, 6], None, [0] * 6, [9] * 6, [255] * 6], "uint8", [2, 3]),
        ("tf", "tensor", [[1.5, -2.0], [0, 0], None, [3, 4], [5, 6]], "float32", [2]),
    ]
    images = [("image", "tensor", [[i] * 48 for i in range(4)], "uint8", [4, 4, 3]), ("label", "int64", [0, 1, 2, 3])]
    text = [("text", "utf8", ["alpha", "beta", "gamma", None, "", "\u00e9t\u00e9"] * 3)]
    blocks = [
        ("every-type", block(every)), ("images", block(images)), ("text", block(text)),
        ("empty", block([])), ("empty-rows", block([(c[0], c[1], [], *c[3:]) for c in every])),
        ("no-columns-rows", block([], rows=3)), ("bools-17", block([("b", "bool", [i % 3 == 0 for i in range(17)])])),
        ("zero-size-tensor", block([("z", "tensor", [[]] * 5, "int16", [0, 4])])),
    ]
    items = list(blocks)
    ev = blocks[0][1]
    # near-valid: truncated, a length field off by one, offsets that go down, a bad null count
    items.append(("truncated", ev[:len(ev) - 64]))
    items.append(("header-only", ev[:64]))
    bad = bytearray(ev)
    bad[24:32] = u64(len(ev) + 64)
    items.append(("byte-length", bytes(bad)))
    bad = bytearray(ev)
    bad[12:16] = u32(16)
    items.append(("columns-more", bytes(bad)))
    tx = bytearray(blocks[2][1])
    off = struct.unpack_from("<Q", tx, 64 + 32)[0]
    tx[off + 8:off + 12] = u32(1)
    items.append(("offsets-down", bytes(tx)))
    bad = bytearray(ev)
    bad[64 + 8:64 + 16] = u64(2)
    items.append(("null-count", bytes(bad)))
    # JSON rows, as from_items takes them
    items += [
        ("json-rows", b'[{"a": 1, "b": 1.5, "c": "x", "d": true, "e": [[1, 2], [3, 4]]}, {"a": null, "b": 2}]'),
        ("json-mixed", b'[{"a": 1}, {"a": "x"}]'), ("json-empty", b"[]"), ("json-keyless", b"[{}, {}]"),
        ("json-ragged", b'[{"t": [[1], [2, 3]]}]'),
    ]
    write("block", items)
def ws():
    # client frames (RFC 6455), masked; byte 0: payload limit / 64, byte 1: read size - 1
    key = b"\x37\xfa\x21\x3d"
    def frame(first, payload, mask=True, length=None):
        n = len(payload) if length is None else length
        if n < 126:
            head = bytes([first, (0x80 if mask else 0) | n])
        elif n <= 0xffff:
            head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack(">H", n)
        else:
            head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack(">Q", n)
        if not mask:
            return head + payload
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    close = frame(0x88, struct.pack(">H", 1000) + b"bye")
    write("ws", [
        ("ping-close", b"\x40\xff" + frame(0x89, b"are you there") + close),
        ("text-cut", b"\x40\x02" + frame(0x81, "caf\u00e9 \u2603".encode()) + frame(0x8a, b"")),
        ("fragments", b"\x40\x10" + frame(0x01, b"one ") + frame(0x80, b"two") + close),
        ("long16", b"\x10\xff" + frame(0x82, b"x" * 300)),
        ("long64", b"\x01\xff" + frame(0x82, b"", length=1 << 40)),
        ("unmasked", b"\x40\xff" + frame(0x81, b"hi", mask=False)),
        ("close-empty", b"\x00\x00" + frame(0x88, b"")),
        ("close-bad", b"\x00\xff" + frame(0x88, b"\x03\xed") + frame(0x88, b"\x03")),
        ("key", b"\x00\xff" + b"dGhlIHNhbXBsZSBub25jZQ=="),
        ("utf8", b"\x40\x03" + "\u00e9\u2603\U0001f600".encode() + b"\xff\xc3\x00\xe2\x82"),
    ])


if __name__ == "__main__":
    codec()
    wire()
    owner()
    store_proto()
    block_seeds()
    ws()
