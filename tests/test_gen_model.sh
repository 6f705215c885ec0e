#!/usr/bin/env bash
# Tool tests for bench/gen_model: small random-weight models of each
# architecture and several types are read by pi-inspect, pi-run and the gguf
# Python package with the shapes, types and spreads asked for; pi's logits on
# them agree with the NumPy reference (so the file is a valid model, not just
# a parseable one); the bytes are a function of the seed alone; the presets
# have their models' parameter counts; bad flags and unwritable outputs fail
# cleanly, leaving no file behind.  Mixtures of experts (qwen2moe, qwen3moe)
# too: their expert tensors and keys, the reference's logits, the presets'
# parameter counts, tokens spread over the experts, and --router-skew
# concentrating them.
set -u
BUILD=${BUILD:-build}
gen=$BUILD/bench/gen_model
run=$BUILD/bin/pi-run
inspect=$BUILD/bin/pi-inspect
logits=$BUILD/tests/tool_logits
. "$(dirname "$0")/lib.sh"

small="--n-layer 2 --n-embd 256 --n-ff 512 --n-head 4 --n-head-kv 2 --vocab 1000 -q"
# name, then gen_model's arguments; llama is untied (greedy continuations
# of a tied random model repeat the last token, whatever the layers compute)
models=(
    "llama-q4_0|-P llama-7b -T q4_0 --output-type f32"
    "llama-q8_0|-P llama-7b -T q8_0 --embd-type f16 --output-type q6_k"
    "llama-f16|-P llama-7b -T f16"
    "llama-q4_k_m|-P llama-7b -T q4_k_m"
    "llama-q2_k|-P llama-7b -T q2_k"
    "llama-q3_k|-P llama-7b -T q3_k --embd-type bf16 --output-type q5_1"
    "qwen2-q4_1|-P qwen2.5-0.5b -T q4_1"
    "qwen2-q5_k|-P qwen2.5-1.5b -T q5_k --untied"
    "qwen3-q6_k|-P qwen3-0.6b -T q6_k --head-dim 64"
    "qwen3-q5_0|-P qwen3-0.6b -T q5_0 --head-dim 128 --untied"
    "qwen2moe-q4_0|-P qwen1.5-moe-a2.7b -T q4_0 --experts 8 --experts-used 2 --ff-exp 128 --ff-shexp 256"
    "qwen2moe-q4_k_m|-P qwen1.5-moe-a2.7b -T q4_k_m --experts 6 --experts-used 3 --ff-exp 128 --ff-shexp 512"
    "qwen3moe-q4_k|-P qwen3-30b-a3b -T q4_k --head-dim 64 --experts 8 --experts-used 2 --ff-exp 256"
    "qwen3moe-q8_0|-P qwen3-moe-tiny -T q8_0 --experts 8 --experts-used 3 --ff-exp 64 --router-skew 0.5"
)
for m in "${models[@]}"; do
    name=${m%%|*} args=${m#*|}
    # shellcheck disable=SC2086
    t "$name: written" "$gen" $args $small -o "$tmp/$name.gguf"
done

for m in "${models[@]}"; do
    name=${m%%|*} f=$tmp/$name.gguf
    t "$name: pi-inspect reads it" bash -c \
        "'$inspect' '$f' | grep -q 'general.architecture .*\"${name%%-*}\"'"
    "$run" -m "$f" -p "hello world" -n 8 -t 2 --ignore-eos --json >"$tmp/j" 2>/dev/null
    t "$name: pi-run generates 8 tokens" python3 -c "
import json, math, sys
j = json.load(open('$tmp/j'))
sys.exit(not (j['generated_tokens'] == 8 and j['prompt_tokens'] >= 2
              and math.isfinite(j['generation_tokens_per_s'])))"
done

# The gguf package sees each tensor with the shape and type asked for, and
# values with the spread gen_model promises.
t "the gguf package reads the shapes, types and spreads asked for" python3 - "$tmp" <<'PY'
import sys
import numpy as np
import gguf
from gguf.quants import dequantize
d = sys.argv[1]
E, F, L, V, H, KV = 256, 512, 2, 1000, 4, 2
want = {  # model: (architecture, matrix type, head_dim, tied, embd type, output type)
    "llama-q4_0": ("llama", "Q4_0", 64, False, "Q4_0", "F32"),
    "llama-q8_0": ("llama", "Q8_0", 64, False, "F16", "Q6_K"),
    "llama-f16": ("llama", "F16", 64, False, "F16", "F16"),
    "llama-q2_k": ("llama", "Q2_K", 64, False, "Q2_K", "Q2_K"),
    "llama-q3_k": ("llama", "Q3_K", 64, False, "BF16", "Q5_1"),
    "qwen2-q4_1": ("qwen2", "Q4_1", 64, True, "Q4_1", None),
    "qwen2-q5_k": ("qwen2", "Q5_K", 64, False, "Q5_K", "Q5_K"),
    "qwen3-q6_k": ("qwen3", "Q6_K", 64, True, "Q6_K", None),
    "qwen3-q5_0": ("qwen3", "Q5_0", 128, False, "Q5_0", "Q5_0"),
}
bad = []
for name, (arch, qt, hd, tied, et, ot) in want.items():
    r = gguf.GGUFReader(f"{d}/{name}.gguf")
    get = lambda k: r.fields[k].contents()
    if (get("general.architecture"), get(f"{arch}.block_count"), get(f"{arch}.embedding_length"),
            get(f"{arch}.feed_forward_length"), get(f"{arch}.attention.head_count_kv"),
            len(get("tokenizer.ggml.tokens"))) != (arch, L, E, F, KV, V):
        bad.append(f"{name}: metadata")
    exp = {"token_embd.weight": ([E, V], et, 3 / np.sqrt(E)),
           "output_norm.weight": ([E], "F32", None)}
    if not tied:
        exp["output.weight"] = ([E, V], ot, 3 / np.sqrt(E))
    for il in range(L):
        p = f"blk.{il}."
        res = 1 / np.sqrt(E * 2 * L)
        exp.update({p + "attn_norm.weight": ([E], "F32", None),
                    p + "ffn_norm.weight": ([E], "F32", None),
                    p + "attn_q.weight": ([E, H * hd], qt, 1 / np.sqrt(E)),
                    p + "attn_k.weight": ([E, KV * hd], qt, 1 / np.sqrt(E)),
                    p + "attn_v.weight": ([E, KV * hd], qt, 1 / np.sqrt(E)),
                    p + "attn_output.weight": ([H * hd, E], qt, 1 / np.sqrt(H * hd * 2 * L)),
                    p + "ffn_gate.weight": ([E, F], qt, 1 / np.sqrt(E)),
                    p + "ffn_up.weight": ([E, F], qt, 1 / np.sqrt(E)),
                    p + "ffn_down.weight": ([F, E], qt, 1 / np.sqrt(F * 2 * L))})
        if arch == "qwen2":
            for k, n in (("q", H), ("k", KV), ("v", KV)):
                exp[p + f"attn_{k}.bias"] = ([n * hd], "F32", None)
        if arch == "qwen3":
            exp[p + "attn_q_norm.weight"] = ([hd], "F32", None)
            exp[p + "attn_k_norm.weight"] = ([hd], "F32", None)
    got = {t.name: t for t in r.tensors}
    if set(got) != set(exp):
        bad.append(f"{name}: tensors {sorted(set(got) ^ set(exp))}")
        continue
    for tn, (shape, ty, std) in exp.items():
        t = got[tn]
        if [int(x) for x in t.shape] != shape or t.tensor_type.name != ty:
            bad.append(f"{name}: {tn} is {t.tensor_type.name} {list(t.shape)}, not {ty} {shape}")
            continue
        w = dequantize(t.data, t.tensor_type).astype(np.float64)
        if not np.isfinite(w).all():
            bad.append(f"{name}: {tn} not finite")
        elif std is not None and not (abs(w.std() / std - 1) < 0.05 and abs(w.mean()) < 0.05 * std):
            bad.append(f"{name}: {tn} std {w.std():.4g} mean {w.mean():.2g}, want std {std:.4g}")
        elif tn.endswith("norm.weight") and not (0.8 <= w.min() and w.max() <= 1.2):
            bad.append(f"{name}: {tn} from {w.min()} to {w.max()}")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY

# The same for the mixtures of experts: the expert keys, the router (F32,
# std 2/sqrt(n_embd), rows scaled by --router-skew), the 3-D expert tensors
# as llama.cpp's converter writes them, the shared expert (qwen2moe), and
# the sharper attention (q and k three times larger).
t "the gguf package reads the experts' tensors, types, spreads and keys" python3 - "$tmp" <<'PY'
import sys
import numpy as np
import gguf
from gguf.quants import dequantize
d = sys.argv[1]
E_, F, L, V, H, KV, hd = 256, 512, 2, 1000, 4, 2, 64
want = {  # model: (arch, matrix type, experts, used, ff_exp, ff_shexp, skew)
    "qwen2moe-q4_0": ("qwen2moe", "Q4_0", 8, 2, 128, 256, 0),
    "qwen2moe-q4_k_m": ("qwen2moe", "Q4_K_M", 6, 3, 128, 512, 0),
    "qwen3moe-q4_k": ("qwen3moe", "Q4_K", 8, 2, 256, None, 0),
    "qwen3moe-q8_0": ("qwen3moe", "Q8_0", 8, 3, 64, None, 0.5),
}
more_bits = lambda il: il < L // 8 or il >= 7 * L // 8 or (il - L // 8) % 3 == 2
def qtype(qt, name, il, cols):  # llama.cpp's Q4_K_M and its fallback for short rows
    t = qt
    if qt == "Q4_K_M":
        t = "Q6_K" if name == "output.weight" or (
            any(k in name for k in ("attn_v", "ffn_down")) and more_bits(il)) else "Q4_K"
    if t in ("Q4_K", "Q6_K") and cols % 256:
        t = {"Q4_K": "Q5_0", "Q6_K": "Q8_0"}[t]
    return t
bad = []
for name, (arch, qt, E, K, fe, fs, skew) in want.items():
    r = gguf.GGUFReader(f"{d}/{name}.gguf")
    get = lambda k: r.fields[k].contents() if k in r.fields else None
    keys = (get("general.architecture"), get(f"{arch}.block_count"), get(f"{arch}.expert_count"),
            get(f"{arch}.expert_used_count"), get(f"{arch}.expert_feed_forward_length"),
            get(f"{arch}.expert_shared_feed_forward_length"), get(f"{arch}.feed_forward_length"))
    if keys != (arch, L, E, K, fe, fs, F):
        bad.append(f"{name}: metadata {keys}")
    sh = arch == "qwen2moe"
    res = 1 / np.sqrt(2 * L)
    exp = {"token_embd.weight": ([E_, V], qtype(qt, "token_embd", 0, E_), 3 / np.sqrt(E_)),
           "output_norm.weight": ([E_], "F32", None),
           "output.weight": ([E_, V], qtype(qt, "output.weight", L - 1, E_), 3 / np.sqrt(E_))}
    for il in range(L):
        p = f"blk.{il}."
        m = lambda n, shape, std: (shape, qtype(qt, p + n, il, shape[0]), std)
        exp.update({p + "attn_norm.weight": ([E_], "F32", None),
                    p + "ffn_norm.weight": ([E_], "F32", None),
                    p + "attn_q.weight": m("attn_q", [E_, H * hd], (3 if sh else 1) / np.sqrt(E_)),
                    p + "attn_k.weight": m("attn_k", [E_, KV * hd], (3 if sh else 1) / np.sqrt(E_)),
                    p + "attn_v.weight": m("attn_v", [E_, KV * hd], 1 / np.sqrt(E_)),
                    p + "attn_output.weight": m("attn_output", [H * hd, E_], res / np.sqrt(H * hd)),
                    p + "ffn_gate_inp.weight": ([E_, E], "F32", 2 / np.sqrt(E_)),
                    p + "ffn_gate_exps.weight": m("ffn_gate_exps", [E_, fe, E], 1 / np.sqrt(E_)),
                    p + "ffn_up_exps.weight": m("ffn_up_exps", [E_, fe, E], 1 / np.sqrt(E_)),
                    p + "ffn_down_exps.weight": m("ffn_down_exps", [fe, E_, E], res / np.sqrt(fe))})
        if sh:
            for k, n in (("q", H), ("k", KV), ("v", KV)):
                exp[p + f"attn_{k}.bias"] = ([n * hd], "F32", None)
            exp.update({p + "ffn_gate_inp_shexp.weight": ([E_, 1], "F32", 1 / np.sqrt(E_)),
                        p + "ffn_gate_shexp.weight": m("ffn_gate_shexp", [E_, fs], 1 / np.sqrt(E_)),
                        p + "ffn_up_shexp.weight": m("ffn_up_shexp", [E_, fs], 1 / np.sqrt(E_)),
                        p + "ffn_down_shexp.weight": m("ffn_down_shexp", [fs, E_], res / np.sqrt(fs))})
        else:
            exp[p + "attn_q_norm.weight"] = ([hd], "F32", None)
            exp[p + "attn_k_norm.weight"] = ([hd], "F32", None)
    got = {t.name: t for t in r.tensors}
    if set(got) != set(exp):
        bad.append(f"{name}: tensors {sorted(set(got) ^ set(exp))}")
        continue
    for tn, (shape, ty, std) in exp.items():
        t = got[tn]
        if [int(x) for x in t.shape] != shape or t.tensor_type.name != ty:
            bad.append(f"{name}: {tn} is {t.tensor_type.name} {list(t.shape)}, not {ty} {shape}")
            continue
        w = dequantize(t.data, t.tensor_type).astype(np.float64)
        if not np.isfinite(w).all():
            bad.append(f"{name}: {tn} not finite")
        elif std is not None and not (abs(w.std() / std - 1) < 0.05 and abs(w.mean()) < 0.05 * std):
            bad.append(f"{name}: {tn} std {w.std():.4g} mean {w.mean():.2g}, want std {std:.4g}")
        elif tn.endswith("_q_norm.weight") or tn.endswith("_k_norm.weight"):
            if not (2.4 <= w.min() and w.max() <= 3.6):  # sharper attention
                bad.append(f"{name}: {tn} from {w.min()} to {w.max()}")
        elif tn.endswith("norm.weight") and not (0.8 <= w.min() and w.max() <= 1.2):
            bad.append(f"{name}: {tn} from {w.min()} to {w.max()}")
        elif tn.endswith("attn_v.bias") and not 0.05 < w.std() < 0.15:
            bad.append(f"{name}: {tn} std {w.std():.3g}, want 0.1")
        if tn.endswith("ffn_gate_inp.weight"):  # rows' RMS: log-normal with sigma skew
            g = np.log(np.sqrt((w ** 2).mean(axis=1)))
            if (skew == 0) != (g.std() < 0.1):
                bad.append(f"{name}: {tn} row RMS log-std {g.std():.3f} for skew {skew}")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY

# pi's logits on the generated models against the reference forward pass:
# the exact path to 1e-4 of the largest logit, the fast path to 0.1, and
# 12 greedy tokens (exact path) on the untied models.
ids=5,17,42,99,3,64,128,7,250,31
for m in "${models[@]}"; do
    name=${m%%|*} f=$tmp/$name.gguf
    "$logits" "$f" $ids --exact 1 --threads 2 --out "$tmp/$name.exact" &&
    "$logits" "$f" $ids --exact 0 --threads 2 --out "$tmp/$name.fast" &&
    "$logits" "$f" $ids --exact 1 --threads 2 --greedy 12 >"$tmp/$name.greedy" ||
        bad "$name: tool_logits runs"
done
t "pi's logits agree with tests/ref/forward.py on every generated model" \
    python3 - "$tmp" "$ids" "${models[@]%%|*}" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/ref")
import forward as ref
d, ids, names = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3:]
bad = 0
for name in names:
    m = ref.Model(f"{d}/{name}.gguf")
    r = m.forward(ids)[-1]
    top = float(np.abs(r).max())
    ex, fa = (np.fromfile(f"{d}/{name}.{k}", "<f4") for k in ("exact", "fast"))
    e1, e2 = float(np.abs(ex - r).max()) / top, float(np.abs(fa - r).max()) / top
    p = np.exp(r - r.max()); p /= p.sum()
    ok = np.isfinite(r).all() and e1 < 1e-4 and e2 < 0.1 and 1 < r.std() < 10 and p.max() < 0.999
    msg = f"{name}: exact {e1:.1e}, fast {e2:.1e}, logit std {r.std():.2f}, top p {p.max():.3f}"
    if m.has("output.weight"):
        want = m.greedy(ids, 12)
        got = [int(x) for x in open(f"{d}/{name}.greedy").read().strip().split(",")]
        ok = ok and got == want and len(set(got)) >= 3
        msg += f", greedy {'same' if got == want else 'differs'}, {len(set(got))} distinct"
    print(("ok   " if ok else "FAIL ") + msg)
    bad += not ok
