#!/usr/bin/env python3
"""Reference forward pass in NumPy: the ground truth for pi's dense logits.

Independent of pi's C code: weights come from the `gguf` Python package
(GGUFReader + gguf.quants.dequantize), the maths is written out plainly.
Architectures: llama, qwen2, qwen3 (dense) and the mixture-of-experts
qwen2moe, qwen3moe (attention as qwen2 / qwen3; FFN below).

Conventions (as llama.cpp; see tests/ref/README.md for where they come from):
  h = embd[tok]
  per layer:  x = rmsnorm(h) * attn_norm
              q, k, v = x Wq^T (+bq), x Wk^T (+bk), x Wv^T (+bv)
              qwen3: q, k = rmsnorm per head * attn_q_norm / attn_k_norm
              q, k = rope(q, pos), rope(k, pos)
              llama: NORM rope, pairs (x[2i], x[2i+1])
              qwen2/qwen3: NEOX rope, pairs (x[i], x[i + n_rot/2])
              angle_i = pos * freq_base^(-2i/n_rot), i < n_rot/2
              a = softmax(q k^T / sqrt(head_dim) + causal) v; query head h
                  reads kv head h // (n_head / n_head_kv)
              h = h + a Wo^T (+bo)
              x = rmsnorm(h) * ffn_norm
              h = h + (silu(x Wgate^T) * (x Wup^T)) Wdown^T
              MoE (qwen2moe, qwen3moe; llama.cpp build_moe_ffn), instead:
              p = softmax(x Wrouter^T)            over all E experts
              S = the K largest p (K = expert_used_count; ties: lower id)
              w_e = p_e, and for qwen3moe w_e = p_e / sum_S p   (norm_w)
              h = h + sum_{e in S} w_e (silu(x Wgate_e^T) * (x Wup_e^T)) Wdown_e^T
              qwen2moe also adds a gated shared expert:
                  + sigmoid(x Wgate_inp_shexp^T) * (silu(x Wgate_sh^T) * (x Wup_sh^T)) Wdown_sh^T
  logits = (rmsnorm(h) * output_norm) Wout^T,  Wout = output.weight, else
           token_embd.weight (tied)
  rmsnorm(x) = x / sqrt(mean(x^2) + eps), eps = {arch}.attention.layer_norm_rms_epsilon

A model packed by pi-pack (pi.version present) has blk.N.ffn_down_t (the
down projection neuron-major: act Wdown_t) and may carry predictors; with
sparse=True each layer with a predictor computes only the neurons it selects
(man/pi-gguf.5):  z = relu(x W1^T + b1) W2^T + b2,  act[i] = 0 unless
z[i] > pi.predictor.threshold[layer] + shift; with gate_floor F > 0 a selected
neuron also needs |silu(g)| >= F * mean |silu(g)| over the token's selected.

Library:  forward(model_path, token_ids, dtype=np.float32) -> (n_tokens, n_vocab)
          Model(path, dtype, sparse=False, shift=0.0) with .forward(tokens, cache,
          pos0) for a KV cache; .active counts the neurons computed per layer;
          for MoE models .routing[layer] is a list of Route(pos, token,
          experts, weights, probs, shared_gate), one per token run, in order
          (experts best first; probs = the router softmax over all experts;
          shared_gate = the qwen2moe shared expert's sigmoid, else None),
          and .moe_ffn(layer, x) is the FFN block alone
CLI:      forward.py MODEL.gguf --tokens 1,2,3 [--out FILE|-] [--all-positions]
                     [--greedy N] [--f64] [--no-cache] [--top K] [--sparse [--shift D]]
                     [--routing]
"""
import argparse
import collections
import os
import sys

# Small matrix products: OpenBLAS's thread start-up costs more than it saves
# (measured 8 ms per 1536x576 product on two threads against 0.1 ms on one).
# Only takes effect when numpy is not imported yet.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import gguf  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

