"""safetensors_py_check.py - the Python side of tests/test_safetensors_py.sh.

An independent reader and writer of the safetensors format built from the
standard library and numpy only (struct + json + numpy.frombuffer), plus the
reference `safetensors` package when it is installed.

    check-c FILE      FILE was written by `safetensors_tool write`: check it
    write-py DIR      write files from Python into DIR, each with the dump
                      `safetensors_tool dump` must print (NAME.expect)
    write-bad DIR     write corrupt files into DIR (bad_*.safetensors)

Prints one "PASS: ..." or "FAIL: ..." line per check.
"""
import json
import os
import struct
import sys

import numpy as np

try:
    import safetensors.numpy as stnp  # the reference implementation
    from safetensors import safe_open
except Exception:  # not installed: the independent code still runs
    stnp = None

NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
      "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
      "BOOL": "?"}


def check(cond, what):
    print(("PASS: " if cond else "FAIL: ") + what)
    sys.stdout.flush()


def read_raw(path):
    with open(path, "rb") as fh:
        b = fh.read()
    (n,) = struct.unpack("<Q", b[:8])
    hdr_bytes = b[8:8 + n]
    return n, hdr_bytes, json.loads(hdr_bytes.decode("utf-8")), b[8 + n:]


def sample_expected():
    """What safetensors_tool.c's sample() writes, rebuilt independently."""
    w = (np.arange(12, dtype=np.float32) * np.float32(0.25) - np.float32(1.5)).view("<u4").copy()
    w[0], w[1], w[2], w[3] = 0x80000000, 0x00000001, 0x7F800000, 0x7FC00001
    t = [
        ("w", "F32", [3, 4], w.tobytes()),
        ("step", "I64", [], np.array([123456789012], "<i8").tobytes()),
        ("pos", "I32", [2, 3], np.arange(-3, 3, dtype="<i4").tobytes()),
        ("mask", "U8", [4], bytes([0, 1, 254, 255])),
        ("d", "F64", [2], np.array([0.1, -2.5], "<f8").tobytes()),
        ("empty", "F32", [0, 3], b""),
        ("blocks.0.lmu.L \u2713 \"q\"", "F32", [2], np.array([1, 2], "<f4").tobytes()),
        ("big", "I64", [3], np.array([-2**63, -1, 2**63 - 1], "<i8").tobytes()),
    ]
    meta = {"config": "{\"d\": 204}", "note \U0001D11E": "h\u00e9llo \"q\" \\ \n\t\x01 end"}
    return t, meta


def check_c(path):
    n, hdr_bytes, hdr, data = read_raw(path)
    tensors, meta = sample_expected()
    check(n % 8 == 0, "C file: header length %d is a multiple of 8" % n)
    body = hdr_bytes.rstrip(b" ")
    check(len(hdr_bytes) - len(body) < 8 and body.endswith(b"}"), "C file: header padded with < 8 spaces")
    check(list(hdr.keys()) == ["__metadata__"] + [t[0] for t in tensors],
          "C file: __metadata__ first, then tensors in the given order")
    check(hdr.get("__metadata__") == meta, "C file: metadata (escapes, unicode) decodes with json")
    off = 0
    for name, dt, shape, raw in tensors:
        e = hdr.get(name, {})
        ok = (e.get("dtype") == dt and e.get("shape") == shape and e.get("data_offsets") == [off, off + len(raw)]
              and data[off:off + len(raw)] == raw)
        check(ok, "C file: tensor %r dtype/shape/offsets/bytes (independent reader)" % name)
        arr = np.frombuffer(data, dtype=NP[dt], count=int(np.prod(shape)) if shape else 1, offset=off)
        check(arr.reshape(shape).tobytes() == raw, "C file: numpy.frombuffer of %r" % name)
        off += len(raw)
    check(off == len(data), "C file: offsets cover the data section exactly")
    wv = np.frombuffer(data, dtype="<f4", count=12).copy()
    check(np.signbit(wv[0]) and wv[0] == 0 and np.isinf(wv[2]) and np.isnan(wv[3]) and wv[1] > 0,
          "C file: -0, denormal, inf, NaN seen as such by numpy")
    if stnp is not None:
        got = stnp.load_file(path)
        for name, dt, shape, raw in tensors:
            a = got.get(name)
            check(a is not None and list(a.shape) == shape and a.tobytes() == raw,
                  "C file: safetensors.numpy.load_file reads %r" % name)
        with safe_open(path, framework="np") as fh:
            check(fh.metadata() == meta, "C file: safetensors safe_open metadata")


def dump_of(tensors, meta):
    """The canonical dump safetensors_tool prints, from (name, dtype, shape, raw)."""
    lines = []
    for name, dt, shape, raw in sorted(tensors, key=lambda t: t[0].encode("utf-8")):
        lines.append("T %s %s %s %s" % (name.encode("utf-8").hex(), dt,
                                        ",".join(str(s) for s in shape) if shape else "-",
                                        raw.hex() if raw else "-"))
    for k in sorted(meta, key=lambda k: k.encode("utf-8")):
        lines.append("M %s %s" % (k.encode("utf-8").hex(), meta[k].encode("utf-8").hex() or "-"))
    return "\n".join(lines) + "\n"


