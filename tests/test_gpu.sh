#!/usr/bin/env bash
# The CUDA backend seen from pi-run and the forward pass.
#
# Everywhere: the full-GPU plan (--gpu --dry-run) adds up and sizes the KV
# cache and predictors as stated; with no usable GPU, --gpu fails with one
# line and exit 1, and --cpu-fallback runs on the CPU with a warning and the
# CPU's output; usage errors.
#
# With a GPU (skipped, with the reason, otherwise): on synthetic models of
# each architecture and type, and on the default model when present, the
# GPU's logits against the CPU's exact path (float activations, which is the
# GPU's math) within 1e-3 of the largest logit (the GPU's KV cache is half),
# 16 greedy tokens equal; the sparse path selects the same neurons per layer
# as the CPU's; one token at a time equals a batch to float rounding.
set -u
BUILD=${BUILD:-build}
run=$BUILD/bin/pi-run
logits=$BUILD/tests/tool_logits
. "$(dirname "$0")/lib.sh"

packed_synth 3000 2 || bad "profile, train and pack the synthetic model"

# ---- the plan --------------------------------------------------------------

plan() { "$run" -m "$1" -q --gpu --dry-run "${@:2}"; }
plan "$tmp/m.gguf" -c 256 -b 16 >"$tmp/plan_dense" &&
plan "$tmp/pk.gguf" -c 256 -b 16 >"$tmp/plan_sparse" &&
plan "$tmp/pk.gguf" -c 256 -b 16 --dense >"$tmp/plan_packed_dense" ||
    bad "--gpu --dry-run prints a plan"
t "the plan's parts add up to its total" python3 - "$tmp/plan_dense" "$tmp/plan_sparse" <<'PY'
import sys
for path in sys.argv[1:]:
    rows = {l.split()[0]: int(l.split()[1]) for l in open(path) if l.startswith("  ")}
    total = rows.pop("total")
    print(path, rows, total)
    if sum(rows.values()) != total or total <= 0:
        sys.exit(1)
PY
# 2 layers x (K and V) x 256 positions x kv_dim x 2 bytes
t "the KV cache is half precision, sized by --ctx-size" python3 - "$tmp/plan_dense" \
    "$tmp/m.gguf" <<'PY'
import sys, gguf
r = gguf.GGUFReader(sys.argv[2])
kv = lambda k: int(r.fields[k].parts[-1][0])
n_embd, n_head, n_kv = kv("llama.embedding_length"), kv("llama.attention.head_count"), \
    kv("llama.attention.head_count_kv")
want = 2 * 2 * 256 * (n_embd // n_head * n_kv) * 2
got = [int(l.split()[1]) for l in open(sys.argv[1]) if l.split()[0] == "kv_cache"][0]
print("kv", got, "expected", want)
sys.exit(0 if got == want else 1)
PY
t "a sparse plan holds the predictors, a dense one on the same file none" bash -c "
    grep -qE '^  predictors +[1-9]' '$tmp/plan_sparse' &&
    grep -qE '^  predictors +0 ' '$tmp/plan_packed_dense' && grep -q '(sparse,' '$tmp/plan_sparse'"
plan "$tmp/m.gguf" -c 256 --vram 100K >"$tmp/plan_small" 2>&1
t "a budget below the plan is reported as not fitting" grep -q "does not fit" "$tmp/plan_small"
plan "$tmp/m.gguf" -c 256 --vram 1G >"$tmp/plan_big" 2>&1
t "a budget above the plan fits" grep -q ": fits" "$tmp/plan_big"

# Over the budget: a packed sparse model runs hybrid, the hottest neurons
# of each layer on the GPU, more of them for a larger budget; with
# --offload-layers as many whole layers as fit (and one more does not).
# Budgets: the whole plan less 70% and less 30% of its FFN bytes, at the
# context and batch the GPU runs below use (tool_logits --ctx 256 --batch 16).
whole=$(awk '$1 == "total" { print $2; exit }' "$tmp/plan_sparse")
ffn=$(awk '$1 == "ffn" { print $2; exit }' "$tmp/plan_sparse")
budget() { echo $((whole - ffn * (100 - $1) / 100)); }
for frac in 30 70; do
    plan "$tmp/pk.gguf" -c 256 -b 16 --vram "$(budget $frac)" >"$tmp/hy$frac" 2>&1
done
t "over the budget a packed model's plan is hybrid, within the budget" python3 - \
    "$tmp/hy30" "$tmp/hy70" "$(budget 30)" "$(budget 70)" <<'PY'
import re, sys
held, ok = [], True
for path, budget in zip(sys.argv[1:3], sys.argv[3:5]):
    text = open(path).read()
    m = re.search(r"hybrid: attention on the GPU, (\d+) of (\d+) FFN neurons", text)
    totals = [int(l.split()[1]) for l in text.splitlines() if l.split()[:1] == ["total"]]
    print(path, m.groups() if m else None, totals)
    ok &= bool(m) and len(totals) == 2 and totals[1] <= int(budget)
    held.append(int(m.group(1)) if m else -1)
sys.exit(0 if ok and 0 <= held[0] < held[1] else 1)
PY
mwhole=$(awk '$1 == "total" { print $2; exit }' "$tmp/plan_dense")
plan "$tmp/m.gguf" -c 256 -b 16 --vram $((mwhole * 60 / 100)) --offload-layers >"$tmp/off" 2>&1
t "--offload-layers: the plan holds whole layers within the budget" python3 - "$tmp/off" \
    $((mwhole * 60 / 100)) <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"layer offload: (\d+) of (\d+) layers on the GPU", text)
