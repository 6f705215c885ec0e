#!/usr/bin/env bash
# Mixture-of-experts models (qwen2moe, qwen3moe) on the CPU against the
# NumPy reference (tests/ref/forward.py, which follows llama.cpp's
# build_moe_ffn): logits of pi's exact path within 1e-3 of the largest and
# 16 greedy tokens equal, for several quant types; a token's result does not
# depend on its batch or the thread count; only the chosen experts are
# computed (an expert no token chose is filled with NaN and nothing
# changes); the routing pi reports (--json expert_usage) is the reference's;
# bad files and unsupported uses get one line and exit 1.
set -u
BUILD=${BUILD:-build}
run=$BUILD/bin/pi-run
logits=$BUILD/tests/tool_logits
. "$(dirname "$0")/lib.sh"

ids=5,17,42,99,3,64,128,7,250,31,12,77
for spec in qwen3moe/q8_0 qwen3moe/q4_k_m qwen3moe/q4_0 qwen2moe/q8_0 qwen2moe/q4_k_m qwen2moe/f16; do
    arch=${spec%/*} type=${spec#*/} m=$tmp/${spec/\//-}.gguf
    python3 tests/ref/synth.py --arch "$arch" --type "$type" --out "$m" >/dev/null ||
        { bad "$spec: synth.py writes the model"; continue; }
    "$logits" "$m" $ids --exact 1 --greedy 16 --out "$tmp/pi.bin" >"$tmp/pi.txt" ||
        { bad "$spec: tool_logits runs"; continue; }
    python3 - "$m" $ids "$tmp/ref" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/ref")
from forward import Model
path, ids, out = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], sys.argv[3]
Model(path, np.float32).forward(ids)[-1].astype("<f4").tofile(out + ".bin")
with open(out + ".txt", "w") as f:
    f.write(",".join(str(t) for t in Model(path, np.float32).greedy(ids, 16)) + "\n")
PY
    t "$spec: logits within 1e-3 of the reference's largest" python3 - "$tmp/pi.bin" \
        "$tmp/ref.bin" <<'PY'
import sys
import numpy as np
a, b = (np.fromfile(p, "<f4") for p in sys.argv[1:3])
err = np.abs(a - b).max() / np.abs(b).max()
print(f"max error {err:.2e} of the largest logit")
sys.exit(0 if a.shape == b.shape and err < 1e-3 else 1)
PY
    t "$spec: 16 greedy tokens equal the reference's" \
        test "$(tail -n1 "$tmp/pi.txt")" = "$(tail -n1 "$tmp/ref.txt")"
done

m=$tmp/qwen3moe-q8_0.gguf
"$logits" "$m" $ids --out "$tmp/b64.bin" >/dev/null &&
"$logits" "$m" $ids --batch 1 --out "$tmp/b1.bin" >/dev/null &&
"$logits" "$m" $ids --threads 2 --batch 5 --out "$tmp/t2.bin" >/dev/null ||
    bad "batch and thread runs"
t "a token's logits do not depend on its batch" cmp -s "$tmp/b64.bin" "$tmp/b1.bin"
t "nor on the thread count" cmp -s "$tmp/b64.bin" "$tmp/t2.bin"

# Routing: how often pi chose each expert of each layer over the prompt
# equals the reference's counts (which follow llama.cpp's top-k).
"$logits" "$m" $ids --exact 1 --experts 1 >"$tmp/usage.txt" || bad "tool_logits --experts"
t "the experts chosen per layer are the reference's" python3 - "$m" $ids "$tmp/usage.txt" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/ref")
from forward import Model
ids = [int(t) for t in sys.argv[2].split(",")]
m = Model(sys.argv[1], np.float32)
m.forward(ids)
pi = [[int(c) for c in l.split(":")[1].split()] for l in open(sys.argv[3]) if l.startswith("layer")]
ref = [[sum(1 for r in m.routing[il] for e in r.experts if e == x) for x in range(m.n_expert)]
       for il in range(m.n_layer)]
print("pi", pi, "reference", ref)
sys.exit(0 if pi == ref else 1)
PY
"$run" -m "$m" -p "river hill sea town road" -n 2 --temp 0 --json -q >"$tmp/r.json" ||
    bad "pi-run --json on a MoE model"
t "pi-run --json reports expert usage" python3 -c "
import json, sys
d = json.load(open('$tmp/r.json'))
u = d['expert_usage']
print(d['experts'], d['experts_per_token'], u)
sys.exit(0 if len(u) == 2 and all(len(r) == d['experts'] for r in u) and
         len({sum(r) for r in u}) == 1 and sum(u[0]) % d['experts_per_token'] == 0 else 1)"

# Only the chosen experts are read: poison with NaN an expert of layer 1
# that no token chose, and the logits stay the same.  (On the exact path,
# where a NaN weight reaches the logits as NaN: quantised activations turn
# it into arbitrary codes.)
"$logits" "$m" $ids --exact 1 --out "$tmp/clean.bin" >/dev/null
unused=$(python3 - "$m" $ids <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/ref")
from forward import Model
ids = [int(t) for t in sys.argv[2].split(",")]
m = Model(sys.argv[1], np.float32)
m.forward(ids)
chosen = {e for r in m.routing[1] for e in r.experts}
free = [e for e in range(m.n_expert) if e not in chosen]
print(free[0] if free else -1)
PY
)
if [ "${unused:--1}" -ge 0 ]; then
    python3 - "$m" "$tmp/poison.gguf" "$unused" <<'PY' || bad "writing the poisoned model"
