#!/usr/bin/env python3
"""libpi's quant module against the reference, the `gguf` Python package.

Dequantisation must be bit-exact for every type pi can dequantise: random
blocks (random bytes, with the f16 scale fields replaced by random finite
values, including negative and subnormal ones) go through
$BUILD/tests/tool_quant and through gguf.quants.dequantize, and the two float
arrays must agree bit for bit.  Quantisation is compared the same way for
the types gguf-py can quantise itself.

Prints one line per check and a closing "N passed, N failed" line; exits
non-zero on failure.  Without gguf or numpy it reports one skip.
"""
import os
import subprocess
import sys

try:
    import numpy as np
    from gguf import GGMLQuantizationType as QT
    from gguf import quants
    from gguf.constants import GGML_QUANT_SIZES
except ImportError as e:
    print(f"skipping: {e}")
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(0)

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(BUILD, "tests", "tool_quant")
SEED = 20240611

# Byte offsets of the f16 scale fields in each block (from the layouts in
# libpi/quant.h).  The float types are handled separately.
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2],
    "Q6_K": [208],
}
# Types pi can quantise that gguf-py can quantise too.
QUANTIZE_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]

results = {"passed": 0, "failed": 0}


def report(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}")


def tool(mode, type_name, data):
    p = subprocess.run([TOOL, mode, type_name], input=data, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"{TOOL} {mode} {type_name}: {p.stderr.decode().strip()}")
    return p.stdout


def random_f16(rng, n):
    """Finite halves of either sign over 10^-7 .. 10^2, subnormals included."""
    mag = 10.0 ** rng.uniform(-7, 2, n)
    sign = rng.choice([-1.0, 1.0], n)
    h = (sign * mag).astype(np.float16)
    h[rng.random(n) < 0.01] = 0.0
    return h.view(np.uint8).reshape(n, 2)


def random_blocks(rng, type_name, n_blocks):
    _, type_size = GGML_QUANT_SIZES[QT[type_name]]
    raw = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[type_name]:
        raw[:, off:off + 2] = random_f16(rng, n_blocks)
    return raw


def check_dequant(type_name, raw):
    qtype = QT[type_name]
    want = quants.dequantize(raw.reshape(-1), qtype).astype(np.float32, copy=False)
    want = want.reshape(-1).view(np.uint32)
    got = np.frombuffer(tool("dequant", type_name, raw.tobytes()), dtype=np.uint32)
    if got.size != want.size:
        report(False, f"dequantize {type_name}: {got.size} values, gguf-py gives {want.size}")
        return
    differ = np.count_nonzero(got != want)
    detail = f" ({differ} differ)" if differ else ""
    report(differ == 0, f"dequantize {type_name}: {want.size} values bit-exact with gguf-py{detail}")


def dequant_checks(rng):
    # Float types: every bit pattern (F16, BF16) or random bits (F32),
    # NaN payloads and infinities included.
    every16 = np.arange(65536, dtype=np.uint16).view(np.uint8)
    check_dequant("F16", every16)
    check_dequant("BF16", every16)
    check_dequant("F32", rng.integers(0, 2**32, 4096, dtype=np.uint32).view(np.uint8))
    for type_name in F16_FIELDS:
        check_dequant(type_name, random_blocks(rng, type_name, 2048))


def quantize_input(rng, block_size):
    """Gaussian blocks at scales from 1e-4 to 1e2, plus awkward blocks:
    all zero, constant, a sign tie for the largest magnitude, one spike."""
    n_blocks = 2048
    x = rng.standard_normal((n_blocks, block_size)).astype(np.float32)
    x *= (10.0 ** rng.uniform(-4, 2, (n_blocks, 1))).astype(np.float32)
    x[0] = 0.0
    x[1] = 0.75
    x[2] = -3.0
    x[3, :] = x[3, :] * 0.1
    x[3, 5], x[3, 9] = -2.0, 2.0
    x[4, :] = 0.0
    x[4, 7] = 1e-3
    return x.reshape(-1)


def float_bits_input(rng):
    """Random bit patterns (NaN, inf, subnormal) plus values near the f16
    rounding boundaries, for the float conversions."""
    bits = rng.integers(0, 2**32, 1 << 16, dtype=np.uint32)
    near = np.array([65504, 65519.99, 65520, 2**-24, 2**-25, 1.5 * 2**-25,
                     3 * 2**-25, 2**-14 - 2**-25, 1 + 2**-11, 1 + 3 * 2**-11],
                    dtype=np.float32)
    return np.concatenate([bits.view(np.float32), near, -near])


def check_quantize(type_name, x):
    with np.errstate(over="ignore", invalid="ignore"):
        want = quants.quantize(x, QT[type_name])
    want = np.ascontiguousarray(want).view(np.uint8).reshape(-1)
    got = np.frombuffer(tool("quantize", type_name, x.tobytes()), dtype=np.uint8)
    block_size, type_size = GGML_QUANT_SIZES[QT[type_name]]
    if got.size != want.size:
        report(False, f"quantize {type_name}: {got.size} bytes, gguf-py gives {want.size}")
        return
    differ = np.any(got.reshape(-1, type_size) != want.reshape(-1, type_size), axis=1)
    n = differ.size
    report(not differ.any(),
           f"quantize {type_name}: {n - np.count_nonzero(differ)} of {n} blocks "
           f"byte-identical with gguf-py")


def quantize_checks(rng):
    for type_name in QUANTIZE_TYPES:
        block_size, _ = GGML_QUANT_SIZES[QT[type_name]]
        if block_size == 1:
            check_quantize(type_name, float_bits_input(rng))
        else:
            check_quantize(type_name, quantize_input(rng, block_size))


def check_rejects_partial_block():
    p = subprocess.run([TOOL, "dequant", "Q4_K"], input=b"\0" * 145, capture_output=True)
    report(p.returncode == 1 and b"whole number" in p.stderr,
           "tool_quant rejects input that is not whole blocks")


def main():
    if not os.access(TOOL, os.X_OK):
        report(False, f"{TOOL} not built")
    else:
        rng = np.random.default_rng(SEED)
        for run in (dequant_checks, quantize_checks):
            try:
                run(rng)
            except RuntimeError as e:
                report(False, str(e))
        check_rejects_partial_block()
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
