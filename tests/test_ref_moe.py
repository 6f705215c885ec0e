#!/usr/bin/env python3
"""Self-checks of the NumPy reference for mixture-of-experts models (tests/ref/).

No C engine and no llama.cpp here: the reference's MoE code is checked against
independent computations written out in this file.

- synth.py's qwen2moe / qwen3moe files read back with the gguf package: the
  metadata keys llama.cpp reads, the tensor names, GGUF shapes and types, and
  3-D expert tensors quantised row by row exactly as each expert's 2-D matrix;
- float32 against float64 logits; KV-cached against uncached; greedy with and
  without the cache;
- routing: softmax over all experts, the top-k are the k largest
  probabilities, best first; the weights are the top-k probabilities
  renormalised to sum 1 for qwen3moe and left as they are for qwen2moe;
  tokens pick varied experts;
- the FFN block against a plain per-token computation from the dequantised
  tensors (router, experts, and qwen2moe's sigmoid-gated shared expert);
- a qwen3moe with K = E and a zero router equals a dense qwen3 whose FFN is
  the experts side by side with ffn_down scaled by 1/E, and a qwen2moe with
  K = E, a zero router and a zero shared-expert gate equals a dense qwen2
  with the shared expert's ffn_down scaled by 1/2 (sigmoid(0));
- synth.py --bad files are refused with a message naming the problem, and
  forward.py's --routing and error paths work from the command line.

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
    import gguf
    from gguf.quants import dequantize
except ImportError as e:
    print(f"skipping: {e} (make deps installs it)")
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "ref"))
import forward as ref  # noqa: E402
import synth  # noqa: E402

F32_F64_TOL = 1e-4   # max |l32 - l64| / max |l64|, as tests/test_ref_selfcheck.py
TOKS = [1, 5, 70, 200, 17, 3, 99, 250, 40, 41, 7, 300]
ARCHES = ("qwen3moe", "qwen2moe")
counts = {"passed": 0, "failed": 0, "skipped": 0}


def check(name, ok, detail=""):
    counts["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""))


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def read(path):
    """{name: (GGUF ne list, type, float64 array in numpy order)}, {key: value}."""
    r = gguf.GGUFReader(path)
    tensors = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        tensors[t.name] = ([int(n) for n in t.shape], t.tensor_type,
                           a.reshape(tuple(int(n) for n in reversed(t.shape))))
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}
    return tensors, meta


def silu(v):
    return v / (1.0 + np.exp(-v))


# -- files -----------------------------------------------------------------

def file_checks(tmp):
    for arch in ARCHES:
        for qname in ("f32", "q8_0", "q4_k_m"):
            path = os.path.join(tmp, f"{arch}-{qname}.gguf")
            meta = synth.synth(path, arch, qname, seed=5)
            T, kv = read(path)
            d, E, K, f = meta["embd"], meta["experts"], meta["experts_used"], meta["ff_exp"]
            want_kv = {f"{arch}.expert_count": E, f"{arch}.expert_used_count": K,
                       f"{arch}.expert_feed_forward_length": f,
                       f"{arch}.feed_forward_length": K * f, "general.architecture": arch}
            if arch == "qwen2moe":
                want_kv[f"{arch}.expert_shared_feed_forward_length"] = meta["ff_shexp"]
            bad_kv = {k: kv.get(k) for k, v in want_kv.items() if kv.get(k) != v}
            qt = synth.TYPES[qname]
            down_qt = gguf.GGMLQuantizationType.Q6_K if qname == "q4_k_m" else qt
            want = {"ffn_gate_inp.weight": ([d, E], gguf.GGMLQuantizationType.F32),
                    "ffn_gate_exps.weight": ([d, f, E], qt),
                    "ffn_up_exps.weight": ([d, f, E], qt),
                    "ffn_down_exps.weight": ([f, d, E], down_qt)}
            if arch == "qwen2moe":
                fs = meta["ff_shexp"]
                want.update({"ffn_gate_inp_shexp.weight": ([d, 1], gguf.GGMLQuantizationType.F32),
                             "ffn_gate_shexp.weight": ([d, fs], qt),
                             "ffn_up_shexp.weight": ([d, fs], qt),
                             "ffn_down_shexp.weight": ([fs, d], down_qt)})
            bad_t = []
            for il in range(meta["layers"]):
                for suffix, (ne, typ) in want.items():
                    name = f"blk.{il}.{suffix}"
                    got = T.get(name)
                    if got is None or got[0] != ne or got[1] != typ:
                        bad_t.append(f"{name}: {got and (got[0], got[1].name)}")
                for dense in ("ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"):
                    if f"blk.{il}.{dense}" in T:
                        bad_t.append(f"blk.{il}.{dense} present")
            check(f"{arch} {qname}: gguf reads the metadata and expert tensors llama.cpp expects",
                  not bad_kv and not bad_t, f"{bad_kv} {bad_t[:3]}")
            if qname != "f32":
                # a 3-D tensor quantised as a whole == each expert quantised alone
                _, tensors = synth.build(arch, qname, seed=5)
                w = dict((n, a) for n, a, _ in tensors)["blk.0.ffn_down_exps.weight"]
                per = np.stack([dequantize(synth.quant(w[e], down_qt), down_qt) for e in range(E)])
                got = T["blk.0.ffn_down_exps.weight"][2]
                check(f"{arch} {qname}: 3-D experts quantised row by row like 2-D weights",
                      per.shape == got.shape and np.array_equal(per, got.astype(np.float32)),
                      f"{per.shape} vs {got.shape}")
    a, b, c = (os.path.join(tmp, n) for n in ("d1.gguf", "d2.gguf", "d3.gguf"))
    synth.synth(a, "qwen2moe", "q8_0", seed=3)
    synth.synth(b, "qwen2moe", "q8_0", seed=3)
    synth.synth(c, "qwen2moe", "q8_0", seed=4)
    ra, rb, rc = (open(p, "rb").read() for p in (a, b, c))
    check("synth qwen2moe: same seed, same bytes; another seed, other bytes", ra == rb and ra != rc)


# -- the forward pass ------------------------------------------------------

def forward_checks(tmp):
    for arch in ARCHES:
        for qname in ("f32", "q8_0", "q4_k_m"):
            path = os.path.join(tmp, f"{arch}-{qname}.gguf")
            meta = synth.synth(path, arch, qname, seed=7)
            m32 = ref.Model(path)
            l32 = m32.forward(TOKS)
            spread = float(l32[-1].std())
            check(f"{arch} {qname}: finite logits {l32.shape}",
                  l32.shape == (len(TOKS), len(meta["tokens"])) and np.isfinite(l32).all()
                  and 0.3 < spread < 30, f"final-position logit std {spread:.2f}")
            l64 = ref.Model(path, np.float64).forward(TOKS)
            check(f"{arch} {qname}: float32 vs float64 logits", rel_err(l32, l64) < F32_F64_TOL,
                  f"max rel (to max |logit|) {rel_err(l32, l64):.1e}")
            if qname != "f32":
                continue
            m = ref.Model(path)
            cache = m.new_cache()
            rows = [m.forward(TOKS[:4], cache, 0)]
            for i in range(4, len(TOKS)):
                rows.append(m.forward(TOKS[i:i + 1], cache, i))
            c = np.concatenate(rows)
            same_routes = all(
                [list(r.experts) for r in m.routing[il]] == [list(r.experts) for r in m32.routing[il]]
                for il in range(m.n_layer))
            check(f"{arch}: KV-cached == uncached logits, same routing",
                  rel_err(c, l32) < 1e-5 and same_routes, f"rel err {rel_err(c, l32):.1e}")
            g1 = ref.Model(path).greedy(TOKS[:5], 6)
            g2 = ref.Model(path).greedy(TOKS[:5], 6, use_cache=False)
            check(f"{arch}: greedy with and without the KV cache agree", g1 == g2, f"{g1} {g2}")


def routing_checks(tmp):
    for arch in ARCHES:
        path = os.path.join(tmp, f"{arch}-route.gguf")
        synth.synth(path, arch, "f32", seed=11)
        m = ref.Model(path, np.float64)
        m.forward(TOKS)
        K, E = m.n_expert_used, m.n_expert
        positions = [[r.pos for r in m.routing[il]] for il in range(m.n_layer)]
        check(f"{arch}: one route per layer and token, with its position and token id",
              all(p == list(range(len(TOKS))) for p in positions)
              and [r.token for r in m.routing[0]] == TOKS)
        topk_ok = probs_ok = True
        sums = []
        for il in range(m.n_layer):
            for r in m.routing[il]:
                p = r.probs
                probs_ok &= abs(p.sum() - 1) < 1e-12 and (p > 0).all()
                others = np.delete(p, r.experts)
                topk_ok &= (len(set(r.experts.tolist())) == K
                            and all(p[r.experts[i]] >= p[r.experts[i + 1]] for i in range(K - 1))
                            and (others.size == 0 or p[r.experts].min() >= others.max()))
                sums.append(float(r.weights.sum()))
                want = p[r.experts] / (p[r.experts].sum() if arch == "qwen3moe" else 1.0)
                probs_ok &= np.allclose(r.weights, want, rtol=1e-12, atol=0)
        check(f"{arch}: router probabilities are a softmax over all {E} experts; weights"
              + (" = top-k probs / their sum" if arch == "qwen3moe" else " = top-k probs"), probs_ok)
        check(f"{arch}: the {K} experts chosen are the largest probabilities, best first", topk_ok)
        if arch == "qwen3moe":
            check("qwen3moe: routing weights sum to 1", max(abs(s - 1) for s in sums) < 1e-12,
                  f"sums {min(sums):.6f}..{max(sums):.6f}")
        else:
            check("qwen2moe: routing weights are not renormalised (sum < 1)",
                  max(sums) < 1 - 1e-6, f"sums {min(sums):.3f}..{max(sums):.3f}")
        used = [len({int(e) for r in m.routing[il] for e in r.experts}) for il in range(m.n_layer)]
        sets = [len({tuple(sorted(r.experts.tolist())) for r in m.routing[il]})
                for il in range(m.n_layer)]
        check(f"{arch}: tokens pick varied experts", min(used) >= E // 2 and min(sets) >= 3,
              f"experts used per layer {used}, distinct sets {sets} over {len(TOKS)} tokens")
        if arch == "qwen2moe":
            g = [r.shared_gate for il in range(m.n_layer) for r in m.routing[il]]
            check("qwen2moe: the shared expert's gate varies in (0, 1)",
                  0 < min(g) and max(g) < 1 and max(g) - min(g) > 0.1,
                  f"{min(g):.3f}..{max(g):.3f}")


def moe_block_checks(tmp):
    """Model.moe_ffn against a plain per-token computation from the file."""
    for arch in ARCHES:
        for qname in ("f32", "q4_0"):
            path = os.path.join(tmp, f"{arch}-block-{qname}.gguf")
            meta = synth.synth(path, arch, qname, seed=13)
            T, _ = read(path)
            m = ref.Model(path, np.float64)
            rng = np.random.default_rng(1)
            x = rng.standard_normal((6, meta["embd"]))
            K = meta["experts_used"]
            worst = gate_effect = 0.0
            for il in range(meta["layers"]):
                got = m.moe_ffn(il, x)

                def t(name):
                    return T[f"blk.{il}.{name}.weight"][2]
                for i, xi in enumerate(x):
                    lg = t("ffn_gate_inp") @ xi
                    p = np.exp(lg - lg.max())
                    p /= p.sum()
                    top = sorted(range(len(p)), key=lambda e: -p[e])[:K]
                    w = [p[e] for e in top]
                    if arch == "qwen3moe":
                        w = [v / sum(w) for v in w]
                    y = np.zeros(meta["embd"])
                    for e, we in zip(top, w):
                        h = silu(t("ffn_gate_exps")[e] @ xi) * (t("ffn_up_exps")[e] @ xi)
                        y += we * (t("ffn_down_exps")[e] @ h)
                    if arch == "qwen2moe":
                        sh = t("ffn_down_shexp") @ (silu(t("ffn_gate_shexp") @ xi)
                                                    * (t("ffn_up_shexp") @ xi))
                        gate = 1.0 / (1.0 + np.exp(-float(t("ffn_gate_inp_shexp").ravel() @ xi)))
                        gate_effect = max(gate_effect, float(np.abs((1 - gate) * sh).max()
                                                             / np.abs(y + sh).max()))
                        y += gate * sh
                    worst = max(worst, float(np.abs(got[i] - y).max() / np.abs(y).max()))
            check(f"{arch} {qname}: FFN block == per-token router, top-k, experts"
                  + (", gated shared expert" if arch == "qwen2moe" else ""),
                  worst < 1e-12, f"max rel diff {worst:.1e}")
            if arch == "qwen2moe":
                check(f"qwen2moe {qname}: the shared expert's gate matters"
                      " (output without it differs)", gate_effect > 0.05,
                      f"max relative effect of the gate {gate_effect:.2f}")


def dense_equivalence_checks(tmp):
    """K = E with a zero router: every expert weighs 1/E, so the MoE layer is
    a dense FFN whose neurons are all experts' neurons (ffn_down / E)."""
    for arch, dense in (("qwen3moe", "qwen3"), ("qwen2moe", "qwen2")):
        E = 8
        meta, tensors = synth.build(arch, "f32", seed=17, experts=E, experts_used=E,
                                    router_scale=0.0)
        W = {n: a for n, a, _ in tensors}
        if arch == "qwen2moe":
            for il in range(meta["layers"]):
                W[f"blk.{il}.ffn_gate_inp_shexp.weight"][:] = 0.0  # sigmoid(0) = 1/2
        moe_path = os.path.join(tmp, f"{arch}-dense-eq.gguf")
        synth.write(moe_path, meta, [(n, W[n], q) for n, _, q in tensors])
        dmeta = dict(meta, arch=dense, experts=None, experts_used=None, ff_exp=None, ff_shexp=None)
        dt = []
        for name, arr, q in tensors:
            il = name.split(".")[1] if name.startswith("blk.") else None
            if "_exps" in name or "shexp" in name or "gate_inp" in name:
                continue
            dt.append((name, W[name], q))
            if name.endswith("ffn_norm.weight"):
                p = f"blk.{il}."
                gate = W[p + "ffn_gate_exps.weight"].reshape(-1, meta["embd"])
                up = W[p + "ffn_up_exps.weight"].reshape(-1, meta["embd"])
                down = np.concatenate(list(W[p + "ffn_down_exps.weight"] / E), axis=1)
                if arch == "qwen2moe":
                    gate = np.concatenate([gate, W[p + "ffn_gate_shexp.weight"]])
                    up = np.concatenate([up, W[p + "ffn_up_shexp.weight"]])
                    down = np.concatenate([down, W[p + "ffn_down_shexp.weight"] * 0.5], axis=1)
                dt += [(p + "ffn_gate.weight", gate, q), (p + "ffn_up.weight", up, q),
                       (p + "ffn_down.weight", down, q)]
        dmeta["ff"] = dt[[n for n, _, _ in dt].index("blk.0.ffn_gate.weight")][1].shape[0]
        dense_path = os.path.join(tmp, f"{dense}-dense-eq.gguf")
        synth.write(dense_path, dmeta, dt)
        mm = ref.Model(moe_path, np.float64)
        a = mm.forward(TOKS)
        b = ref.Model(dense_path, np.float64).forward(TOKS)
        w_ok = all(np.allclose(r.weights, 1.0 / E, rtol=1e-12) and
                   (r.shared_gate is None or r.shared_gate == 0.5)
                   for il in range(mm.n_layer) for r in mm.routing[il])
        what = ("experts' mean + shared expert / 2 (gate sigmoid(0))" if arch == "qwen2moe"
                else "mean of all experts")
        check(f"{arch}, K = E = {E}, zero router: logits == dense {dense} with FFN = {what}",
              rel_err(a, b) < 1e-10 and w_ok, f"rel err {rel_err(a, b):.1e}, weights 1/E: {w_ok}")


