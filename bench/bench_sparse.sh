#!/usr/bin/env bash
# Sparse inference against dense, on one machine and in one run: perplexity
# on held-out text, the active fraction of FFN neurons, generation speed with
# 1 and 2 threads, agreement with dense (the most likely next token at every
# held-out position, and free-running greedy continuations), the weights
# read per token and the bandwidth that implies, for dense on the
# original model, dense on the packed model (--dense) and sparse at each
# --sparsity-shift in SHIFTS (SHIFT:FLOOR adds --gate-floor FLOOR).  Speeds are medians of REPS rounds, each round
# running every point in turn, so that machine noise hits all points alike;
# perplexity and token ids do not depend on load and are measured once.
#
#   bench/bench_sparse.sh [MODEL]        needs `make model corpus`
#   QUICK=1 bench/bench_sparse.sh        a small run to check the script
#
# Preparation (pi-profile over TOKENS tokens of corpus/train.txt,
# pi-train-predictor with its defaults) is kept in WORK and reused while the
# model, the corpus and TOKENS stay the same (FRESH=1 redoes it, say after a
# change to pi-profile or pi-train-predictor); the packing, cheap and a pure
# function of its inputs, is redone every run.
# Held-out text: the first HELD bytes of corpus/heldout.txt (never profiled);
# the greedy prompts are paragraphs from beyond them.
set -euo pipefail
BUILD=${BUILD:-build}
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ "${QUICK:-0}" = 1 ]; then
    TOKENS=${TOKENS:-2000} HELD=${HELD:-3000} N=${N:-16} REPS=${REPS:-1}
    P=${P:-2} G=${G:-16} WORK=${WORK:-$BUILD/bench-sparse-quick}
fi
TOKENS=${TOKENS:-50000}          # tokens of corpus/train.txt profiled
HELD=${HELD:-40000}              # bytes of corpus/heldout.txt scored
SHIFTS=${SHIFTS:-"0 0.5 1 1.25 0:0.25"} # --sparsity-shift[:--gate-floor] of each sparse point
N=${N:-128}                      # generated tokens per speed run
REPS=${REPS:-3}                  # rounds of speed runs; the median is reported
P=${P:-10}                       # greedy-agreement prompts
G=${G:-48}                       # greedy tokens per prompt
PROMPT=${PROMPT:-"The capital of France is"}   # prompt of the speed runs
WORK=${WORK:-$BUILD/bench-sparse}
BIN=$BUILD/bin
[ -f "$MODEL" ] || { echo "bench_sparse: $MODEL absent (make model)" >&2; exit 1; }
for f in corpus/train.txt corpus/heldout.txt; do
    [ -f "$f" ] || { echo "bench_sparse: $f absent (make corpus)" >&2; exit 1; }
done
for t in pi-profile pi-train-predictor pi-pack pi-run; do
    [ -x "$BIN/$t" ] || { echo "bench_sparse: $BIN/$t absent (make, or set BUILD)" >&2; exit 1; }
done
[ "$P" -ge 1 ] || { echo "bench_sparse: P must be at least 1" >&2; exit 1; }
mkdir -p "$WORK"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- Preparation: statistics and predictors (cached), packed model --------
key="$(realpath "$MODEL") $(stat -c '%s %Y' "$MODEL" corpus/train.txt | tr '\n' ' ')tokens $TOKENS"
if [ "${FRESH:-0}" = 1 ] || [ ! -f "$WORK/pred.gguf" ] || [ "$(cat "$WORK/key" 2>/dev/null)" != "$key" ]; then
    rm -f "$WORK/key" "$WORK/pred.gguf"
    echo "bench_sparse: profiling $TOKENS tokens of corpus/train.txt into $WORK" >&2
    "$BIN/pi-profile" -m "$MODEL" -q --tokens "$TOKENS" -o "$WORK/p.trace" --stats "$WORK/s.yaml" \
        corpus/train.txt
    echo "bench_sparse: training the predictors" >&2
    "$BIN/pi-train-predictor" -m "$MODEL" -q -o "$WORK/pred.gguf" --report "$WORK/pred.yaml" \
        "$WORK/p.trace"
    rm -f "$WORK/p.trace"        # 0.9 GiB for 50,000 tokens; the predictors are what is kept
    echo "$key" >"$WORK/key"
fi
PACKED=$WORK/packed.gguf
"$BIN/pi-pack" -m "$MODEL" -q --stats "$WORK/s.yaml" --predictors "$WORK/pred.gguf" -o "$PACKED"
head -c "$HELD" corpus/heldout.txt >"$tmp/held.txt"

# P prompts of at most 200 characters, ending on a whole word: the openings
# of paragraphs (at least 200 characters long, so no chapter headings)
# spread evenly over the rest of the novel, line breaks made spaces.
python3 - "$HELD" "$P" "$tmp" <<'PY'
import re, sys
held, p, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
text = open("corpus/heldout.txt", encoding="utf-8").read().encode()[held:].decode("utf-8", "ignore")
paras = [" ".join(x.split()) for x in re.split(r"\n\s*\n", text)]
paras = [x for x in paras if len(x) >= 200]
if len(paras) < p:
    sys.exit(f"bench_sparse: only {len(paras)} paragraphs beyond {held} bytes of corpus/heldout.txt")
