#!/usr/bin/env bash
# pi-pack and pi-run on mixtures of experts (qwen3moe, qwen2moe): synthetic
# models profiled here (pi-profile --stats-only), packed, and checked:
# the packed experts are in the order of the routing counts the statistics
# hold and each expert's neurons hottest first, every tensor is its source
# permuted (router rows, expert rows, down columns requantised), packing is
# byte-identical when repeated; the packed model's logits are the original's
# within the requantisation of the down projection (exactly the same sums
# in another order with an F32 down), greedy tokens equal, at 1 and 2
# threads; bad statistics, flags and tampered packed files get one line
# naming the file and exit 1.
set -u
BUILD=${BUILD:-build}
bin=$BUILD/bin/pi-pack
prof=$BUILD/bin/pi-profile
run=$BUILD/bin/pi-run
inspect=$BUILD/bin/pi-inspect
logits=$BUILD/tests/tool_logits
. "$(dirname "$0")/lib.sh"
no_output() { [ ! -e "$tmp/out.gguf" ] && [ -z "$(ls "$tmp" | grep 'out.gguf.tmp')" ]; }

words_text "$tmp/text.txt" 200 1
ids=5,17,42,99,3,64,128,7,250,31,12,77

# The file against its inputs: experts in usage order (more used first,
# ties to the lower index), inside each its neurons by frequency at 0.99
# (ties: the sum over the levels, then the lower index), pi.moe.usage the
# counts' shares, every tensor its source permuted, every other tensor and
# key unchanged.  argv: model, packed, statistics, F32-down packed.
cat >"$tmp/check.py" <<'PY'
import sys, yaml, numpy as np, gguf
from gguf.quants import dequantize
src, pk, f32 = gguf.GGUFReader(sys.argv[1]), gguf.GGUFReader(sys.argv[2]), gguf.GGUFReader(sys.argv[4])
st = yaml.safe_load(open(sys.argv[3]))
NL, E = st["n_layer"], st["experts"]["n_expert"]
fe = st["n_ff"] // E
T = lambda r: {t.name: t for t in r.tensors}
ts, tp, tf = T(src), T(pk), T(f32)
rows = lambda t: np.array(t.data).reshape(int(np.prod([int(n) for n in t.shape[1:]])), -1)
deq = lambda t: dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0]))
F = pk.fields
assert F["pi.version"].contents() == 1
perm = np.array(F["pi.ffn.perm"].contents()).reshape(NL, E, fe)
freq = np.array(F["pi.ffn.freq"].contents()).reshape(NL, E, fe)
usage = np.array(F["pi.moe.usage"].contents(), np.float32).reshape(NL, E)
counts = {l["layer"]: l["usage"] for l in st["experts"]["layers"]}
d = int(ts["blk.0.ffn_gate_inp.weight"].shape[0])
for il in range(NL):
    u = counts[il]
    order = sorted(range(E), key=lambda x: (-u[x], x))
    lv = {k: np.array(v, np.float32) for k, v in st["layers"][il]["frequency"].items()}
    f = lv["0.99"]
    tie = np.float32(0) + lv["0.9"] + lv["0.95"] + lv["0.99"]
    for b, x in enumerate(order):
        want = sorted(range(x * fe, (x + 1) * fe), key=lambda i: (-f[i], -tie[i], i))
        assert list(perm[il, b]) == want, f"layer {il} expert {b}: perm"
        q = np.rint(f[perm[il, b]] * np.float32(65535))
        assert np.array_equal(freq[il, b], q) and np.all(np.diff(freq[il, b]) <= 0), "freq"
    share = np.array([u[x] / sum(u) for x in order], np.float32)
    assert np.abs(usage[il] - share).max() < 1e-7 and np.all(np.diff(usage[il]) <= 0), "usage"
    print(f"    layer {il}: counts {u}, packed order {order}")
    p = f"blk.{il}."
    assert np.array_equal(rows(tp[p + "ffn_gate_inp.weight"]), rows(ts[p + "ffn_gate_inp.weight"])[order])
    for w in ("gate_exps", "up_exps"):
        a, b_ = ts[p + f"ffn_{w}.weight"], tp[p + f"ffn_{w}.weight"]
        assert list(b_.shape) == list(a.shape), w
        assert np.array_equal(rows(b_), rows(a)[perm[il].reshape(-1)]), w
    down = deq(ts[p + "ffn_down_exps.weight"]).reshape(E, d, fe)
    want = np.concatenate([down[x][:, perm[il, b] - x * fe].T for b, x in enumerate(order)])
    dt, dt32 = tp[p + "ffn_down_exps_t.weight"], tf[p + "ffn_down_exps_t.weight"]
    assert [int(n) for n in dt.shape] == [d, fe, E] and dt.tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert np.array_equal(deq(dt32), want), "F32 down: the source's columns exactly"
    # Q8_0: within half a step of each block's scale
    assert np.abs(deq(dt) - want).max() <= np.abs(down).max() / 127 * 0.51 + 1e-6, "Q8_0 down"
    assert p + "ffn_down_exps.weight" not in tp