# -- bad input and the command line ------------------------------------------

def bad_checks(tmp):
    py = sys.executable
    forward_py = os.path.join(HERE, "ref", "forward.py")
    synth_py = os.path.join(HERE, "ref", "synth.py")
    want = {"expert-count": "expert_count 9", "expert-shape": "blk.1.ffn_up_exps.weight",
            "expert-used": "expert_used_count 9"}
    for bad, phrase in want.items():
        for arch in ARCHES:
            path = os.path.join(tmp, f"bad-{arch}-{bad}.gguf")
            p = subprocess.run([py, synth_py, "--arch", arch, "--bad", bad, "--out", path],
                               capture_output=True, text=True)
            T, kv = read(path) if p.returncode == 0 else ({}, {})
            if bad == "expert-count":
                ok = kv.get(f"{arch}.expert_count") == 9 and \
                    T["blk.0.ffn_gate_inp.weight"][0] == [64, 8]
            elif bad == "expert-used":
                ok = kv.get(f"{arch}.expert_used_count") == 9 and kv.get(f"{arch}.expert_count") == 8
            else:
                ok = T["blk.1.ffn_up_exps.weight"][0] == [64, 96, 8] and \
                    T["blk.0.ffn_up_exps.weight"][0] == [64, 64, 8]
            r = subprocess.run([py, forward_py, path, "--tokens", "1,2,3"],
                               capture_output=True, text=True)
            err = r.stderr.strip()
            check(f"synth.py --arch {arch} --bad {bad}: a readable GGUF that forward.py refuses"
                  " with one line", ok and r.returncode == 1 and phrase in err
                  and len(err.splitlines()) == 1 and r.stdout == "", err[-200:])
    p = subprocess.run([py, synth_py, "--arch", "qwen3", "--experts", "4", "--out",
                        os.path.join(tmp, "x.gguf")], capture_output=True, text=True)
    check("synth.py: MoE options on a dense architecture are refused",
          p.returncode == 1 and "only for the MoE" in p.stderr, p.stderr.strip()[-200:])
    p = subprocess.run([py, synth_py, "--arch", "qwen3moe", "--experts", "4", "--experts-used",
                        "5", "--out", os.path.join(tmp, "x.gguf")], capture_output=True, text=True)
    check("synth.py: --experts-used > --experts is refused",
          p.returncode == 1 and "--experts-used" in p.stderr, p.stderr.strip()[-200:])
    path = os.path.join(tmp, "cli.gguf")
    p = subprocess.run([py, synth_py, "--arch", "qwen3moe", "--experts", "4", "--experts-used",
                        "3", "--ff-exp", "32", "--layers", "3", "--out", path],
                       capture_output=True, text=True)
    T, kv = read(path) if p.returncode == 0 else ({}, {})
    check("synth.py CLI: --experts, --experts-used, --ff-exp, --layers",
          kv.get("qwen3moe.expert_count") == 4 and kv.get("qwen3moe.expert_used_count") == 3
          and kv.get("qwen3moe.expert_feed_forward_length") == 32
          and T["blk.2.ffn_down_exps.weight"][0] == [32, 64, 4], p.stderr.strip()[-200:])
    r = subprocess.run([py, forward_py, path, "--tokens", "1,2,3,4", "--routing", "--top", "1"],
                       capture_output=True, text=True)
    lines = [ln.split("\t") for ln in r.stdout.splitlines()]
    route_lines = [ln for ln in lines if len(ln) == 4]
    m = ref.Model(path)
    m.forward([1, 2, 3, 4])
    want_lines = [[str(il), str(rt.pos), str(rt.token),
                   " ".join(f"{int(e)}:{float(w):.6f}" for e, w in zip(rt.experts, rt.weights))]
                  for il in range(3) for rt in m.routing[il]]
    check("forward.py --routing prints layer, position, token, expert:weight per route",
          r.returncode == 0 and route_lines == want_lines, r.stderr.strip()[-200:])
    r = subprocess.run([py, forward_py, path, "--tokens", "1,2", "--sparse"],
                       capture_output=True, text=True)
    check("forward.py --sparse on a MoE model: refused", r.returncode == 1
          and "not supported for MoE" in r.stderr, r.stderr.strip()[-200:])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for f in (file_checks, forward_checks, routing_checks, moe_block_checks,
                  dense_equivalence_checks, bad_checks):
            try:
                f(tmp)
            except Exception as e:  # noqa: BLE001
                check(f.__name__, False, repr(e))
    s = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    print(f"{counts['passed']} passed, {counts['failed']} failed{s}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