def py_tensors():
    rng = np.random.default_rng(7)
    f16 = np.array([1.0, -2.0, 6e-8, np.inf, 65504.0, -0.0], dtype="<f2")
    t = [
        ("w", "F32", [2, 3], rng.standard_normal((2, 3)).astype("<f4")),
        ("half", "F16", [6], f16),
        ("bf", "BF16", [3], np.array([0x3F80, 0xC2F7, 0x7FC1], dtype="<u2")),
        ("dbl", "F64", [2], np.array([1e300, -1e-300], dtype="<f8")),
        ("i64", "I64", [2], np.array([-5, 2**62], dtype="<i8")),
        ("i32", "I32", [3], np.array([-1, 0, 7], dtype="<i4")),
        ("i16", "I16", [1], np.array([-300], dtype="<i2")),
        ("i8", "I8", [2], np.array([-128, 127], dtype="i1")),
        ("u64", "U64", [1], np.array([2**64 - 1], dtype="<u8")),
        ("u32", "U32", [1], np.array([4000000000], dtype="<u4")),
        ("u16", "U16", [1], np.array([65535], dtype="<u2")),
        ("u8", "U8", [2, 1], np.array([[3], [250]], dtype="u1")),
        ("flags", "BOOL", [3], np.array([True, False, True])),
        ("scalar", "F32", [], np.array(2.5, dtype="<f4")),
        ("zero", "F32", [0], np.zeros(0, dtype="<f4")),
        ("\U0001D11E clef", "F32", [1], np.array([9.0], dtype="<f4")),
        ("tab\tname \"q\" \\", "F32", [1], np.array([-9.0], dtype="<f4")),
    ]
    return [(n, d, s, a.tobytes()) for n, d, s, a in t]


PY_META = {"config": json.dumps({"d": 204, "name": "lmu \u2713"}), "\u00fcn\u00ef": "x\u0001y\U0001D11E"}


def write_manual(path, tensors, meta, ensure_ascii, indent, pad, data_order):
    """Independent writer: offsets assigned in data_order, header in list order."""
    offs, pos = {}, 0
    for i in data_order:
        offs[i] = (pos, pos + len(tensors[i][3]))
        pos += len(tensors[i][3])
    hdr = {"__metadata__": meta} if meta else {}
    for i, (name, dt, shape, raw) in enumerate(tensors):
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": list(offs[i])}
    h = json.dumps(hdr, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")
    if pad:
        h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h)
        for i in data_order:
            fh.write(tensors[i][3])


def write_py(d):
    t = py_tensors()
    n = len(t)
    files = {
        # ASCII-only JSON (\uXXXX escapes, surrogate pairs), default ", " / ": "
        # separators, space padding, data stored in reverse header order
        "py_ascii": dict(ensure_ascii=True, indent=None, pad=True, data_order=list(range(n))[::-1]),
        # raw UTF-8, pretty-printed with newlines, no padding at all
        "py_pretty": dict(ensure_ascii=False, indent=2, pad=False, data_order=list(range(n))),
    }
    for name, kw in files.items():
        write_manual(os.path.join(d, name + ".safetensors"), t, PY_META, **kw)
        with open(os.path.join(d, name + ".expect"), "w", encoding="ascii") as fh:
            fh.write(dump_of(t, PY_META))
        check(True, "wrote %s.safetensors" % name)
    if stnp is not None:
        arrays = {}
        for name, dt, shape, raw in t:
            if dt == "BF16":
                continue  # numpy has no bfloat16
            arrays[name] = np.frombuffer(raw, dtype=NP[dt]).reshape(shape)
        stnp.save_file(arrays, os.path.join(d, "py_reference.safetensors"), metadata=PY_META)
        with open(os.path.join(d, "py_reference.expect"), "w", encoding="ascii") as fh:
            fh.write(dump_of([x for x in t if x[1] != "BF16"], PY_META))
        check(True, "wrote py_reference.safetensors with safetensors.numpy.save_file")


def write_bad(d):
    one = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}

    def raw(name, header_text, data=b"\0" * 4, n=None):
        h = header_text.encode("utf-8")
        with open(os.path.join(d, "bad_%s.safetensors" % name), "wb") as fh:
            fh.write(struct.pack("<Q", len(h) if n is None else n) + h + data)

    raw("overlap", json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}), b"\0" * 12)
    raw("trailing", json.dumps({"a": one}), b"\0" * 5)
    raw("hole", json.dumps({"a": one, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}), b"\0" * 12)
    raw("past_eof", json.dumps({"a": one}), n=1000)
    raw("shape_mismatch", json.dumps({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}))
    raw("duplicate", '{"a": %s, "a": %s}' % (json.dumps(one), json.dumps(one)))
    raw("meta_int", json.dumps({"__metadata__": {"k": 1}, "a": one}))
    raw("float_shape", json.dumps({"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}))
    raw("neg_offset", json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}))
    raw("dtype", json.dumps({"a": {"dtype": "float32", "shape": [1], "data_offsets": [0, 4]}}))
    raw("deep", '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": %s}}' % ("[" * 200 + "]" * 200))
    raw("lone_surrogate", '{"\\udc01": %s}' % json.dumps(one))
    raw("truncated_json", json.dumps({"a": one})[:-1])
    check(True, "wrote the corrupt files")


if __name__ == "__main__":
    mode, arg = sys.argv[1], sys.argv[2]
    {"check-c": check_c, "write-py": write_py, "write-bad": write_bad}[mode](arg)