ARCHES = {  # arch -> rope is NEOX, has QK-norm
    "llama": (False, False),
    "qwen2": (True, False),
    "qwen3": (True, True),
    "qwen2moe": (True, False),
    "qwen3moe": (True, True),
}
# arch -> (top-k weights renormalised to sum 1, has a shared expert); llama.cpp:
# build_moe_ffn(..., norm_w, ...) from build_qwen2moe (false) / qwen3moe (true)
MOE = {
    "qwen2moe": (False, True),
    "qwen3moe": (True, False),
}
Route = collections.namedtuple("Route", "pos token experts weights probs shared_gate")


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


class Model:
    """A GGUF model, dequantised lazily (each tensor once) to `dtype`."""

    def __init__(self, path, dtype=np.float32, sparse=False, shift=0.0, gate_floor=0.0):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.r = gguf.GGUFReader(path)
        self.tensors = {t.name: t for t in self.r.tensors}
        self._cache = {}
        arch = _field(self.r, "general.architecture")
        if arch not in ARCHES:
            raise ValueError(f"{path}: architecture {arch!r} not supported by the reference")
        self.arch = arch
        self.neox, self.qk_norm = ARCHES[arch]

        def hp(key, default=None):
            v = _field(self.r, f"{arch}.{key}", default)
            if v is None:
                raise ValueError(f"{path}: missing metadata key {arch}.{key}")
            return v

        self.n_layer = int(hp("block_count"))
        self.n_embd = int(hp("embedding_length"))
        self.moe = arch in MOE
        # MoE files carry it (the converters write intermediate_size) but
        # llama.cpp only needs it as the fallback for the expert sizes
        self.n_ff = int(hp("feed_forward_length", 0 if self.moe else None))
        self.n_head = int(hp("attention.head_count"))
        self.n_head_kv = int(hp("attention.head_count_kv", self.n_head))
        self.head_dim = int(hp("attention.key_length", self.n_embd // self.n_head))
        self.head_dim_v = int(hp("attention.value_length", self.head_dim))
        self.n_rot = int(hp("rope.dimension_count", self.head_dim))
        self.freq_base = float(hp("rope.freq_base", 10000.0))
        self.eps = float(hp("attention.layer_norm_rms_epsilon"))
        self.n_ctx = int(hp("context_length"))
        scaling = _field(self.r, f"{arch}.rope.scaling.type", "none")
        factor = float(_field(self.r, f"{arch}.rope.scaling.factor", 0.0) or 0.0)
        if scaling == "linear" and factor > 0:
            self.freq_scale = 1.0 / factor
        elif scaling in ("none", "linear") or factor in (0.0, 1.0):
            self.freq_scale = 1.0
        else:
            raise ValueError(f"{path}: rope scaling {scaling!r} not supported by the reference")
        if self.moe:
            self._init_moe(hp)
            if sparse:
                raise ValueError(f"{path}: --sparse is not supported for MoE models")
        elif "blk.0.ffn_gate_inp.weight" in self.tensors:
            raise ValueError(f"{path}: MoE models are not supported by the reference"
                             f" for architecture {arch!r}")
        self.packed = _field(self.r, "pi.version") is not None
        self.thresholds = None
        if sparse:
            thr = _field(self.r, "pi.predictor.threshold")
            if not self.packed or thr is None:
                raise ValueError(f"{path}: --sparse needs a packed model with predictors")
            self.thresholds = [float(t) + shift for t in thr]
        self.gate_floor = gate_floor
        self.active = [0] * self.n_layer
        self.kept = [0] * self.n_layer
        self.output_name = "output.weight" if "output.weight" in self.tensors else "token_embd.weight"
        self.n_vocab = int(self.tensors[self.output_name].shape[1])

    def _init_moe(self, hp):
        """Expert counts and sizes as llama.cpp's load_hparams/load_tensors read them."""
        self.norm_w, self.shared = MOE[self.arch]
        self.n_expert = int(hp("expert_count"))
        self.n_expert_used = int(hp("expert_used_count"))
        if self.n_expert <= 0:
            raise ValueError(f"{self.path}: {self.arch}.expert_count must be > 0")
        if not 0 < self.n_expert_used <= self.n_expert:
            raise ValueError(f"{self.path}: {self.arch}.expert_used_count {self.n_expert_used}"
                             f" is not in 1..expert_count ({self.n_expert})")
        # llama.cpp: n_ff_exp = expert_feed_forward_length, else n_ff / n_expert_used;
        # n_ff_shexp = expert_shared_feed_forward_length, else n_ff
        self.n_ff_exp = int(hp("expert_feed_forward_length", 0)) or self.n_ff // self.n_expert_used
        self.n_ff_shexp = int(hp("expert_shared_feed_forward_length", 0)) or self.n_ff
        if self.n_ff_exp <= 0:
            raise ValueError(f"{self.path}: no {self.arch}.expert_feed_forward_length"
                             " (nor feed_forward_length)")
        E, d, f, fs = self.n_expert, self.n_embd, self.n_ff_exp, self.n_ff_shexp
        want = {"ffn_gate_inp.weight": [(E, d)],
                "ffn_gate_exps.weight": [(E, f, d)],
                "ffn_up_exps.weight": [(E, f, d)],
                "ffn_down_exps.weight": [(E, d, f)]}
        if self.shared:
            want.update({"ffn_gate_inp_shexp.weight": [(1, d), (d,)],
                         "ffn_gate_shexp.weight": [(fs, d)],
                         "ffn_up_shexp.weight": [(fs, d)],
                         "ffn_down_shexp.weight": [(d, fs)]})
        for il in range(self.n_layer):
            for suffix, shapes in want.items():
                name = f"blk.{il}.{suffix}"
                t = self.tensors.get(name)
                if t is None:
                    raise ValueError(f"{self.path}: tensor {name} is missing")
                got = tuple(int(n) for n in reversed(t.shape))
                if got not in shapes:
                    raise ValueError(
                        f"{self.path}: tensor {name} has shape {got} (numpy order), expected"
                        f" {shapes[0]} from expert_count {E}, n_embd {d}, n_ff_exp {f}"
                        + (f", n_ff_shexp {fs}" if "shexp" in suffix else ""))
        self.routing = [[] for _ in range(self.n_layer)]

    # -- weights ---------------------------------------------------------
    def has(self, name):
        return name in self.tensors

    def w(self, name):
        """The tensor as a (rows, cols) array in numpy order: W[out, in]."""
        a = self._cache.get(name)
        if a is None:
            t = self.tensors[name]
            a = dequantize(t.data, t.tensor_type)
            shape = tuple(int(n) for n in reversed(t.shape))
            a = np.ascontiguousarray(a.reshape(shape), dtype=self.dtype)
            self._cache[name] = a
        return a

    def embed(self, tokens):
        t = self.tensors["token_embd.weight"]
        if "token_embd.weight" in self._cache:
            return self._cache["token_embd.weight"][tokens]
        rows = dequantize(t.data[np.asarray(tokens)], t.tensor_type)
        return rows.reshape(len(tokens), self.n_embd).astype(self.dtype)

    def linear(self, x, name):
        y = x @ self.w(name + ".weight").T
        if self.has(name + ".bias"):
            y = y + self.w(name + ".bias")
        return y

    # -- maths -----------------------------------------------------------
    def rmsnorm(self, x, weight_name):
        ms = np.mean(np.square(x.astype(np.float64)), axis=-1, keepdims=True)
        y = x * (1.0 / np.sqrt(ms + self.eps)).astype(self.dtype)
        return y * self.w(weight_name)

    def rope(self, x, pos):
        """x: (n_tokens, heads, head_dim); rotates the first n_rot dims."""
        half = self.n_rot // 2
        inv = self.freq_base ** (-np.arange(half, dtype=np.float64) * 2.0 / self.n_rot)
        if self.has("rope_freqs.weight"):  # llama3-style per-dimension factors
            inv = inv / self.w("rope_freqs.weight").astype(np.float64)[:half]
        ang = np.asarray(pos, dtype=np.float64)[:, None] * inv[None, :] * self.freq_scale
        cos = np.cos(ang).astype(self.dtype)[:, None, :]
        sin = np.sin(ang).astype(self.dtype)[:, None, :]
        out = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half:self.n_rot]
            out[..., :half] = a * cos - b * sin
            out[..., half:self.n_rot] = a * sin + b * cos
        else:
            a, b = x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2]
            out[..., 0:self.n_rot:2] = a * cos - b * sin
            out[..., 1:self.n_rot:2] = a * sin + b * cos
        return out

    # -- forward ---------------------------------------------------------
    def new_cache(self):
        return [{"k": None, "v": None} for _ in range(self.n_layer)]

    def forward(self, tokens, cache=None, pos0=0):
        """Logits (len(tokens), n_vocab) for `tokens` at positions pos0...

        With a cache (from new_cache), keys and values of earlier calls are
        reused and this call's are appended; without one, pos0 must be 0.
        """
        tokens = [int(t) for t in tokens]
        n = len(tokens)
        if cache is None:
            if pos0 != 0:
                raise ValueError("pos0 > 0 needs a cache")
            cache = self.new_cache()
        pos = np.arange(pos0, pos0 + n)
        if pos0 + n > self.n_ctx:
            raise ValueError(f"{pos0 + n} tokens exceed the context length {self.n_ctx}")
        if min(tokens) < 0 or max(tokens) >= self.n_vocab:
            raise ValueError(f"token id out of range 0..{self.n_vocab - 1}")
        hd, hdv, nh, nkv = self.head_dim, self.head_dim_v, self.n_head, self.n_head_kv
        group = nh // nkv
        scale = self.dtype.type(1.0 / np.sqrt(hd))
        # causal mask over all keys seen so far (cached + new)
        n_keys = pos0 + n
        mask = np.where(np.arange(n_keys)[None, :] > pos[:, None], -np.inf, 0.0).astype(self.dtype)

        h = self.embed(tokens)
        for il in range(self.n_layer):
            p = f"blk.{il}."
            x = self.rmsnorm(h, p + "attn_norm.weight")
            q = self.linear(x, p + "attn_q").reshape(n, nh, hd)
            k = self.linear(x, p + "attn_k").reshape(n, nkv, hd)
            v = self.linear(x, p + "attn_v").reshape(n, nkv, hdv)
            if self.qk_norm:
                q = self.rmsnorm(q, p + "attn_q_norm.weight")
                k = self.rmsnorm(k, p + "attn_k_norm.weight")
            q = self.rope(q, pos)
            k = self.rope(k, pos)
            c = cache[il]
            c["k"] = k if c["k"] is None else np.concatenate([c["k"], k], axis=0)
            c["v"] = v if c["v"] is None else np.concatenate([c["v"], v], axis=0)
            K = c["k"].transpose(1, 0, 2)                       # (nkv, T, hd)
            V = c["v"].transpose(1, 0, 2)                       # (nkv, T, hdv)
            Q = q.transpose(1, 0, 2).reshape(nkv, group, n, hd)  # head = kv*group + g
            s = (Q @ K[:, None].transpose(0, 1, 3, 2)) * scale + mask  # (nkv, g, n, T)
            s = s - s.max(axis=-1, keepdims=True)
            e = np.exp(s)
            prob = e / e.sum(axis=-1, keepdims=True)
            o = prob @ V[:, None]                               # (nkv, g, n, hdv)
            o = o.reshape(nh, n, hdv).transpose(1, 0, 2).reshape(n, nh * hdv)
            h = h + self.linear(o, p + "attn_output")

            x = self.rmsnorm(h, p + "ffn_norm.weight")
            if self.moe:
                h = h + self.moe_ffn(il, x, pos, tokens)
                continue
            g = self.linear(x, p + "ffn_gate")
            u = self.linear(x, p + "ffn_up")
            act = g / (1.0 + np.exp(-g)) * u                    # silu(g) * u
            if self.thresholds is not None and self.has(f"pred.{il}.w1"):
                q = f"pred.{il}."
                hid = np.maximum(x @ self.w(q + "w1").T + self.w(q + "b1"), 0)
                z = hid @ self.w(q + "w2").T + self.w(q + "b2")
                keep = z > self.thresholds[il]
                self.active[il] += int(keep.sum())
                if self.gate_floor > 0:
                    sg = np.abs(g / (1.0 + np.exp(-g)))
                    mean = (np.where(keep, sg, 0).sum(axis=-1, keepdims=True) /
                            np.maximum(keep.sum(axis=-1, keepdims=True), 1))
                    keep = keep & (sg >= self.gate_floor * mean)
                act = np.where(keep, act, 0).astype(self.dtype)
                self.kept[il] += int(keep.sum())
            else:
                self.active[il] += n * self.n_ff
                self.kept[il] += n * self.n_ff
            if self.packed:
                h = h + act @ self.w(p + "ffn_down_t.weight")
            else:
                h = h + self.linear(act, p + "ffn_down")

        x = self.rmsnorm(h, "output_norm.weight")
        return (x @ self.w(self.output_name).T).astype(np.float32)

    def moe_ffn(self, il, x, pos=None, tokens=None):
        """The MoE FFN block of layer il on x (n, n_embd), after ffn_norm.

        Appends one Route per row to self.routing[il] (pos/token None when
        not given).  Experts are summed in the order selected (best first),
        as llama.cpp adds its expert views.
        """
        p = f"blk.{il}."
        n = x.shape[0]
        E, K = self.n_expert, self.n_expert_used
        logits = x @ self.w(p + "ffn_gate_inp.weight").T             # (n, E)
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = z / z.sum(axis=-1, keepdims=True)
        sel = np.argsort(-probs, axis=-1, kind="stable")[:, :K]       # (n, K), best first
        wts = np.take_along_axis(probs, sel, axis=-1)
        if self.norm_w:
            wts = wts / wts.sum(axis=-1, keepdims=True)
        gate = self.w(p + "ffn_gate_exps.weight")                     # (E, n_ff_exp, n_embd)
        up = self.w(p + "ffn_up_exps.weight")
        down = self.w(p + "ffn_down_exps.weight")                     # (E, n_embd, n_ff_exp)
        y = np.zeros((n, K, self.n_embd), dtype=self.dtype)
        for e in np.unique(sel):
            rows, slots = np.nonzero(sel == e)
            xe = x[rows]
            g = xe @ gate[e].T
            act = g / (1.0 + np.exp(-g)) * (xe @ up[e].T)
            y[rows, slots] = act @ down[e].T
        out = y[:, 0] * wts[:, 0:1]
        for k in range(1, K):
            out = out + y[:, k] * wts[:, k:k + 1]
        sg = None
        if self.shared:
            s = self.linear(x, p + "ffn_gate_inp_shexp").reshape(n, 1)
            sg = 1.0 / (1.0 + np.exp(-s))
            g = self.linear(x, p + "ffn_gate_shexp")
            act = g / (1.0 + np.exp(-g)) * self.linear(x, p + "ffn_up_shexp")
            out = out + self.linear(act, p + "ffn_down_shexp") * sg
        work = K * self.n_ff_exp + (self.n_ff_shexp if self.shared else 0)
        self.active[il] += n * work
        self.kept[il] += n * work
        for i in range(n):
            self.routing[il].append(Route(
                None if pos is None else int(pos[i]), None if tokens is None else int(tokens[i]),
                sel[i].copy(), wts[i].copy(), probs[i].copy(),
                None if sg is None else float(sg[i, 0])))
        return out.astype(self.dtype)

    def greedy(self, tokens, n_new, use_cache=True):
        """n_new greedy continuation ids after `tokens`."""
        tokens = list(tokens)
        out = []
        if use_cache:
            cache = self.new_cache()
            logits = self.forward(tokens, cache, 0)
            pos = len(tokens)
            for _ in range(n_new):
                t = int(np.argmax(logits[-1]))
                out.append(t)
                if len(out) == n_new:
                    break
                logits = self.forward([t], cache, pos)
                pos += 1
        else:
            for _ in range(n_new):
                t = int(np.argmax(self.forward(tokens + out)[-1]))
                out.append(t)
        return out

    def vocab(self):
        return _field(self.r, "tokenizer.ggml.tokens", [])