sys.exit(bad != 0)
PY

# Determinism: the bytes are a function of the options and seed, not of the
# thread count; standard output gets the same bytes.
a="-P qwen3-0.6b -T q4_k $small --head-dim 64"
# shellcheck disable=SC2086
"$gen" $a -s 7 -t 1 -o "$tmp/s7a.gguf" && "$gen" $a -s 7 -t 3 -o "$tmp/s7b.gguf" &&
    "$gen" $a -s 8 -o "$tmp/s8.gguf" || bad "seeded models are written"
t "the same seed gives the same bytes on 1 and 3 threads" cmp -s "$tmp/s7a.gguf" "$tmp/s7b.gguf"
t "another seed gives other bytes" bash -c "! cmp -s '$tmp/s7a.gguf' '$tmp/s8.gguf'"
t "-o - writes the same bytes to standard output" bash -c \
    "'$gen' $a -s 7 -o - | cmp -s - '$tmp/s7a.gguf'"
# A FIFO (like a device) is written in place: renaming a temporary file onto
# it would replace the node.
mkfifo "$tmp/fifo"
timeout 20 cat "$tmp/fifo" >"$tmp/fromfifo" &
# shellcheck disable=SC2086
"$gen" $a -s 7 -o "$tmp/fifo"
wait
t "a FIFO gets the bytes and stays a FIFO" bash -c \
    "test -p '$tmp/fifo' && cmp -s '$tmp/fromfifo' '$tmp/s7a.gguf'"