for name, t in ts.items():
    if any(k in name for k in ("ffn_gate_inp.", "_exps.")):
        continue
    assert np.array_equal(np.array(t.data), np.array(tp[name].data)), name
for fl in src.fields.values():
    if not fl.name.startswith("GGUF."):
        assert F[fl.name].contents() == fl.contents(), fl.name
PY

# Largest logit errors relative to the largest logit, against the original
# (argv: original, then the Q8_0-down and the F32-down packed models' logits
# each with its bound); the argmax must agree.
cat >"$tmp/close.py" <<'PY'
import sys, numpy as np
m, a, f = (np.fromfile(sys.argv[i], np.float32) for i in (1, 2, 4))
s = np.abs(m).max()
ea, ef = np.abs(m - a).max() / s, np.abs(m - f).max() / s
print(f"    relative logit error: Q8_0 down {ea:.2e}, F32 down {ef:.2e}")
sys.exit(not (m.shape == a.shape == f.shape and ea < float(sys.argv[3]) and
              ef < float(sys.argv[5]) and m.argmax() == a.argmax() == f.argmax()))
PY

for spec in qwen3moe/q8_0 qwen2moe/q4_k_m; do
    arch=${spec%/*} type=${spec#*/}
    m=$tmp/$arch.gguf s=$tmp/$arch.yaml pk=$tmp/$arch.pi.gguf f32=$tmp/$arch.f32.gguf
    python3 tests/ref/synth.py --arch "$arch" --type "$type" --out "$m" >/dev/null &&
    "$prof" -m "$m" -q --ctx 64 --stats-only --stats "$s" "$tmp/text.txt" &&
    "$bin" -m "$m" -q --stats "$s" -o "$pk" &&
    "$bin" -m "$m" -q --stats "$s" --down-type f32 -o "$f32" ||
        { bad "$spec: synth.py, pi-profile and pi-pack"; continue; }
    "$bin" -m "$m" -q --stats "$s" -o "$tmp/again.gguf"
    t "$spec: packing again gives the same bytes" cmp -s "$pk" "$tmp/again.gguf"
    "$bin" -m "$m" -q --stats "$s" -o - >"$tmp/stdout.gguf"
    t "$spec: packing to standard output gives the same bytes" cmp -s "$pk" "$tmp/stdout.gguf"
    t "$spec: experts in usage order, neurons hottest first, tensors permuted" \
        python3 "$tmp/check.py" "$m" "$pk" "$s" "$f32"
    order=$(python3 -c "
import yaml
d = yaml.safe_load(open('$s'))['experts']
u = d['layers'][1]['usage']
print(' '.join(str(x) for x in sorted(range(d['n_expert']), key=lambda x: (-u[x], x))))")
    t "$spec: pi-inspect shows layer 1's experts most used first" \
        bash -c "'$inspect' '$pk' | grep -q '^  order:      experts most used first' &&
                 '$inspect' '$pk' | grep -Eq '^ +1 .* $order\$'"

    # Exact path (float activations): the same sums in another order with an
    # F32 down; within the Q8_0 requantisation with the default down.
    for th in 1 2; do
        for f in "$m" "$pk" "$f32"; do
            "$logits" "$f" $ids --exact 1 --threads $th --greedy 16 \
                --out "$f.t$th.bin" >"$f.t$th.greedy" || bad "$spec: tool_logits $f -t $th"
        done
        t "$spec: -t $th: 16 greedy tokens of the packed model equal the original's" \
            bash -c "cmp -s '$m.t$th.greedy' '$pk.t$th.greedy' && cmp -s '$m.t$th.greedy' '$f32.t$th.greedy'"
        t "$spec: -t $th: logits: Q8_0 down within 2e-2 of the largest, F32 down 1e-5" \
            python3 "$tmp/close.py" "$m.t$th.bin" "$pk.t$th.bin" 2e-2 "$f32.t$th.bin" 1e-5
    done
    t "$spec: the packed model's logits do not depend on the thread count" \
        cmp -s "$pk.t1.bin" "$pk.t2.bin"
    for f in "$m" "$pk"; do
        "$logits" "$f" $ids --threads 2 --out "$f.q.bin" >/dev/null || bad "$spec: tool_logits $f"
    done
    # The default path: activations quantised to 8 bits, also for the
    # source's down projection but not for the packed one's (which takes them
    # as float), so the yardstick is how far the original's own default path
    # is from its exact one: the packed model's must not be much further.
    t "$spec: quantised activations: the packed model as close to the exact logits as the original" \
        python3 - "$m.t1.bin" "$m.q.bin" "$pk.q.bin" <<'PY'
import sys, numpy as np
e, o, p = (np.fromfile(f, np.float32) for f in sys.argv[1:4])
rms = lambda x: np.sqrt(np.mean((e - x) ** 2) / np.mean(e ** 2))
print(f"    rms error against the exact logits: original {rms(o):.2e}, packed {rms(p):.2e}")
sys.exit(not (rms(p) < 1.25 * rms(o) and o.argmax() == p.argmax()))
PY
    # pi-run itself: the same perplexity (mean NLL within 0.1%), and the same
    # routing: each packed expert chosen as often as its source expert, in
    # layer 0 exactly (same input, router rows the same bytes), in later ones
    # but for 1% of the routings, which the rounding of the layers before can
    # move between experts of nearly equal weight.
    head -40 "$tmp/text.txt" >"$tmp/ppl.txt"
    "$run" -m "$m" --perplexity "$tmp/ppl.txt" -c 64 -t 1 -q --json >"$tmp/ppl0.json" &&
    "$run" -m "$pk" --perplexity "$tmp/ppl.txt" -c 64 -t 2 -q --json >"$tmp/ppl1.json" ||
        bad "$spec: pi-run --perplexity"
    t "$spec: pi-run --perplexity: the packed model's (-t 2) is the original's (-t 1), experts permuted" \
        python3 - "$tmp/ppl0.json" "$tmp/ppl1.json" "$pk" <<'PY'
import json, sys, numpy as np, gguf
a, b = (json.load(open(f)) for f in sys.argv[1:3])
r = gguf.GGUFReader(sys.argv[3])
E = a["experts"]
perm = np.array(r.fields["pi.ffn.perm"].contents()).reshape(len(a["expert_usage"]), E, -1)
fe = perm.shape[2]
ok = abs(a["nll"] - b["nll"]) < 1e-3 * a["nll"] and a["tokens_scored"] == b["tokens_scored"] > 0
for il, (ua, ub) in enumerate(zip(a["expert_usage"], b["expert_usage"])):
    want = [ua[perm[il, x, 0] // fe] for x in range(E)]
    moved = sum(abs(p - q) for p, q in zip(ub, want))
    ok &= moved == 0 if il == 0 else moved <= 0.01 * sum(ua)
    print(f"    layer {il} expert usage: original {ua}, packed {ub}")
print(f"    mean NLL: original {a['nll']:.6f}, packed {b['nll']:.6f}")
sys.exit(not ok)
PY
    "$run" -m "$pk" -p "river hill sea town" -n 12 --temp 0 --ignore-eos -q -t 1 >"$tmp/g1"
    "$run" -m "$pk" -p "river hill sea town" -n 12 --temp 0 --ignore-eos -q -t 2 >"$tmp/g2"
    t "$spec: pi-run's greedy text from the packed model does not depend on the thread count" \
        bash -c "[ -s '$tmp/g1' ] && cmp -s '$tmp/g1' '$tmp/g2'"
done

# Bad input: one line naming the file, exit 1, no output left behind.
m=$tmp/qwen3moe.gguf s=$tmp/qwen3moe.yaml pk=$tmp/qwen3moe.pi.gguf
sed '/^experts:/,$d' "$s" >"$tmp/noexp.yaml"
python3 - "$s" "$tmp" <<'PY' || bad "writing bad statistics"
import re, sys
text, d = open(sys.argv[1]).read(), sys.argv[2]
first = re.search(r"usage: \[([0-9, ]*)\]", text)
counts = first.group(1).split(", ")
def put(name, new):
    open(f"{d}/{name}.yaml", "w").write(text[:first.start(1)] + new + text[first.end(1):])
put("short", ", ".join(counts[:-1]))
put("zero", ", ".join("0" for _ in counts))
put("negative", ", ".join(["-1"] + counts[1:]))
nine = re.sub(r"usage: \[([0-9, ]*)\]", r"usage: [\1, 0]", text).replace("n_expert: 8", "n_expert: 9")
open(f"{d}/nine.yaml", "w").write(nine)
PY
fails_with "statistics without an experts section are refused" 1 \
    "noexp.yaml: no experts section" "$bin" -m "$m" --stats "$tmp/noexp.yaml" -o "$tmp/out.gguf"
t "  ... and leave no file" no_output
fails_with "usage counts of the wrong length are refused" 1 \
    "short.yaml: experts: layer 0: usage has 7 counts, expected 8" \
    "$bin" -m "$m" --stats "$tmp/short.yaml" -o "$tmp/out.gguf"
t "  ... and leave no file" no_output
fails_with "a negative usage count is refused" 1 "negative.yaml: line .*count 1 is not an integer" \
    "$bin" -m "$m" --stats "$tmp/negative.yaml" -o "$tmp/out.gguf"
fails_with "a layer with no routings counted is refused" 1 \
    "zero.yaml: experts: layer 0: no routings counted" \
    "$bin" -m "$m" --stats "$tmp/zero.yaml" -o "$tmp/out.gguf"
fails_with "counts for another number of experts are refused" 1 \
    "nine.yaml: experts: 9 experts; .*qwen3moe.gguf has 8" \
    "$bin" -m "$m" --stats "$tmp/nine.yaml" -o "$tmp/out.gguf"
t "  ... and leave no file" no_output
fails_with "--predictors for a mixture of experts is refused" 1 \
    "qwen3moe.gguf: a mixture of experts has no predictors to pack" \
    "$bin" -m "$m" --stats "$s" --predictors "$tmp/p.gguf" -o "$tmp/out.gguf"
fails_with "--vram for a mixture of experts is refused" 1 "pi-pack stores no GPU plan" \
    "$bin" -m "$m" --stats "$s" --vram 1G -o "$tmp/out.gguf"
t "  ... and leaves no file" no_output
fails_with "an already packed mixture of experts is refused" 1 "already packed" \
    "$bin" -m "$pk" --stats "$s" -o "$tmp/out.gguf"

# The GPU plan of a packed mixture of experts (pi-run --vram --dry-run)
# against a plain reference computed here from the file: the reserve
# (everything but the routed experts, the half KV cache, 256 MiB scratch),
# then experts by routing probability (k times the stored share, at most 1)
# per byte, each taking as many of its neurons as still fit.
cat >"$tmp/plan.py" <<'PY'
import re, sys, gguf
pk, budget_arg, out = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
r = gguf.GGUFReader(pk)
F = r.fields
arch = F["general.architecture"].contents()
kv = lambda k: F[f"{arch}.{k}"].contents()
NL, E, k = kv("block_count"), kv("expert_count"), kv("expert_used_count")
ctx, scratch = 256, 256 << 20
head_dim = (kv("attention.key_length") if f"{arch}.attention.key_length" in F
            else kv("embedding_length") // kv("attention.head_count"))
resident = sum(int(t.n_bytes) for t in r.tensors if "_exps" not in t.name)
reserved = resident + NL * 2 * kv("attention.head_count_kv") * head_dim * ctx * 2 + scratch
T = {t.name: t for t in r.tensors}
fe = int(T["blk.0.ffn_gate_exps.weight"].shape[1])
cost = [sum(int(T[f"blk.{il}.{n}.weight"].n_bytes) for n in
            ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps_t")) // (E * fe) for il in range(NL)]
usage = F["pi.moe.usage"].contents()
budget = reserved + int(budget_arg) if budget_arg != "all" else 1 << 40
units = sorted(range(NL * E), key=lambda u: (-min(1.0, k * usage[u]) / cost[u // E], u))
left, gpu = budget - reserved, [0] * (NL * E)
for u in units:
    gpu[u] = min(fe, left // cost[u // E])
    left -= gpu[u] * cost[u // E]
rows = {int(m[1]): m for m in re.finditer(r"^ +(\d+) +(\d+)/(\d+) +(\d+) +[\d.]+ +([\d.]+)%$", out, re.M)}
assert len(rows) == NL, f"{len(rows)} layer rows"
for il in range(NL):
    g = gpu[il * E:(il + 1) * E]
    whole, part = sum(x == fe for x in g), sum(0 < x < fe for x in g)
    share = 100 * sum(usage[il * E + x] * g[x] / fe for x in range(E)) / sum(usage[il * E:(il + 1) * E])
    m = rows[il]
    got = (int(m[2]), int(m[3]), int(m[4]), float(m[5]))
    assert got[:3] == (whole, E, part) and abs(got[3] - share) < 0.051, f"layer {il}: {got} != {whole, E, part, share}"
    # the most used experts go whole: whole experts form a prefix of the packed order
    assert all(x == fe for x in g[:whole]), f"layer {il}: whole experts are not the most used"
print(f"    plan at budget {budget_arg}: {sum(x == fe for x in gpu)} whole experts, "
      f"{sum(0 < x < fe for x in gpu)} in part")
PY
for arch in qwen3moe qwen2moe; do
for extra in 0 4000 20000 60000 all; do
    b=$(python3 -c "
import gguf, sys
r = gguf.GGUFReader('$tmp/$arch.pi.gguf'); F = r.fields; a = F['general.architecture'].contents()
kv = lambda k: F[f'{a}.{k}'].contents()
hd = kv('attention.key_length') if f'{a}.attention.key_length' in F else kv('embedding_length') // kv('attention.head_count')
res = sum(int(t.n_bytes) for t in r.tensors if '_exps' not in t.name)
print(res + kv('block_count') * 2 * kv('attention.head_count_kv') * hd * 256 * 2 + (256 << 20) + (${extra/all/1 << 40}))")
    "$run" -m "$tmp/$arch.pi.gguf" --vram "$b" -c 256 --dry-run >"$tmp/plan.txt" 2>&1 &&
    t "pi-run --vram --dry-run, $arch, experts budget $extra: the plan equals the reference" \
        python3 "$tmp/plan.py" "$tmp/$arch.pi.gguf" "$extra" "$tmp/plan.txt" ||
        { bad "pi-run --vram --dry-run, $arch, experts budget $extra"; cat "$tmp/plan.txt"; }
done
done
t "  ... with every expert on the GPU the share is 100%" \
    grep -q "expected share of routed compute on GPU 100.0%" "$tmp/plan.txt"
fails_with "pi-run --vram --dry-run below the always-resident tensors is refused" 1 \
    "budget of 200.0 MiB is below the 256.[0-9] MiB" "$run" -m "$pk" --vram 200M -c 256 --dry-run
fails_with "pi-run --vram --dry-run on an unpacked mixture of experts is refused" 1 \
    "qwen3moe.gguf: not a packed mixture of experts" "$run" -m "$m" --vram 1G --dry-run

# A tampered pi section is refused by every reader, with one line.
python3 - "$pk" "$tmp" <<'PY' || bad "writing tampered packed models"
import sys
sys.path.insert(0, "tests/ref")
from regguf import rewrite
src, d = sys.argv[1], sys.argv[2]
def rise(name, v):
    if name == "pi.moe.usage":
        v = list(v); v[1], v[2] = v[2], v[1] + 0.01
    return v
def nan(name, v):
    if name == "pi.moe.usage":
        v = list(v); v[3] = float("nan")
    return v
def drop(name, v):
    return None if name == "pi.moe.usage" else v
def mix(name, v):  # the last neuron of packed experts 0 and 1 of layer 0 swapped
    if name == "pi.ffn.perm":
        v = list(v); v[63], v[127] = v[127], v[63]
    return v
for out, fn in (("rise", rise), ("nan", nan), ("drop", drop), ("mix", mix)):
    rewrite(src, f"{d}/{out}.gguf", key=fn)
def halve(name, data):  # the same bytes as 4 experts of 128 rows
    return data.reshape(4, -1, data.shape[-1]) if name == "blk.1.ffn_down_exps_t.weight" else data
rewrite(src, f"{d}/shape.gguf", tensor=halve)
PY
fails_with "usage out of order is refused" 1 \
    "rise.gguf: pi.moe.usage: layer 0 is not in decreasing order at expert 2" \
    "$run" -m "$tmp/rise.gguf" -p x -n 1
fails_with "a usage that is not a number is refused" 1 \
    "nan.gguf: pi.moe.usage: layer 0, expert 3: nan is not a share" \
    "$run" -m "$tmp/nan.gguf" -p x -n 1
fails_with "a packed mixture of experts without pi.moe.usage is refused" 1 \
    "drop.gguf: missing key pi.moe.usage" "$run" -m "$tmp/drop.gguf" -p x -n 1
fails_with "a packed expert that takes neurons of two source experts is refused" 1 \
    "mix.gguf: pi.ffn.perm: layer 0, expert 0 takes neurons of source experts" \
    "$run" -m "$tmp/mix.gguf" -p x -n 1
fails_with "pi-inspect reports a tampered usage" 1 "rise.gguf: pi.moe.usage" \
    "$inspect" "$tmp/rise.gguf"
fails_with "a neuron-major expert down projection of another shape is refused" 1 \
    "shape.gguf: tensor 'blk.1.ffn_down_exps_t.weight' is 64 x 128 x 4, expected 8 experts of 64 x 64" \
    "$run" -m "$tmp/shape.gguf" -p x -n 1
cp $tmp/*.bin /tmp/mp/ 2>/dev/null; finish