totals = [int(l.split()[1]) for l in text.splitlines() if l.split()[:1] == ["total"]]
print(m.groups() if m else None, totals)
sys.exit(0 if m and 0 < int(m.group(1)) < int(m.group(2)) and totals[-1] <= int(sys.argv[2]) else 1)
PY
fails_with "a dense model over the budget without --offload-layers is refused" 1 \
    "use --offload-layers" "$run" -m "$tmp/m.gguf" -p hi -c 256 -b 16 --vram $((mwhole / 2))

# ---- usage errors ----------------------------------------------------------

fails_with "--dry-run alone is a usage error" 2 "needs --gpu or --vram" \
    "$run" -m "$tmp/m.gguf" --dry-run
fails_with "--cpu-fallback alone is a usage error" 2 "needs --gpu or --vram" \
    "$run" -m "$tmp/m.gguf" -p hi --cpu-fallback
fails_with "--gate-floor on the GPU is a usage error" 2 "not available on the GPU" \
    "$run" -m "$tmp/pk.gguf" -p hi --gpu --gate-floor 0.5
fails_with "a bad --vram is a usage error" 2 "vram" "$run" -m "$tmp/m.gguf" -p hi --vram 6Q
fails_with "--offload-layers without --vram is a usage error" 2 "needs --vram" \
    "$run" -m "$tmp/m.gguf" -p hi --offload-layers
fails_with "--offload-layers runs dense: no --sparsity-shift" 2 "runs dense" \
    "$run" -m "$tmp/pk.gguf" -p hi --vram 1G --offload-layers --sparsity-shift 1

# ---- without a GPU -----------------------------------------------------------

has_gpu=0
grep -q "^device: CUDA ready" "$tmp/plan_dense" && has_gpu=1
if [ $has_gpu -eq 0 ]; then
    why=$(grep "^device:" "$tmp/plan_dense")
    fails_with "--gpu without a usable GPU: one line, exit 1" 1 "^pi-run: GPU: " \
        "$run" -m "$tmp/m.gguf" -p hi -n 4 --gpu
    fails_with "--vram without a usable GPU: one line, exit 1" 1 "^pi-run: GPU: " \
        "$run" -m "$tmp/m.gguf" -p hi -n 4 --vram 1G
    "$run" -m "$tmp/m.gguf" -p "river hill" -n 8 --temp 0 -q >"$tmp/cpu.txt" 2>/dev/null
    "$run" -m "$tmp/m.gguf" -p "river hill" -n 8 --temp 0 -q --gpu --cpu-fallback \
        >"$tmp/fb.txt" 2>"$tmp/fb.err"
    t "--cpu-fallback warns once and runs on the CPU" bash -c "
        grep -q 'warning: GPU: .*running on the CPU' '$tmp/fb.err' && [ \$(wc -l <'$tmp/fb.err') -eq 1 ]"
    t "--cpu-fallback prints what the CPU prints" cmp -s "$tmp/cpu.txt" "$tmp/fb.txt"
    "$run" -m "$tmp/m.gguf" -p "river hill" -n 4 --temp 0 --gpu --cpu-fallback --json \
        >"$tmp/fb.json" 2>/dev/null
    t "--json says where it ran" grep -q '"device": "cpu", "gpu_memory_bytes": 0' "$tmp/fb.json"
    echo "skipping the GPU comparisons: ${why#device: }"
    skipped=$((skipped + 10))
    finish
    exit
fi

# ---- on a GPU ----------------------------------------------------------------

ids=5,17,42,99,3,64,128,7,250,31,12,77
# GPU against the CPU's exact path: logits and 16 greedy tokens.
compare() { # name model [tool_logits options...]
    local name=$1 model=$2; shift 2
    "$logits" "$model" $ids --exact 1 --greedy 16 --out "$tmp/c.bin" "$@" >"$tmp/c.txt" &&
    "$logits" "$model" $ids --gpu 1 --greedy 16 --out "$tmp/g.bin" "$@" >"$tmp/g.txt" ||
        { bad "$name: both runs"; return; }
    t "$name: GPU logits within 1e-3 of the largest CPU logit" python3 - "$tmp/g.bin" \
        "$tmp/c.bin" <<'PY'
import sys
import numpy as np
a, b = (np.fromfile(p, "<f4") for p in sys.argv[1:3])
err = np.abs(a - b).max() / np.abs(b).max()
print(f"max error {err:.2e} of the largest logit")
sys.exit(0 if a.shape == b.shape and np.isfinite(a).all() and err < 1e-3 else 1)
PY
    t "$name: 16 greedy tokens equal" test "$(tail -n1 "$tmp/g.txt")" = "$(tail -n1 "$tmp/c.txt")"
}