# The presets have their models' parameter counts; --dry-run's total is the
# tensor data the file holds.
t "presets: llama-7b 6738415616, llama3-8b 8030261248, qwen2.5-0.5b 494032768 parameters" \
    bash -c "'$gen' -P llama-7b --dry-run | grep -q '^total: 291 tensors, 6738415616 parameters' &&
             '$gen' -P llama3-8b --dry-run | grep -q '^total: 291 tensors, 8030261248 parameters' &&
             '$gen' -P qwen2.5-0.5b --dry-run | grep -q '^total: 290 tensors, 494032768 parameters'"
t "every preset has a dry run" bash -c "for p in \$('$gen' --help | sed -n '/^Presets:/,/^\$/p' |
    awk '\$4 == \"layers,\" {print \$1}'); do '$gen' -P \$p -T q4_k_m --dry-run >/dev/null 2>&1 || exit 1; done"
# Qwen1.5-MoE-A2.7B has 14.3B parameters, Qwen3-30B-A3B 30.5B (their model
# cards); Q4_K, whose rows of 2048 and 768 are whole super-blocks, makes
# the latter 17.2 GB
t "presets: qwen1.5-moe-a2.7b 14315784192, qwen3-30b-a3b 30532122624 parameters" \
    bash -c "'$gen' -P qwen1.5-moe-a2.7b --dry-run | grep -q '^total: 411 tensors, 14315784192 parameters' &&
             '$gen' -P qwen3-30b-a3b -T q4_k --dry-run |
             grep -q '^total: 579 tensors, 30532122624 parameters, 17218297856 bytes'"
