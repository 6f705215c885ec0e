#!/usr/bin/env python3
"""Small random-weight GGUF models, for architectures without a real model.

    synth.py --arch llama|qwen2|qwen3 --out FILE.gguf [--type TYPE] [--seed N]
             [--layers N] [--embd N] [--ff N] [--heads N] [--kv-heads N]
             [--head-dim N] [--ctx N] [--tied | --untied]
    synth.py --arch qwen2moe|qwen3moe ... [--experts E] [--experts-used K]
             [--ff-exp N] [--ff-shexp N] [--router-scale S]
             [--bad expert-count|expert-shape|expert-used]

TYPE (for every 2-D weight; norms and biases stay F32): f32 f16 bf16 q8_0
q4_0 q4_1 q5_0 q5_1 (quantised by gguf.quants.quantize), q4_k q5_k q6_k
(quantised here: gguf-py only dequantises K-quants; the blocks are checked
against gguf.quants.dequantize), q4_k_m (Q4_K, with Q6_K for attn_v,
ffn_down and output, like llama.cpp's Q4_K_M).

Shapes default to 2 layers, 4 heads, 2 kv heads and
    llama/qwen2: d 64, ff 128, head_dim 16   (K-quants: d 256, ff 512, head_dim 64)
    qwen3:       d 64, ff 128, head_dim 32   (K-quants: d 256, ff 512, head_dim 128)
so qwen3 exercises attention.key_length != d / n_head.  Output: llama and
qwen3 tied (no output.weight, like SmolLM2 and Qwen3-0.6B), qwen2 untied.

Mixture of experts (tensors, shapes and keys as llama.cpp's converter writes
them for Qwen1.5-MoE / Qwen3-MoE; see tests/ref/README.md):
    qwen3moe: attention as qwen3 (d 64, head_dim 32), untied like Qwen3-30B-A3B
    qwen2moe: attention as qwen2 (d 64, head_dim 16; llama.cpp needs
              heads * head_dim = d), untied (llama.cpp requires output.weight),
              plus the shared expert ffn_{gate,up,down}_shexp and its gate
              ffn_gate_inp_shexp (numpy shape (1, d))
    E 8 experts (--experts), K 2 used (--experts-used), n_ff_exp 64 (--ff-exp),
    n_ff_shexp 128 (--ff-shexp; K-quants: 256 and 512); feed_forward_length
    (--ff) defaults to K * n_ff_exp, as in the real models.  Per layer:
    ffn_gate_inp (E, d) and ffn_gate_inp_shexp stay F32 (llama.cpp never
    quantises the router); ffn_{gate,up}_exps (E, n_ff_exp, d) and
    ffn_down_exps (E, d, n_ff_exp) are quantised row by row like 2-D weights.
    The router's rows have norm --router-scale (default 2), so router logits
    spread about +-2 and tokens pick different experts.
--bad writes a file llama.cpp must refuse (for tests of error handling):
    expert-count: {arch}.expert_count is E + 1 while the tensors hold E;
    expert-shape: blk.<last>.ffn_up_exps has n_ff_exp + 32 rows per expert;
    expert-used:  {arch}.expert_used_count is E + 1 (> expert_count).

The vocabulary is a byte-level BPE one as llama.cpp's "gpt2" tokenizer
expects: the 256 byte tokens in GPT-2's bytes-to-unicode order, tokens made
by a list of merges (each merge joins two existing tokens), and the ChatML
control tokens; tokenizer.ggml.pre is "smollm" for llama and "qwen2" for the
qwen architectures.  Weights are seeded normals scaled by 1/sqrt(fan_in) so
activations stay near unit size; the output is deterministic for a seed.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf.quants import quantize, dequantize

QK_K = 256

# Pairs in GPT-2 byte-unicode form ("Ġ" is a space), in rank order; each
# joins two tokens that exist by then, and BPE with these merges turns every
# merged token's text back into that one token (vocabulary() checks), so
# "The capital of France is Paris." is six tokens, as in a real vocabulary.
MERGES = """Ġ t|h e|i n|e r|a n|Ġ a|o n|r e|Ġt he|Ġ s|Ġ w|a t|e n|Ġ o|o r|e s|i s
|Ġ c|i t|Ġ b|a l|a r|Ġ f|Ġ p|n d|in g|Ġo f|Ġ an|Ġan d|Ġ i|Ġ m|o u|l e|Ġ d|Ġt o|Ġ is
|Ġ in|e d|Ġ h|T he|a p|Ġc ap|it al|Ġcap ital|F r|Fr an|c e|Fran ce|Ġ France
|P ar|Par is|Ġ Paris|Ġ Ċ|Ċ Ċ|Ġ l|l l|Ġ e|o m"""
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

TYPES = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0,
         "q4_0": QT.Q4_0, "q4_1": QT.Q4_1, "q5_0": QT.Q5_0, "q5_1": QT.Q5_1,
         "q4_k": QT.Q4_K, "q5_k": QT.Q5_K, "q6_k": QT.Q6_K, "q4_k_m": QT.Q4_K}
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8,
              "q5_1": 9, "q4_k": 14, "q4_k_m": 15, "q5_k": 16, "q6_k": 18, "bf16": 32}
ARCH = {  # rope freq base, rms eps, pre-tokenizer, tied
    "llama": (10000.0, 1e-5, "smollm", True),
    "qwen2": (1000000.0, 1e-6, "qwen2", False),
    "qwen3": (1000000.0, 1e-6, "qwen2", True),
    "qwen2moe": (1000000.0, 1e-6, "qwen2", False),
    "qwen3moe": (1000000.0, 1e-6, "qwen2", False),
}
MOE_ARCHES = ("qwen2moe", "qwen3moe")
BAD = ("expert-count", "expert-shape", "expert-used")


def byte_tokens():
    """GPT-2's bytes_to_unicode, as the 256 token strings in its order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def bpe(word, ranks):
    """Byte-pair encoding of one pre-token (in byte-unicode form)."""
    s = list(word)
    while len(s) > 1:
        i = min(range(len(s) - 1), key=lambda j: ranks.get((s[j], s[j + 1]), len(ranks)))
        if (s[i], s[i + 1]) not in ranks:
            break
        s[i:i + 2] = [s[i] + s[i + 1]]
    return s