for spec in llama/q4_0 llama/q8_0 llama/q4_k_m qwen2/q4_1 qwen3/q4_k_m llama/f16; do
    arch=${spec%/*} type=${spec#*/}
    python3 tests/ref/synth.py --arch "$arch" --type "$type" --untied \
        --out "$tmp/$arch-$type.gguf" >/dev/null || { bad "synth $spec"; continue; }
    compare "$spec" "$tmp/$arch-$type.gguf"
done
compare "packed, dense" "$tmp/pk.gguf" --dense 1
compare "packed, sparse" "$tmp/pk.gguf"
"$logits" "$tmp/pk.gguf" $ids --exact 1 --active 1 | head -n1 >"$tmp/ca.txt"
"$logits" "$tmp/pk.gguf" $ids --gpu 1 --active 1 | head -n1 >"$tmp/ga.txt"
t "sparse: neurons selected per layer as on the CPU (within 1%)" python3 - \
    "$(cat "$tmp/ca.txt")" "$(cat "$tmp/ga.txt")" <<'PY'
import sys
a, b = ([int(x) for x in s.split() if x.isdigit()] for s in sys.argv[1:3])
print("cpu", a, "gpu", b)
sys.exit(0 if a and len(a) == len(b) and all(abs(x - y) <= 0.01 * 12 * 256 for x, y in zip(a, b)) else 1)
PY
"$logits" "$tmp/pk.gguf" $ids --gpu 1 --batch 1 --out "$tmp/g1.bin" >/dev/null
"$logits" "$tmp/pk.gguf" $ids --gpu 1 --out "$tmp/g64.bin" >/dev/null
t "one token at a time equals the batch to float rounding" python3 - "$tmp/g1.bin" \
    "$tmp/g64.bin" <<'PY'
import sys
import numpy as np
a, b = (np.fromfile(p, "<f4") for p in sys.argv[1:3])
err = np.abs(a - b).max() / np.abs(b).max()
print(f"max difference {err:.2e}")
sys.exit(0 if a.shape == b.shape and err < 1e-4 else 1)
PY
# Hybrid under several budgets: the split must not change the math.
"$logits" "$tmp/pk.gguf" $ids --gpu 1 --ctx 256 --batch 16 --out "$tmp/whole.bin" >/dev/null
for frac in 30 70; do
    "$logits" "$tmp/pk.gguf" $ids --gpu 1 --ctx 256 --batch 16 --vram "$(budget $frac)" \
        --out "$tmp/h$frac.bin" \
        >/dev/null || bad "hybrid with $frac% of the FFN bytes runs"
    t "hybrid with $frac% of the FFN bytes: logits = whole-GPU sparse to float rounding" python3 - \
        "$tmp/h$frac.bin" "$tmp/whole.bin" <<'PY'
import sys
import numpy as np
a, b = (np.fromfile(p, "<f4") for p in sys.argv[1:3])
err = np.abs(a - b).max() / np.abs(b).max()
print(f"max difference {err:.2e}")
sys.exit(0 if a.shape == b.shape and err < 1e-4 else 1)
PY
done
"$logits" "$tmp/m.gguf" $ids --gpu 1 --ctx 256 --batch 16 --vram $((mwhole * 60 / 100)) --offload 1 \
    --out "$tmp/off.bin" >/dev/null || bad "layer offload runs"
"$logits" "$tmp/m.gguf" $ids --exact 1 --out "$tmp/cpu.bin" >/dev/null
t "layer offload: logits = the CPU's exact path within 1e-3" python3 - "$tmp/off.bin" \
    "$tmp/cpu.bin" <<'PY'
import sys
import numpy as np
a, b = (np.fromfile(p, "<f4") for p in sys.argv[1:3])
err = np.abs(a - b).max() / np.abs(b).max()
print(f"max difference {err:.2e}")
sys.exit(0 if a.shape == b.shape and err < 1e-3 else 1)
PY
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
    compare "default model" "$model"
    "$run" -m "$model" -p "The capital of France is" -n 16 --temp 0 --gpu --json \
        >"$tmp/run.json" 2>/dev/null
    t "pi-run --gpu --json says it ran on the GPU" grep -q '"device": "gpu"' "$tmp/run.json"
else
    echo "skipping the default model: make model first"
fi
finish