"$gen" -P qwen2.5-0.5b -T q4_k --n-layer 2 --n-ff 512 --vocab 1000 --dry-run >"$tmp/dry" 2>"$tmp/err"
t "K-quant rows of 896 fall back to Q5_0, with a note; ffn_down stays Q4_K" bash -c \
    "grep -q 'note: 13 Q4_K tensors are Q5_0' '$tmp/err' && grep -q 'attn_q.weight  *Q5_0' '$tmp/dry' &&
     grep -q 'ffn_down.weight  *Q4_K' '$tmp/dry'"
t "--dry-run's total is the file's tensor data" python3 - "$tmp/llama-q4_k_m.gguf" \
    "$("$gen" -P llama-7b -T q4_k_m $small --dry-run |
       sed -n 's/^total: .* parameters, \([0-9]*\) bytes.*/\1/p')" <<'PY'
import sys
import gguf
r = gguf.GGUFReader(sys.argv[1])
sys.exit(sum(int(t.n_bytes) for t in r.tensors) != int(sys.argv[2]))
PY

# Tokens spread over the experts, and --router-skew concentrates them: a
# 4-layer qwen3moe of 64 experts (4 used) reads 1200-odd tokens of text and
# writes 16; from pi-run's per-layer expert_usage, the share of routings
# the busiest quarter of the experts serves.  Without skew every layer uses
# nearly every expert and none serves more than half the tokens.
words_text "$tmp/words.txt" 40 3
moe="-P qwen3-moe-tiny --experts 64 --experts-used 4 --ff-exp 64 --vocab 2000 -q"
for sk in 0 0.5; do
    # shellcheck disable=SC2086
    "$gen" $moe --router-skew $sk -o "$tmp/skew$sk.gguf" &&
    "$run" -m "$tmp/skew$sk.gguf" -f "$tmp/words.txt" -n 16 -t 1 --ignore-eos --json \
        >"$tmp/skew$sk.json" 2>/dev/null || bad "--router-skew $sk: written and run"