import sys
import numpy as np
sys.path.insert(0, "tests/ref")
from regguf import rewrite
x = int(sys.argv[3])
def poison(name, data):
    if not name.startswith("blk.1.ffn_") or "_exps" not in name:
        return data
    d = np.array(data, copy=True)
    d.reshape(d.shape[0], -1)[x] = 0xFF  # Q8_0 scales 0xFFFF: NaN
    return d
rewrite(sys.argv[1], sys.argv[2], tensor=poison)
PY
    "$logits" "$tmp/poison.gguf" $ids --exact 1 --batch 1 --out "$tmp/poison1.bin" >/dev/null
    "$logits" "$tmp/poison.gguf" $ids --exact 1 --out "$tmp/poison.bin" >/dev/null
    t "an expert no token chose is never computed (NaN weights change nothing)" \
        bash -c "cmp -s '$tmp/clean.bin' '$tmp/poison.bin' && cmp -s '$tmp/clean.bin' '$tmp/poison1.bin'"
    # the control: the same poison in a chosen expert does reach the logits
    chosen=$(python3 -c "print(max(range(8), key=lambda x: [int(c) for c in open('$tmp/usage.txt').readlines()[1].split(':')[1].split()][x]))")
    python3 - "$m" "$tmp/poison2.gguf" "$chosen" <<'PY' || bad "writing the control model"
import sys
import numpy as np
sys.path.insert(0, "tests/ref")
from regguf import rewrite
x = int(sys.argv[3])
def poison(name, data):
    if not name.startswith("blk.1.ffn_") or "_exps" not in name:
        return data
    d = np.array(data, copy=True)
    d.reshape(d.shape[0], -1)[x] = 0xFF
    return d
rewrite(sys.argv[1], sys.argv[2], tensor=poison)
PY
    "$logits" "$tmp/poison2.gguf" $ids --exact 1 --out "$tmp/poison2.bin" >/dev/null
    t "control: NaN weights in a chosen expert do reach the logits" python3 -c "
import sys, numpy as np
sys.exit(0 if np.isnan(np.fromfile('$tmp/poison2.bin', '<f4')).any() else 1)"
else
    bad "the reference left no expert of layer 1 unchosen (choose other tokens)"
fi

# Bad files and unsupported uses.
for b in expert-count expert-shape expert-used; do
    python3 tests/ref/synth.py --arch qwen3moe --type q8_0 --bad $b --out "$tmp/bad-$b.gguf" \
        >/dev/null || bad "synth.py --bad $b"
done
fails_with "metadata with another expert count than the tensors is refused" 1 \
    "ffn_gate_inp.weight' is 64 x 8, expected 64 x 9" "$run" -m "$tmp/bad-expert-count.gguf" -p hi
fails_with "an expert tensor of the wrong shape is refused" 1 \
    "ffn_up_exps.weight' is .* expected 8 experts of" "$run" -m "$tmp/bad-expert-shape.gguf" -p hi
fails_with "more experts used than there are is refused" 1 "experts used of" \
    "$run" -m "$tmp/bad-expert-used.gguf" -p hi
words_text "$tmp/text.txt" 200 1
fails_with "pi-profile writes no trace of a mixture of experts yet" 1 "statistics only" \
    "$BUILD/bin/pi-profile" -m "$m" "$tmp/text.txt" -o "$tmp/x.trace"
"$BUILD/bin/pi-profile" -m "$m" -q --ctx 64 --stats-only --stats "$tmp/ms.yaml" "$tmp/text.txt" ||
    bad "pi-profile --stats-only on a mixture of experts"
t "pi-profile --stats: routing counts and neurons inside the experts" python3 - "$tmp/ms.yaml" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
E, k = d["experts"]["n_expert"], d["experts"]["used"]
ok = d["n_ff"] == E * 64 and len(d["experts"]["layers"]) == d["n_layer"] == 2
for le, la in zip(d["experts"]["layers"], d["layers"]):
    u = le["usage"]
    top = sorted(u, reverse=True)
    ok &= len(u) == E and sum(u) == le["tokens"] * k == la["tokens"] * k > 0
    ok &= abs(le["top25_share"] - sum(top[:(E + 3) // 4]) / sum(u)) < 1e-5
    # a neuron fires at most as often as its expert is chosen
    for x in range(E):
        f = la["frequency"]["0.99"][x * 64:(x + 1) * 64]
        ok &= max(f) <= u[x] / le["tokens"] + 1e-6
    print("layer", le["layer"], "usage", u, "top25", le["top25_share"],
          "needed 0.99 of all", la["needed_fraction"]["0.99"]["mean"])
sys.exit(0 if ok else 1)
PY
finish