def vocabulary(specials_first):
    tokens = byte_tokens()
    merges = []
    for m in MERGES.replace("\n", "").split("|"):
        a, b = m.split(" ")
        assert a in tokens and b in tokens and a + b not in tokens, m
        merges.append(f"{a} {b}")
        tokens.append(a + b)
    ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
    for m in merges:
        assert bpe(m.replace(" ", ""), ranks) == [m.replace(" ", "")], m
    types = [1] * len(tokens)
    if specials_first:  # SmolLM2 layout: <|endoftext|>=0, <|im_start|>=1, <|im_end|>=2
        tokens, types = SPECIALS + tokens, [3] * len(SPECIALS) + types
        bos, eos = 1, 2
    else:               # Qwen layout: control tokens after the merges
        base = len(tokens)
        tokens, types = tokens + SPECIALS, types + [3] * len(SPECIALS)
        bos, eos = base, base + 2
    return tokens, types, merges, bos, eos


# -- K-quant writers (plain rounding; the layouts are those gguf-py reads) --

def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def _safe_div(a, b):
    return np.where(b != 0, a / np.where(b != 0, b, 1), 0)


def _scale_min_k(x, qmax):
    """Per 32-value sub-block affine scales for Q4_K/Q5_K: x ~ d*sc*q - dmin*m."""
    n = x.shape[0]
    sub = x.reshape(n, 8, 32)
    mn = np.maximum(0.0, -sub.min(axis=-1))
    scale = (sub.max(axis=-1) + mn) / qmax
    d = _f16(scale.max(axis=-1) / 63)
    dmin = _f16(mn.max(axis=-1) / 63)
    df, dminf = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    sc = np.clip(np.round(_safe_div(scale, df)), 0, 63).astype(np.uint8)
    m = np.clip(np.round(_safe_div(mn, dminf)), 0, 63).astype(np.uint8)
    step = (df * sc)[..., None]
    q = np.clip(np.round(_safe_div(sub + (dminf * m)[..., None], step)), 0, qmax).astype(np.uint8)
    packed = np.zeros((n, 12), dtype=np.uint8)
    packed[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    packed[:, 4:8] = m[:, :4] | ((m[:, 4:] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)
    return d, dmin, packed, q


def _nibbles(q):  # q (n, 8, 32) -> (n, 128): chunk c holds sub-blocks 2c (low), 2c+1 (high)
    q = q & 0x0F
    return (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(q.shape[0], 128)


def quant_q4_k(x):
    d, dmin, sc, q = _scale_min_k(x, 15)
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                           sc, _nibbles(q)], axis=1)


def quant_q5_k(x):
    d, dmin, sc, q = _scale_min_k(x, 31)
    qh = np.zeros((q.shape[0], 32), dtype=np.uint8)
    for j in range(8):
        qh |= ((q[:, j] >> 4) & 1) << j
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                           sc, qh, _nibbles(q)], axis=1)