for i in range(p):
    with open(f"{out}/prompt{i}.txt", "w", encoding="utf-8") as f:
        f.write(paras[i * len(paras) // p][:201].rsplit(" ", 1)[0])
PY

# --- The operating points: name, model, pi-run options ---------------------
names=(dense-original dense-packed) models=("$MODEL" "$PACKED") opts=("" "--dense")
for s in $SHIFTS; do
    if [[ $s == *:* ]]; then
        names+=(sparse+gate) models+=("$PACKED") opts+=("--sparsity-shift ${s%:*} --gate-floor ${s#*:}")
    else
        names+=(sparse) models+=("$PACKED") opts+=("--sparsity-shift $s")
    fi
done
npts=${#names[@]}
# Every result goes to one file as "kind point threads-or-prompt JSON"; the
# summary at the end reads it.
res=$tmp/results
: >"$res"
record() { # kind point-index threads-or-prompt pi-run-options...
    local i=$2 out
    # shellcheck disable=SC2086  # opts[i] is a list of options
    out=$("$BIN/pi-run" -m "${models[$i]}" ${opts[$i]} --json -q "${@:4}")
    echo "$1 $i $3 $out" >>"$res"
}
echo "bench_sparse: perplexity over $HELD bytes, $npts points" >&2
for i in $(seq 0 $((npts - 1))); do
    record ppl "$i" - --perplexity "$tmp/held.txt" -c 512 --ppl-argmax
done
echo "bench_sparse: generation speed, $REPS rounds" >&2
for _ in $(seq "$REPS"); do
    for t in 1 2; do
        for i in $(seq 0 $((npts - 1))); do
            record gen "$i" "$t" -t "$t" -p "$PROMPT" -n "$N" --temp 0 --ignore-eos
        done
    done
done
echo "bench_sparse: greedy continuations of $P prompts" >&2
for k in $(seq 0 $((P - 1))); do
    for i in $(seq 0 $((npts - 1))); do
        record greedy "$i" "$k" -f "$tmp/prompt$k.txt" -n "$G" --temp 0 --ignore-eos
    done
done

# --- Summary ---------------------------------------------------------------
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
echo "machine: ${cpu:-unknown CPU}, $(nproc) CPUs; $(date +%Y-%m-%d)"
echo "settings: $(basename "$MODEL"), profile $TOKENS tokens of corpus/train.txt; perplexity over" \
    "the first $HELD bytes of corpus/heldout.txt (ctx 512); speed: $N greedy tokens after" \
    "\"$PROMPT\", median of $REPS interleaved rounds; greedy agreement: $P held-out prompts" \
    "x $G tokens"
python3 - "$res" "$MODEL" "$PACKED" "${names[@]}" <<'PY'
import json, re, statistics, sys
import gguf
path, model, packed, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def weight_bytes(file):
    """Bytes a token reads: (fixed part, per-layer FFN bytes, predictor bytes).
    Fixed: attention, norms and the output matrix (the tied embedding when
    there is no output.weight; an embedding lookup reads one row)."""
    r = gguf.GGUFReader(file)
    names_ = {t.name for t in r.tensors}
    fixed, ffn, gate, pred = 0, {}, {}, 0
    for t in r.tensors:
        n = int(t.n_bytes)
        m = re.match(r"blk\.(\d+)\.ffn_(gate|up|down|down_t)\.weight$", t.name)
        if m:
            ffn[int(m.group(1))] = ffn.get(int(m.group(1)), 0) + n
            if m.group(2) == "gate":
                gate[int(m.group(1))] = n
        elif t.name.startswith("pred."):
            pred += n
        elif t.name != "token_embd.weight" or "output.weight" not in names_:
            fixed += n
    return fixed, [ffn[i] for i in sorted(ffn)], pred, [gate[i] for i in sorted(gate)]

wb = {0: weight_bytes(model), 1: weight_bytes(packed)}
ppl, gen, greedy = {}, {}, {}
for line in open(path):
    kind, i, arg, js = line.split(" ", 3)
    d, i = json.loads(js), int(i)
    if kind == "ppl":
        ppl[i] = d
    elif kind == "gen":
        gen.setdefault((i, int(arg)), []).append(d)
    else:
        greedy.setdefault(i, {})[int(arg)] = d["token_ids"]

def med(i, t, key):
    return statistics.median(d.get(key, 0.0) for d in gen[(i, t)])

def top1_agree(i, j):  # share of held-out positions where i's and j's most likely tokens agree
    a, b = ppl[i]["argmax_ids"], ppl[j]["argmax_ids"]
    return sum(x == y for x, y in zip(a, b)) / max(len(b), 1)

def agreement(i, j):  # of i with j: (mean fraction before the first divergence, same position)
    pre, pos = [], []
    for k, ref in greedy[j].items():
        ids = greedy[i][k]
        n = max(len(ref), len(ids))
        same = [a == b for a, b in zip(ref, ids)] + [False] * (n - min(len(ref), len(ids)))
        first = same.index(False) if False in same else n
        pre.append(first / n)
        pos.append(sum(same) / n)
    return f"{statistics.mean(pre) * 100:.1f}% / {statistics.mean(pos) * 100:.1f}%"

base = ppl[0]["perplexity"]
tps = {(i, t): med(i, t, "generation_tokens_per_s") for (i, t) in gen}

def read_mb(i):  # MB of weights per generated token at point i
    fixed, ffn, pred, gate = wb[0 if i == 0 else 1]
    layers = gen[(i, 1)][0].get("active_fraction_per_layer")
    if not layers:
        return (fixed + sum(ffn)) / 1e6
    # with a gate floor, up and down rows only for the kept neurons
    kept = gen[(i, 1)][0].get("kept_fraction_per_layer", layers)
    return (fixed + pred + sum(a * g + k * (f - g)
                               for a, k, f, g in zip(layers, kept, ffn, gate))) / 1e6
print()
print("| point | shift | perplexity | Δppl | active (ppl / gen) | predictor share |"
      " tok/s 1t | tok/s 2t | × dense-original 1t / 2t | × dense-packed 1t / 2t |"
      " top-1 agreement vs dense-original / packed | greedy vs dense-original |"
      " greedy vs dense-packed | MB read/token | bytes ratio | GB/s 1t |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for i, name in enumerate(names):
    p = ppl[i]
    shift = p.get("sparsity_shift", "-") if p.get("mode") == "sparse" else "-"
    if "gate_floor" in p:
        shift = f"{shift}, floor {p['gate_floor']}"
    gact = statistics.mean(d.get("active_fraction", 1.0) for t in (1, 2) for d in gen[(i, t)])
    share = f"{med(i, 1, 'predictor_time_share') * 100:.1f}%" if shift != "-" else "-"
    r = lambda j, t: tps[(i, t)] / tps[(j, t)]
    print(f"| {name} | {shift} | {p['perplexity']:.3f} | {(p['perplexity'] / base - 1) * 100:+.2f}% |"
          f" {p.get('active_fraction', 1.0) * 100:.1f}% / {gact * 100:.1f}%"
          + (f" (up, down {p['kept_fraction'] * 100:.1f}%)" if "kept_fraction" in p else "") + " |"
          f" {share} | {tps[(i, 1)]:.1f} | {tps[(i, 2)]:.1f} |"
          f" {r(0, 1):.2f} / {r(0, 2):.2f} | {r(1, 1):.2f} / {r(1, 2):.2f} |"
          f" {top1_agree(i, 0) * 100:.1f}% / {top1_agree(i, 1) * 100:.1f}% |"
          f" {agreement(i, 0)} | {agreement(i, 1)} | {read_mb(i):.1f} |"
          f" {read_mb(0) / read_mb(i):.2f} | {read_mb(i) * tps[(i, 1)] / 1e3:.1f} |")
print()
print("Δppl: against dense-original; active: mean fraction of FFN neurons computed, in the"
      " perplexity run / the speed runs (with a gate floor: gates computed, and in brackets up and"
      " down); predictor share: of the 1-thread generation time")
print("top-1 agreement: share of the scored held-out positions (teacher-forced on the text) where"
      " the point's most likely next token is dense's")
print("greedy: free-running continuations; the mean share of tokens before the first divergence /"
      " of positions with the same token")
fixed, ffn, pred, _ = wb[1]
print(f"MB read/token: weights a generated token reads (attention, norms and output {fixed / 1e6:.1f} MB,"
      f" FFN {sum(wb[0][1]) / 1e6:.1f} MB original / {sum(ffn) / 1e6:.1f} MB packed, times each"
      f" layer's active fraction; predictors {pred / 1e6:.1f} MB); bytes ratio: dense-original's"
      f" over the point's, the speed-up a purely memory-bound decode would show; GB/s: MB read x tok/s at 1 thread")
print("per-layer active fraction (%) in the perplexity run, layer 0 first:")
for i, name in enumerate(names):
    layers = ppl[i].get("active_fraction_per_layer")
    if layers and ppl[i].get("mode") == "sparse":
        print(f"  shift {ppl[i]['sparsity_shift']:>5}: " + " ".join(f"{a * 100:.0f}" for a in layers))
    if ppl[i].get("kept_fraction_per_layer"):
        print(f"  shift {ppl[i]['sparsity_shift']:>5}, gate floor {ppl[i]['gate_floor']}, up and down: "
              + " ".join(f"{a * 100:.0f}" for a in ppl[i]["kept_fraction_per_layer"]))
PY