done
t "MoE routing spreads over the experts; --router-skew 0.5 concentrates it" \
    python3 - "$tmp/skew0.json" "$tmp/skew0.5.json" <<'PY'
import json, sys
import numpy as np
def stats(path):
    j = json.load(open(path))
    u = np.array(j["expert_usage"], float)                  # layers x experts
    n = j["prompt_tokens"] + j["generated_tokens"]
    top = np.sort(u, axis=1)[:, ::-1][:, :u.shape[1] // 4].sum(1) / u.sum(1)
    return top, (u > 0).mean(1), u.max(1) / n
(t0, used0, busy0), (t1, used1, busy1) = stats(sys.argv[1]), stats(sys.argv[2])
print(f"top quarter's share: skew 0 {np.round(t0, 2)}, skew 0.5 {np.round(t1, 2)}; "
      f"skew 0 uses {np.round(used0, 2)} of the experts, busiest on {np.round(busy0, 2)} of tokens")
sys.exit(not ((used0 >= 0.9).all() and (busy0 < 0.5).all() and t0.mean() < 0.5
              and t1.mean() > t0.mean() + 0.1))
PY
# shellcheck disable=SC2086
"$gen" $moe --router-skew 0.5 -t 1 -o "$tmp/skew1t.gguf" || bad "a skewed MoE is written on 1 thread"
t "a skewed MoE's bytes do not depend on the thread count" \
    cmp -s "$tmp/skew1t.gguf" "$tmp/skew0.5.gguf"

# A real shape end to end: SmolLM2-135M's (77 MB in Q4_0).
"$gen" -P smollm2-135m -o "$tmp/smol.gguf" 2>"$tmp/err"
t "smollm2-135m: written, with a final line giving size and time" \
    grep -q "^gen_model: wrote .*smol.gguf: smollm2-135m, Q4_0, 272 tensors, [0-9]* bytes (0.08 GB) in" \
    "$tmp/err"
t "smollm2-135m: pi-run generates" bash -c \
    "'$run' -m '$tmp/smol.gguf' -p hello -n 4 -t 2 --ignore-eos --json 2>/dev/null |
     grep -q '\"generated_tokens\": 4'"
rm -f "$tmp/smol.gguf"

t "--help exits 0 and shows usage" bash -c "'$gen' --help | grep -q '^Usage: gen_model'"
fails_with "an unknown flag is a usage error" 2 "Try 'gen_model --help'" "$gen" --bogus
fails_with "an unknown preset is named" 2 "unknown preset 'llama-9b'" \
    "$gen" -P llama-9b -o "$tmp/x.gguf"
fails_with "an unknown type is named" 2 "'q9_9' is not a type" \
    "$gen" -P llama-7b -T q9_9 -o "$tmp/x.gguf"
fails_with "a missing output is a usage error" 2 "no output" "$gen" -P llama-7b
fails_with "a tiny vocabulary is refused" 2 "vocab: '10'" \
    "$gen" -P llama-7b --vocab 10 -o "$tmp/x.gguf"
fails_with "heads that do not divide n-embd are refused" 2 "give --head-dim" \
    "$gen" -P llama-7b --n-head 5 -o "$tmp/x.gguf"
fails_with "rows that are not whole blocks are refused" 2 "rows of 100 are not whole Q4_0 blocks" \
    "$gen" -P llama-7b --n-embd 100 --n-head 2 --n-head-kv 2 -o "$tmp/x.gguf"
fails_with "--output-type on a tied model is refused" 2 "no output.weight" \
    "$gen" -P smollm2-135m --output-type q8_0 -o "$tmp/x.gguf"
fails_with "expert options on a dense architecture are refused" 2 "only for the MoE" \
    "$gen" -P qwen3-0.6b --experts 8 -o "$tmp/x.gguf"
fails_with "--router-skew on a dense architecture is refused" 2 "only for the MoE" \
    "$gen" -P llama-7b --router-skew 1 -o "$tmp/x.gguf"
fails_with "more experts used than there are is refused" 2 "9 experts used of 8" \
    "$gen" -P qwen3-30b-a3b --experts 8 --experts-used 9 -o "$tmp/x.gguf"
fails_with "qwen3moe has no shared expert" 2 "no shared expert" \
    "$gen" -P qwen3-30b-a3b --ff-shexp 512 -o "$tmp/x.gguf"
fails_with "a tied qwen2moe is refused (llama.cpp needs output.weight)" 2 "cannot be --tied" \
    "$gen" -P qwen1.5-moe-a2.7b --tied -o "$tmp/x.gguf"
fails_with "a negative --router-skew is refused" 2 "router-skew: '-1'" \
    "$gen" -P qwen3-30b-a3b --router-skew -1 -o "$tmp/x.gguf"
touch "$tmp/file"
fails_with "an unwritable output is a runtime error" 1 "^gen_model: $tmp/file/x.gguf: " \
    "$gen" -P llama-7b $small -o "$tmp/file/x.gguf"
mkdir "$tmp/full"
fails_with "a write that fails midway is a runtime error" 1 \
    "^gen_model: .*full/x.gguf: File too large" \
    bash -c "trap '' XFSZ; ulimit -f 64; exec '$gen' -P llama-7b $small -o '$tmp/full/x.gguf'"
t "... and leaves no file behind" test -z "$(ls -A "$tmp/full")"
finish