def quant_q6_k(x):
    n = x.shape[0]
    sub = x.reshape(n, 16, 16)
    scale = np.abs(sub).max(axis=-1) / 31
    d = _f16(scale.max(axis=-1) / 127)
    df = d.astype(np.float32)[:, None]
    sc = np.clip(np.round(_safe_div(scale, df)), 0, 127).astype(np.int8)
    step = (df * sc)[..., None]
    q = (np.clip(np.round(_safe_div(sub, step)), -32, 31) + 32).astype(np.uint8).reshape(n, 8, 32)
    ql = np.zeros((n, 128), dtype=np.uint8)
    qh = np.zeros((n, 64), dtype=np.uint8)
    for k in range(8):  # chunk k = 128-half h, part t: ql nibble t//2 at byte (t%2)*32, qh bits 2t
        h, t = divmod(k, 4)
        lo = h * 64 + (t % 2) * 32
        ql[:, lo:lo + 32] |= (q[:, k] & 0x0F) << (4 * (t // 2))
        qh[:, h * 32:h * 32 + 32] |= (q[:, k] >> 4) << (2 * t)
    return np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)


K_QUANT = {QT.Q4_K: quant_q4_k, QT.Q5_K: quant_q5_k, QT.Q6_K: quant_q6_k}
K_ERR = {QT.Q4_K: 0.16, QT.Q5_K: 0.08, QT.Q6_K: 0.04}


def quant(w, qtype):
    """w (..., rows, cols) float32 -> array for GGUFWriter.add_tensor(raw_dtype=qtype).

    Rows are quantised independently, so a 3-D expert tensor is quantised
    exactly as its experts' 2-D matrices would be.
    """
    if qtype in K_QUANT:
        blocks = K_QUANT[qtype](w.reshape(-1, QK_K).astype(np.float32))
        out = blocks.reshape(w.shape[:-1] + (-1,))
        back = dequantize(out, qtype).reshape(w.shape)
        # a packing mistake gives errors of the size of w itself; plain
        # rounding of normal data gives 0.08 (Q4_K), 0.04 (Q5_K), 0.02 (Q6_K)
        err = np.sqrt(np.mean((back - w) ** 2) / max(np.mean(w ** 2), 1e-30))
        if not err < K_ERR[qtype]:
            raise AssertionError(f"{qtype.name} writer round trip: relative error {err:.3f}")
        return out
    return quantize(w.astype(np.float32), qtype)


def build(arch, qname, seed=0, layers=2, embd=None, ff=None, heads=4, kv_heads=2,
          head_dim=None, ctx=2048, tied=None, experts=None, experts_used=None,
          ff_exp=None, ff_shexp=None, router_scale=None, bad=None):
    """(metadata dict, [(name, float32 array, qtype)])."""
    if arch not in ARCH:
        raise ValueError(f"unknown architecture {arch!r}")
    moe = arch in MOE_ARCHES
    if not moe:
        given = [o for o, v in (("--experts", experts), ("--experts-used", experts_used),
                                ("--ff-exp", ff_exp), ("--ff-shexp", ff_shexp),
                                ("--router-scale", router_scale), ("--bad", bad)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: only for the MoE architectures"
                             f" ({', '.join(MOE_ARCHES)})")
    if bad is not None and bad not in BAD:
        raise ValueError(f"--bad {bad!r}: one of {', '.join(BAD)}")
    kq = qname in ("q4_k", "q5_k", "q6_k", "q4_k_m")
    embd = embd or (256 if kq else 64)
    if moe:
        experts = 8 if experts is None else experts
        experts_used = 2 if experts_used is None else experts_used
        ff_exp = ff_exp or (256 if kq else 64)
        ff_shexp = ff_shexp or (512 if kq else 128)
        router_scale = 2.0 if router_scale is None else router_scale
        if experts < 1:
            raise ValueError(f"--experts {experts}: must be at least 1")
        if not 0 < experts_used <= experts:
            raise ValueError(f"--experts-used {experts_used}: must be in 1..{experts}")
        ff = ff or experts_used * ff_exp
    ff = ff or (512 if kq else 128)
    head_dim = head_dim or (embd // heads) * (2 if arch in ("qwen3", "qwen3moe") else 1)
    if arch == "qwen2moe" and heads * head_dim != embd:  # llama.cpp: wq is {n_embd, n_embd}
        raise ValueError(f"qwen2moe needs --heads x --head-dim = --embd ({heads} x {head_dim}"
                         f" != {embd})")
    freq_base, eps, pre, default_tied = ARCH[arch]
    tied = default_tied if tied is None else tied
    if arch == "qwen2moe" and tied:
        raise ValueError("qwen2moe cannot be --tied: llama.cpp requires output.weight")
    qtype = TYPES[qname]
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    sizes = [("--embd", embd), ("--ff", ff), ("--heads x --head-dim", heads * head_dim)]
    if moe:
        sizes.append(("--ff-exp", ff_exp))
        if arch == "qwen2moe":
            sizes.append(("--ff-shexp", ff_shexp))
    for what, n in sizes:
        if n % block:
            raise ValueError(f"{what} {n} is not a multiple of {qname}'s block of {block}")
    if heads % kv_heads:
        raise ValueError(f"--heads {heads} is not a multiple of --kv-heads {kv_heads}")

    tokens, types, merges, bos, eos = vocabulary(specials_first=(arch == "llama"))
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)
    out_scale = 1.0 / np.sqrt(2 * layers)

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def mat(rows, cols, scale=1.0):
        return normal((rows, cols), scale / np.sqrt(cols))

    def norm(n):
        return (1.0 + normal((n,), 0.1)).astype(np.float32)

    def qt(name):
        if qname == "q4_k_m" and any(s in name for s in ("attn_v", "ffn_down", "output.")):
            return QT.Q6_K
        return qtype

    T = []
    # embedding rows of norm ~3: tied logits then spread ~3 too, as with output.weight
    T.append(("token_embd.weight", mat(n_vocab, embd, 3.0), qt("token_embd")))
    for il in range(layers):
        p = f"blk.{il}."
        T.append((p + "attn_norm.weight", norm(embd), QT.F32))
        T.append((p + "attn_q.weight", mat(heads * head_dim, embd), qt("attn_q")))
        T.append((p + "attn_k.weight", mat(kv_heads * head_dim, embd), qt("attn_k")))
        T.append((p + "attn_v.weight", mat(kv_heads * head_dim, embd), qt("attn_v")))
        if arch in ("qwen2", "qwen2moe"):
            T.append((p + "attn_q.bias", normal((heads * head_dim,), 0.5), QT.F32))
            T.append((p + "attn_k.bias", normal((kv_heads * head_dim,), 0.5), QT.F32))
            T.append((p + "attn_v.bias", normal((kv_heads * head_dim,), 0.5), QT.F32))
        if arch in ("qwen3", "qwen3moe"):
            T.append((p + "attn_q_norm.weight", norm(head_dim), QT.F32))
            T.append((p + "attn_k_norm.weight", norm(head_dim), QT.F32))
        T.append((p + "attn_output.weight", mat(embd, heads * head_dim, out_scale), qt("attn_output")))
        T.append((p + "ffn_norm.weight", norm(embd), QT.F32))
        if moe:
            up_rows = ff_exp + 32 if bad == "expert-shape" and il == layers - 1 else ff_exp
            T.append((p + "ffn_gate_inp.weight", mat(experts, embd, router_scale), QT.F32))
            T.append((p + "ffn_gate_exps.weight", normal((experts, ff_exp, embd), 1 / np.sqrt(embd)),
                      qt("ffn_gate_exps")))
            T.append((p + "ffn_up_exps.weight", normal((experts, up_rows, embd), 1 / np.sqrt(embd)),
                      qt("ffn_up_exps")))
            T.append((p + "ffn_down_exps.weight",
                      normal((experts, embd, ff_exp), out_scale / np.sqrt(ff_exp)), qt("ffn_down_exps")))
            if arch == "qwen2moe":
                T.append((p + "ffn_gate_inp_shexp.weight", mat(1, embd), QT.F32))
                T.append((p + "ffn_gate_shexp.weight", mat(ff_shexp, embd), qt("ffn_gate_shexp")))
                T.append((p + "ffn_up_shexp.weight", mat(ff_shexp, embd), qt("ffn_up_shexp")))
                T.append((p + "ffn_down_shexp.weight", mat(embd, ff_shexp, out_scale),
                          qt("ffn_down_shexp")))
            continue
        T.append((p + "ffn_gate.weight", mat(ff, embd), qt("ffn_gate")))
        T.append((p + "ffn_up.weight", mat(ff, embd), qt("ffn_up")))
        T.append((p + "ffn_down.weight", mat(embd, ff, out_scale), qt("ffn_down")))
    T.append(("output_norm.weight", norm(embd), QT.F32))
    if not tied:  # logit spread ~3 so that greedy choices are not near-ties
        T.append(("output.weight", mat(n_vocab, embd, 3.0), qt("output.")))

    meta = dict(arch=arch, layers=layers, embd=embd, ff=ff, heads=heads, kv_heads=kv_heads,
                head_dim=head_dim, ctx=ctx, freq_base=freq_base, eps=eps, pre=pre,
                tokens=tokens, types=types, merges=merges, bos=bos, eos=eos,
                file_type=FILE_TYPES[qname], name=f"pi-synth-{arch}-{qname}-s{seed}")
    if moe:
        meta.update(experts=experts + (1 if bad == "expert-count" else 0),
                    experts_used=experts + 1 if bad == "expert-used" else experts_used,
                    ff_exp=ff_exp, ff_shexp=ff_shexp if arch == "qwen2moe" else None)
    return meta, T


def write(path, meta, tensors):
    w = gguf.GGUFWriter(path, meta["arch"])
    w.add_name(meta["name"])
    w.add_type("model")
    w.add_block_count(meta["layers"])
    w.add_context_length(meta["ctx"])
    w.add_embedding_length(meta["embd"])
    w.add_feed_forward_length(meta["ff"])
    w.add_head_count(meta["heads"])
    w.add_head_count_kv(meta["kv_heads"])
    if meta["head_dim"] * meta["heads"] != meta["embd"]:
        w.add_key_length(meta["head_dim"])
        w.add_value_length(meta["head_dim"])
    w.add_rope_dimension_count(meta["head_dim"])
    if meta.get("experts") is not None:  # as convert_hf_to_gguf.py's Qwen2MoeModel
        w.add_expert_count(meta["experts"])
        w.add_expert_used_count(meta["experts_used"])
        w.add_expert_feed_forward_length(meta["ff_exp"])
        if meta.get("ff_shexp") is not None:
            w.add_expert_shared_feed_forward_length(meta["ff_shexp"])
    w.add_rope_freq_base(meta["freq_base"])
    w.add_layer_norm_rms_eps(meta["eps"])
    w.add_vocab_size(len(meta["tokens"]))
    w.add_file_type(meta["file_type"])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(meta["pre"])
    w.add_token_list(meta["tokens"])
    w.add_token_types(meta["types"])
    w.add_token_merges(meta["merges"])
    w.add_bos_token_id(meta["bos"])
    w.add_eos_token_id(meta["eos"])
    w.add_pad_token_id(meta["eos"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)
    for name, arr, qtype in tensors:
        if qtype == QT.F32:
            w.add_tensor(name, arr.astype(np.float32))
        else:
            w.add_tensor(name, quant(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def synth(path, arch, qname="f32", seed=0, **shape):
    """Write a random model to path (atomically); returns its metadata."""
    meta, tensors = build(arch, qname, seed, **shape)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".synth-", suffix=".gguf", dir=d)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(tmp, meta, tensors)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a small random-weight GGUF model.")
    ap.add_argument("--arch", required=True, choices=sorted(ARCH))
    ap.add_argument("--out", required=True, help="output .gguf ('-': stdout)")
    ap.add_argument("--type", default="f32", choices=list(TYPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int)
    ap.add_argument("--ff", type=int)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--experts", type=int, metavar="E", help="MoE: experts per layer (8)")
    ap.add_argument("--experts-used", type=int, metavar="K", help="MoE: experts per token (2)")
    ap.add_argument("--ff-exp", type=int, metavar="N", help="MoE: each expert's n_ff (64)")
    ap.add_argument("--ff-shexp", type=int, metavar="N",
                    help="qwen2moe: the shared expert's n_ff (128)")
    ap.add_argument("--router-scale", type=float, metavar="S",
                    help="MoE: norm of the router's rows (2; 0 routes uniformly)")
    ap.add_argument("--bad", choices=BAD,
                    help="MoE: write a file whose expert metadata or shapes are wrong")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--tied", dest="tied", action="store_true", default=None)
    g.add_argument("--untied", dest="tied", action="store_false")
    a = ap.parse_args(argv)
    shape = dict(layers=a.layers, embd=a.embd, ff=a.ff, heads=a.heads, kv_heads=a.kv_heads,
                 head_dim=a.head_dim, ctx=a.ctx, tied=a.tied)
    moe = dict(experts=a.experts, experts_used=a.experts_used, ff_exp=a.ff_exp,
               ff_shexp=a.ff_shexp, router_scale=a.router_scale, bad=a.bad)
    shape.update({k: v for k, v in moe.items() if v is not None})
    try:
        if a.out == "-":
            if sys.stdout.isatty():
                print("synth.py: refusing to write a GGUF to a terminal", file=sys.stderr)
                return 2
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "m.gguf")
                synth(p, a.arch, a.type, a.seed, **shape)
                with open(p, "rb") as f:
                    sys.stdout.buffer.write(f.read())
        else:
            synth(a.out, a.arch, a.type, a.seed, **shape)
    except (ValueError, OSError) as e:
        print(f"synth.py: {a.out}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
