#!/usr/bin/env python3
"""Sanity checks of the NumPy reference itself (tests/ref/), no C engine.

- the RoPE conventions: NORM rotates (x[2i], x[2i+1]), NEOX (x[i], x[i+n/2]),
  and a llama GGUF run with NORM equals the Hugging Face layout (Q/K rows
  un-permuted as convert_hf_to_gguf.py permuted them) run with NEOX;
- synth.py models of llama, qwen2 and qwen3 load and give finite logits,
  and synth.py is deterministic for a seed;
- KV-cached and uncached forward passes agree;
- on the real SmolLM2-135M (skipped when absent): " Paris" is the argmax
  after "The capital of France is", the greedy continuation, and float32
  against float64 logits (the floor for any float32 engine's tolerance);
- on the real Qwen2.5-Coder-0.5B (skipped when absent): " Paris" again.

Prints one line per check and a closing "N passed, N failed" line; exits
non-zero on failure.  Without gguf or numpy it reports one skip.
"""
import os
import subprocess
import sys
import tempfile

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

try:
    import numpy as np
    import gguf  # noqa: F401
except ImportError as e:
    print(f"skipping: {e} (make deps installs it)")
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ref"))
import forward as ref  # noqa: E402
import synth  # noqa: E402

MODELS_DIR = os.environ.get("MODELS_DIR", "models")
SMOL = os.path.join(MODELS_DIR, "SmolLM2-135M-Instruct.Q4_1.gguf")
QWEN = os.path.join(MODELS_DIR, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
F32_F64_TOL = 1e-4   # max |l32 - l64| / max |l64|
counts = {"passed": 0, "failed": 0, "skipped": 0}


def check(name, ok, detail=""):
    counts["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""))


def skip(name, why):
    counts["skipped"] += 1
    print(f"skip {name}: {why}")


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def cached_logits(m, tokens, prefill):
    """Logits of every position, prefill tokens at once then one at a time."""
    cache = m.new_cache()
    rows = [m.forward(tokens[:prefill], cache, 0)]
    for i in range(prefill, len(tokens)):
        rows.append(m.forward(tokens[i:i + 1], cache, i))
    return np.concatenate(rows)


class HFLayout(ref.Model):
    """A llama model read as Hugging Face stores it: Q/K rows un-permuted and
    NEOX ("rotate_half") RoPE.  Must give the same logits as the GGUF layout."""

    def __init__(self, path):
        super().__init__(path)
        self.neox = True

    def w(self, name):
        a = super().w(name)
        if name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = self.n_head if "attn_q" in name else self.n_head_kv
            rows = a.shape[0]
            # inverse of convert_hf_to_gguf.py LlamaModel.permute
            a = a.reshape(heads, rows // heads // 2, 2, -1).swapaxes(1, 2).reshape(rows, -1)
        return a


def rope_checks(tmp):
    path = os.path.join(tmp, "llama.gguf")
    synth.synth(path, "llama", "f32", seed=1)
    m = ref.Model(path)
    hd = m.head_dim
    e0 = np.zeros((1, 1, hd), np.float32)
    e0[0, 0, 0] = 1.0
    th = 3 * m.freq_base ** 0.0  # pair 0 turns by pos * 1 rad
    for neox, partner in ((False, 1), (True, hd // 2)):
        m.neox = neox
        y = m.rope(e0, [3])[0, 0]
        want = np.zeros(hd, np.float32)
        want[0], want[partner] = np.cos(th), np.sin(th)
        check(f"rope {'NEOX' if neox else 'NORM'}: x[0] pairs with x[{partner}]",
              np.allclose(y, want, atol=1e-6))
        rng = np.random.default_rng(0)
        q, k = rng.standard_normal((2, 1, 1, hd)).astype(np.float32)
        dots = [float(np.sum(m.rope(q, [p + 5]) * m.rope(k, [p]))) for p in (0, 7, 100)]
        check(f"rope {'NEOX' if neox else 'NORM'}: q.k depends only on the distance",
              np.allclose(dots, dots[0], rtol=1e-4), f"{dots}")
    m.neox = False
    toks = [5, 70, 200, 17, 3, 99, 250, 40]
    a = m.forward(toks)
    b = HFLayout(path).forward(toks)
    check("llama: GGUF layout + NORM rope == HF layout + NEOX rope",
          rel_err(a, b) < 1e-5, f"rel err {rel_err(a, b):.1e}")


def synth_checks(tmp):
    toks = [1, 5, 70, 200, 17, 3, 99, 250, 40, 41]
    for arch in ("llama", "qwen2", "qwen3"):
        for qname in ("f32", "q8_0", "q4_k_m"):
            path = os.path.join(tmp, f"{arch}-{qname}.gguf")
            try:
                meta = synth.synth(path, arch, qname, seed=7)
                m = ref.Model(path)
                logits = m.forward(toks)
                ok = logits.shape == (len(toks), len(meta["tokens"])) and np.isfinite(logits).all()
                spread = float(logits[-1].std())
                check(f"synth {arch} {qname}: loads, finite logits {logits.shape}",
                      ok and 0.3 < spread < 30, f"final-position logit std {spread:.2f}")
            except Exception as e:  # noqa: BLE001
                check(f"synth {arch} {qname}: loads, finite logits", False, repr(e))
                continue
            if qname == "f32":
                c = cached_logits(m, toks, 3)
                check(f"synth {arch}: KV-cached == uncached logits", rel_err(c, logits) < 1e-5,
                      f"rel err {rel_err(c, logits):.1e}")
    a, b, c = (os.path.join(tmp, n) for n in ("d1.gguf", "d2.gguf", "d3.gguf"))
    synth.synth(a, "qwen3", "q4_k", seed=3)
    synth.synth(b, "qwen3", "q4_k", seed=3)
    synth.synth(c, "qwen3", "q4_k", seed=4)
    ra, rb, rc = (open(p, "rb").read() for p in (a, b, c))
    check("synth: same seed, same bytes; another seed, other bytes", ra == rb and ra != rc)
    r = gguf.GGUFReader(a)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    ok = all(x in tokens and y in tokens and x + y in tokens
             for x, y in (mg.split(" ") for mg in merges))
    ranks = {tuple(mg.split(" ")): i for i, mg in enumerate(merges)}
    words = ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis", "ĠParis", "."]
    pieces = [p for w in words for p in synth.bpe(w, ranks)]
    check("synth: merges join tokens into tokens; BPE gives 'The capital of France is Paris.'"
          " as 7 tokens", ok and len(tokens) >= 300 and pieces == words,
          f"{len(tokens)} tokens, {len(merges)} merges, {pieces}")
    # the CLI, end to end
    out = os.path.join(tmp, "l.f32")
    p = subprocess.run([sys.executable, os.path.join(HERE, "ref", "forward.py"), a,
                        "--tokens", ",".join(map(str, toks)), "--out", out, "--greedy", "3"],
                       capture_output=True, text=True)
    want = ref.Model(a).forward(toks)[-1]
    got = np.fromfile(out, "<f4") if os.path.exists(out) else np.zeros(0)
    greedy = ref.Model(a).greedy(toks, 3)
    check("forward.py CLI: --out writes the final logits, --greedy prints ids",
          p.returncode == 0 and got.shape == want.shape and np.array_equal(got, want)
          and p.stdout.strip() == ",".join(map(str, greedy)), p.stderr.strip()[-200:])


def smollm_checks():
    if not os.path.exists(SMOL):
        skip("SmolLM2 checks", f"{SMOL} absent (scripts/get-model fetches it)")
        return
    m = ref.Model(SMOL)
    vocab = m.vocab()
    ids = {t: i for i, t in enumerate(vocab)}
    words = ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]
    prompt = [ids[w] for w in words]
    logits = m.forward(prompt)
    top = [int(t) for t in np.argsort(-logits[-1])[:3]]
    check("SmolLM2: ' Paris' is the argmax after 'The capital of France is'",
          top[0] == ids["ĠParis"], f"prompt {prompt}, top-3 {[vocab[t] for t in top]}")
    gen = m.greedy(prompt, 8)
    text = "".join(vocab[t] for t in gen).replace("Ġ", " ").replace("Ċ", "\\n")
    print(f"     greedy: {gen} = {text!r}")
    seq = prompt + gen
    full = m.forward(seq)
    check("SmolLM2: greedy with and without KV cache agree",
          m.greedy(prompt, 8, use_cache=False) == gen
          and [int(t) for t in full[len(prompt) - 1:-1].argmax(1)] == gen)
    c = cached_logits(m, seq, len(prompt))
    check("SmolLM2: KV-cached == uncached logits", rel_err(c, full) < 1e-5,
          f"rel err {rel_err(c, full):.1e}")
    m64 = ref.Model(SMOL, np.float64)
    full64 = m64.forward(seq)
    err = rel_err(full, full64)
    absmax = float(np.abs(full - full64).max())
    check(f"SmolLM2: float32 vs float64 logits, {len(seq)} positions",
          err < F32_F64_TOL, f"max abs {absmax:.2e}, max rel (to max |logit|) {err:.2e}")


def qwen_checks():
    """The only real model with NEOX rope, q/k/v biases and an untied output."""
    if not os.path.exists(QWEN):
        skip("Qwen2.5-Coder-0.5B check", f"{QWEN} absent (scripts/get-model fetches it)")
        return
    m = ref.Model(QWEN)
    vocab = m.vocab()
    ids = {t: i for i, t in enumerate(vocab)}
    prompt = [ids[w] for w in ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]]
    top = [int(t) for t in np.argsort(-m.forward(prompt)[-1])[:3]]
    check("Qwen2.5-Coder-0.5B: ' Paris' is the argmax after 'The capital of France is'",
          top[0] == ids["ĠParis"], f"prompt {prompt}, top-3 {[vocab[t] for t in top]}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for f in (rope_checks, synth_checks):
            try:
                f(tmp)
            except Exception as e:  # noqa: BLE001
                check(f.__name__, False, repr(e))
    for f in (smollm_checks, qwen_checks):
        try:
            f()
        except Exception as e:  # noqa: BLE001
            check(f.__name__, False, repr(e))
    s = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    print(f"{counts['passed']} passed, {counts['failed']} failed{s}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