_models = {}


def load(model_path, dtype=np.float32):
    key = (os.path.abspath(model_path), np.dtype(dtype).str)
    if key not in _models:
        _models[key] = Model(model_path, dtype)
    return _models[key]


def forward(model_path, token_ids, dtype=np.float32):
    """Logits for every position, (n_tokens, n_vocab) float32."""
    return load(model_path, dtype).forward(token_ids)


def main(argv=None):
    ap = argparse.ArgumentParser(description="NumPy reference forward pass over a GGUF model.")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="write logits as raw little-endian float32 ('-': stdout)")
    ap.add_argument("--all-positions", action="store_true",
                    help="with --out, write all positions (n_tokens x n_vocab), not only the last")
    ap.add_argument("--greedy", type=int, default=0, metavar="N", help="print N greedy continuation ids")
    ap.add_argument("--f64", action="store_true", help="compute in float64 (default float32)")
    ap.add_argument("--no-cache", action="store_true", help="greedy without a KV cache")
    ap.add_argument("--top", type=int, default=5, metavar="K",
                    help="without --out, print the K best final-position tokens")
    ap.add_argument("--sparse", action="store_true",
                    help="packed model: compute only the neurons the predictors select")
    ap.add_argument("--shift", type=float, default=0.0, metavar="D",
                    help="with --sparse, add D to every predictor threshold")
    ap.add_argument("--gate-floor", type=float, default=0.0, metavar="F",
                    help="with --sparse, the gate check (see pi-run --gate-floor)")
    ap.add_argument("--routing", action="store_true",
                    help="MoE model: print each layer's expert choice per position"
                         " (layer pos token expert:weight...)")
    a = ap.parse_args(argv)
    try:
        tokens = [int(t) for t in a.tokens.replace(" ", "").split(",") if t != ""]
    except ValueError:
        ap.error(f"--tokens: not a comma-separated list of integers: {a.tokens!r}")
    if not tokens:
        ap.error("--tokens: no tokens")
    if a.out == "-" and sys.stdout.isatty():
        print("forward.py: refusing to write binary logits to a terminal", file=sys.stderr)
        return 2
    try:
        m = Model(a.model, np.float64 if a.f64 else np.float32, a.sparse, a.shift, a.gate_floor)
        logits = m.forward(tokens)
        if a.routing and not m.moe:
            raise ValueError("--routing needs a MoE model")
    except (OSError, ValueError, KeyError) as e:
        print(f"forward.py: {a.model}: {e}", file=sys.stderr)
        return 1
    text = sys.stderr if a.out == "-" else sys.stdout
    if a.routing:
        for il, routes in enumerate(m.routing):
            for r in routes:
                sel = " ".join(f"{int(e)}:{float(w):.6f}" for e, w in zip(r.experts, r.weights))
                shared = "" if r.shared_gate is None else f" shared:{r.shared_gate:.6f}"
                print(f"{il}\t{r.pos}\t{r.token}\t{sel}{shared}", file=text)
    if a.out:
        data = (logits if a.all_positions else logits[-1:]).astype("<f4").tobytes()
        if a.out == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            tmp = a.out + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, a.out)
    else:
        vocab = m.vocab()
        last = logits[-1]
        for t in np.argsort(-last, kind="stable")[:a.top]:
            piece = vocab[t] if t < len(vocab) else ""
            print(f"{int(t)}\t{last[t]:.6f}\t{piece!r}", file=text)
    if a.greedy > 0:
        ids = m.greedy(tokens, a.greedy, use_cache=not a.no_cache)
        print(",".join(str(t) for t in ids), file=text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
