#!/usr/bin/env python3
"""GGUF interoperability with the `gguf` Python package, both ways.

1. A file written by pi's writer (tests/tool_gguf) is read by gguf.GGUFReader:
   every metadata value and tensor must come back as written.
2. A file written by gguf.GGUFWriter is read by pi-inspect --json: every
   value, shape and type must match what Python wrote.
"""
import json
import os
import subprocess
import sys
import tempfile

BUILD = os.environ.get("BUILD", "build")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    if ok:
        passed += 1
    else:
        failed += 1


def finish():
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


try:
    import numpy as np
    import gguf
except ImportError as e:
    print(f"skipping: {e} (make deps installs it)")
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(0)


def field_value(f):
    """Decode a GGUFReader field into a Python value."""
    t = f.types[0]
    if t == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    if t == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    return f.parts[f.data[0]].tolist()[0]


def pi_writes_python_reads(tmp):
    path = os.path.join(tmp, "pi.gguf")
    subprocess.run([f"{BUILD}/tests/tool_gguf", "write", path], check=True)
    r = gguf.GGUFReader(path)
    want = {
        "general.architecture": "llama", "general.name": "pi interop test",
        "test.u32": 123456789, "test.i32": -42, "test.u64": 18446744073709551615,
        "test.i64": -9007199254740993, "test.bool": True,
        "test.arr_i8": [-128, 0, 127], "test.arr_i32": [-5, 7],
        "tokenizer.ggml.tokens": ["<s>", "hello", " w\u00f6rld", ""],
    }
    for k, v in want.items():
        got = field_value(r.fields[k]) if k in r.fields else "<missing>"
        check(f"python reads pi's {k}", got == v, f"{got!r} != {v!r}")
    check("python reads pi's f32", abs(field_value(r.fields["test.f32"]) - 1e-3) < 1e-9)
    check("python reads pi's f64", field_value(r.fields["test.f64"]) == 3.141592653589793)
    tensors = {t.name: t for t in r.tensors}
    f32 = np.arange(256, dtype=np.float32) * 0.25 - 10.0
    t = tensors.get("f32.weight")
    check("python reads pi's f32 tensor", t is not None and list(t.shape) == [64, 4]
          and np.array_equal(np.asarray(t.data).reshape(-1), f32))
    t = tensors.get("q8_0.weight")
    ok = t is not None and t.tensor_type == gguf.GGMLQuantizationType.Q8_0
    if ok:
        deq = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(-1)
        ok = deq.shape == (128,) and np.max(np.abs(deq - f32[:128])) < 0.1
    check("python dequantises pi's Q8_0 tensor", ok)
    t = tensors.get("q4_k.weight")
    check("python reads pi's Q4_K tensor", t is not None and
          t.tensor_type == gguf.GGMLQuantizationType.Q4_K and t.n_elements == 256)


def python_writes_pi_reads(tmp):
    path = os.path.join(tmp, "py.gguf")
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_uint8("t.u8", 200)
    w.add_int16("t.i16", -300)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_float32("t.f32", 0.5)
    w.add_float64("t.f64", -2.25)
    w.add_bool("t.bool", False)
    w.add_string("t.str", "tab\there \"quoted\" \u20ac")
    w.add_array("t.arr", [1, 2, 3])
    w.add_array("t.strs", ["x", "yz"])
    a = np.arange(96, dtype=np.float32).reshape(3, 32)
    w.add_tensor("a.weight", a)
    q = gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32),
                             gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("b.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = subprocess.run([f"{BUILD}/bin/pi-inspect", "--json", "--full", path],
                         capture_output=True, text=True)
    check("pi-inspect reads python's file", out.returncode == 0, out.stderr)
    if out.returncode:
        return
    j = json.loads(out.stdout)
    meta = {m["key"]: m for m in j["metadata"]}
    want = {"general.architecture": "qwen2", "t.u8": 200, "t.i16": -300, "t.u64": 2**63 + 5,
            "t.f32": 0.5, "t.f64": -2.25, "t.bool": False,
            "t.str": "tab\there \"quoted\" \u20ac", "t.arr": [1, 2, 3], "t.strs": ["x", "yz"]}
    for k, v in want.items():
        got = meta.get(k, {}).get("value", "<missing>")
        check(f"pi reads python's {k}", got == v, f"{got!r} != {v!r}")
    check("pi reads python's value types",
          [meta[k]["type"] for k in ("t.u8", "t.i16", "t.u64", "t.f32", "t.f64")] ==
          ["u8", "i16", "u64", "f32", "f64"])
    tens = {t["name"]: t for t in j["tensors"]}
    check("pi reads python's f32 tensor shape", tens.get("a.weight", {}).get("shape") == [32, 3]
          and tens["a.weight"]["type"] == "F32" and tens["a.weight"]["size"] == 384)
    check("pi reads python's Q8_0 tensor", tens.get("b.weight", {}).get("type") == "Q8_0"
          and tens["b.weight"]["shape"] == [32, 2] and tens["b.weight"]["size"] == 68)
    # the same file through a pipe
    with open(path, "rb") as f:
        piped = subprocess.run([f"{BUILD}/bin/pi-inspect", "--json", "--full", "-"],
                               input=f.read(), capture_output=True)
    check("pi-inspect reads the file from a pipe", piped.returncode == 0 and
          json.loads(piped.stdout)["tensors"] == j["tensors"], piped.stderr.decode())


with tempfile.TemporaryDirectory() as tmp:
    pi_writes_python_reads(tmp)
    python_writes_pi_reads(tmp)
finish()
